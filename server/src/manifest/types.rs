//! Load-time type checking of a job's stage graph, from the signatures a module records.
//!
//! The `#[task]` macro writes each task's parameters and result as Rust type strings into the
//! module's `dipla` section (`params`, `returns`, `fold`; see [`dipla_sandbox::abi`]). This
//! module reads those strings into a small model of the JSON each type accepts or produces
//! ([`Shape`]), and checks what a stage feeds its task against it: the values, range or file of
//! its inputs, and every edge of the graph (a map over a stage, a zip, a reduce, a scatter, an
//! explore's `next` inputs). Manifests, `serve` submissions and the
//! driver all call [`check_feed`] (and the manifest [`check_value`] for each input value), so a
//! mistake is refused before any worker runs a task, naming the stage, the edge and both types:
//! a [`TypeError`].
//!
//! The check is conservative: it refuses only what cannot work. A type it does not know (a
//! user's struct or enum, a type alias, a generic) is [`Shape::Named`], which matches anything
//! except a bare number or `bool` (serde writes a derived struct or enum as an object, an array, a
//! string or `null`, never as a number); an output and a parameter match when some value of
//! the one is a value of the other (an `Option<u64>` output feeds a `u64` parameter: its
//! `Some`s work). A task whose module records no types (a guest from another language) is not
//! checked at all, and `dipla-server inspect` says so.

use std::fmt;

use dipla_sandbox::abi::TaskInfo;
use serde_json::Value;
use thiserror::Error;

use crate::{Inputs, Part, Source};

/// The JSON a Rust type is written as, or read from, by `serde_json`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Shape {
    /// Anything (`serde_json::Value`, a type this model cannot read).
    Any,
    /// A user's type (a struct, an enum, an alias), by name: anything but a bare number or
    /// `bool`, which a derived struct or enum never is.
    Named(String),
    /// An integer type and its range.
    Int {
        /// Its name (`u64`), or for a range of values, `min..=max`.
        name: String,
        /// The smallest value.
        min: i128,
        /// The largest value.
        max: i128,
    },
    /// `f32`, `f64`: any number.
    Float,
    /// `bool`.
    Bool,
    /// `String`, `&str` and friends.
    Str,
    /// `char`: a string of one character.
    Char,
    /// `()`: `null`.
    Unit,
    /// `Option<T>`: `null` or a `T`.
    Option(Box<Shape>),
    /// `Vec<T>`, `[T]`, sets: an array of any length.
    Seq(Box<Shape>),
    /// `[T; N]`: an array of exactly `N`.
    Array(Box<Shape>, usize),
    /// A tuple: an array of exactly its elements.
    Tuple(Vec<Shape>),
    /// A map with string keys: an object of `V`s.
    Map(Box<Shape>),
    /// `dipla_guest::Explore<O, N>`: `{"output": O, "next": [N, ...]}`.
    Explore(Box<Shape>, Box<Shape>),
}

/// Integer types, their ranges on wasm32 (`usize` is 32 bits there).
const INTEGERS: &[(&str, i128, i128)] = &[
    ("u8", 0, u8::MAX as i128),
    ("u16", 0, u16::MAX as i128),
    ("u32", 0, u32::MAX as i128),
    ("u64", 0, u64::MAX as i128),
    ("u128", 0, i128::MAX),
    ("usize", 0, u32::MAX as i128),
    ("i8", i8::MIN as i128, i8::MAX as i128),
    ("i16", i16::MIN as i128, i16::MAX as i128),
    ("i32", i32::MIN as i128, i32::MAX as i128),
    ("i64", i64::MIN as i128, i64::MAX as i128),
    ("i128", i128::MIN, i128::MAX),
    ("isize", i32::MIN as i128, i32::MAX as i128),
];

impl Shape {
    /// The shape of a Rust type as the `#[task]` macro records it (`Vec<u64>`,
    /// `(String, u32)`, `std::collections::BTreeMap<String, u64>`, `&[u8]`). What it cannot
    /// read is [`Shape::Any`] or [`Shape::Named`], which match (almost) anything.
    pub fn parse(text: &str) -> Self {
        Self::parse_with(text, false)
    }

    /// Like [`Shape::parse`]; a return type (`returns`) writes the `T` of `Result<T, E>` and
    /// of `Flow<T>`.
    fn parse_with(text: &str, returns: bool) -> Self {
        let tokens = tokenize(text);
        let mut parser = Parser {
            tokens,
            at: 0,
            returns,
        };
        match parser.ty() {
            Some(shape) if parser.at == parser.tokens.len() => shape,
            _ => Self::Any,
        }
    }

    /// The integers `min..=max`, as a range input gives them.
    pub fn range(min: u64, max: u64) -> Self {
        Self::Int {
            name: if min == max {
                format!("{min}")
            } else {
                format!("integers {min}..={max}")
            },
            min: min.into(),
            max: max.into(),
        }
    }

    /// Whether `value` can be read as this shape.
    ///
    /// # Errors
    /// What does not fit, and where inside the value (`element 1: "x" is not a u64`).
    pub fn check(&self, value: &Value) -> Result<(), TypeError> {
        let not = |what: &str| {
            Err(TypeError::Not {
                value: brief(value),
                wanted: what.to_owned(),
            })
        };
        match (self, value) {
            (Self::Any | Self::Named(_), _) => Ok(()),
            (Self::Int { name, min, max }, Value::Number(number)) => {
                let int = number
                    .as_i64()
                    .map(i128::from)
                    .or_else(|| number.as_u64().map(i128::from));
                match int {
                    Some(int) if (*min..=*max).contains(&int) => Ok(()),
                    Some(_) => Err(TypeError::OutOfRange {
                        number: number.to_string(),
                        name: name.clone(),
                    }),
                    // Beyond u64 serde_json reads a float: only a 128-bit type may take it.
                    None if *max > i128::from(u64::MAX)
                        && number.as_f64().is_some_and(|f| f.fract() == 0.0) =>
                    {
                        Ok(())
                    }
                    None => not(&format!("an integer ({name})")),
                }
            }
            (Self::Int { name, .. }, _) => not(&format!("an integer ({name})")),
            (Self::Float, Value::Number(_)) | (Self::Bool, Value::Bool(_)) => Ok(()),
            (Self::Str, Value::String(_)) | (Self::Unit | Self::Option(_), Value::Null) => Ok(()),
            (Self::Float, _) => not("a number"),
            (Self::Bool, _) => not("a bool"),
            (Self::Str, _) => not("a string"),
            (Self::Char, Value::String(s)) if s.chars().count() == 1 => Ok(()),
            (Self::Char, _) => not("a string of one character (char)"),
            (Self::Unit, _) => not("null (the unit type ())"),
            (Self::Option(inner), value) => inner.check(value),
            (Self::Seq(element), Value::Array(items)) => items
                .iter()
                .enumerate()
                .try_for_each(|(i, item)| element.check(item).map_err(|e| e.at(Place::Element(i)))),
            (Self::Array(element, n), Value::Array(items)) if items.len() == *n => items
                .iter()
                .enumerate()
                .try_for_each(|(i, item)| element.check(item).map_err(|e| e.at(Place::Element(i)))),
            (Self::Tuple(elements), Value::Array(items)) if items.len() == elements.len() => {
                elements
                    .iter()
                    .zip(items)
                    .enumerate()
                    .try_for_each(|(i, (element, item))| {
                        element.check(item).map_err(|e| e.at(Place::Element(i)))
                    })
            }
            (Self::Array(_, n), Value::Array(items)) => Err(TypeError::Length {
                value: brief(value),
                found: items.len(),
                wanted: *n,
            }),
            (Self::Tuple(elements), Value::Array(items)) => Err(TypeError::Length {
                value: brief(value),
                found: items.len(),
                wanted: elements.len(),
            }),
            (Self::Seq(_) | Self::Array(..) | Self::Tuple(_), _) => not("an array"),
            (Self::Map(element), Value::Object(entries)) => entries
                .iter()
                .try_for_each(|(k, v)| element.check(v).map_err(|e| e.at(Place::Key(k.clone())))),
            (Self::Map(_), _) => not("an object"),
            (Self::Explore(..), Value::Object(_)) => Ok(()),
            (Self::Explore(..), _) => not("an object"),
        }
    }

    /// Whether an output of this shape can feed a parameter of shape `into`: some value of
    /// the one is a value of the other (a `u64` feeds a `u32`, an `Option<u64>` a `u64`; a
    /// struct does not feed a `u64`, nor a `String` a `u64`).
    pub fn feeds(&self, into: &Self) -> bool {
        use Shape as S;
        match (self, into) {
            (S::Any, _) | (_, S::Any) => true,
            // `None` is `null` on both sides.
            (S::Option(_), S::Option(_) | S::Unit) | (S::Unit, S::Option(_) | S::Unit) => true,
            (a, S::Option(b)) => a.feeds(b),
            (S::Option(a), b) => a.feeds(b),
            (S::Named(_), b) | (b, S::Named(_)) => !matches!(b, S::Int { .. } | S::Float | S::Bool),
            (
                S::Int { min, max, .. },
                S::Int {
                    min: lo, max: hi, ..
                },
            ) => min <= hi && lo <= max,
            (S::Int { .. } | S::Float, S::Float)
            | (S::Bool, S::Bool)
            | (S::Str | S::Char, S::Str | S::Char) => true,
            (S::Seq(a), S::Seq(b)) | (S::Map(a), S::Map(b)) => a.feeds(b),
            (S::Seq(a), S::Array(b, _)) | (S::Array(a, _), S::Seq(b)) => a.feeds(b),
            (S::Array(a, n), S::Array(b, m)) => n == m && a.feeds(b),
            (S::Seq(a), S::Tuple(bs)) => bs.iter().all(|b| a.feeds(b)),
            (S::Tuple(a), S::Seq(b)) => a.iter().all(|a| a.feeds(b)),
            (S::Array(a, n), S::Tuple(bs)) => *n == bs.len() && bs.iter().all(|b| a.feeds(b)),
            (S::Tuple(a), S::Array(b, n)) => a.len() == *n && a.iter().all(|a| a.feeds(b)),
            (S::Tuple(a), S::Tuple(b)) => {
                a.len() == b.len() && a.iter().zip(b).all(|(a, b)| a.feeds(b))
            }
            (S::Explore(..), S::Explore(..))
            | (S::Explore(..), S::Map(_))
            | (S::Map(_), S::Explore(..)) => true,
            _ => false,
        }
    }

    /// `value` with every decimal string where this shape wants an integer read as that
    /// integer (TOML's integers stop at `i64::MAX`, so a manifest writes a larger `u64` as
    /// `"18446744073709551615"`). Other values are left as they are, for [`Shape::check`].
    pub fn coerce(&self, value: Value) -> Value {
        match (self, value) {
            (Self::Int { .. }, Value::String(text)) => match text.parse::<u64>() {
                Ok(int) => Value::from(int),
                Err(_) => match text.parse::<i64>() {
                    Ok(int) => Value::from(int),
                    Err(_) => Value::String(text),
                },
            },
            (Self::Option(inner), value) => inner.coerce(value),
            (Self::Seq(element) | Self::Array(element, _), Value::Array(items)) => {
                Value::Array(items.into_iter().map(|item| element.coerce(item)).collect())
            }
            (Self::Tuple(elements), Value::Array(items)) if items.len() == elements.len() => {
                Value::Array(
                    elements
                        .iter()
                        .zip(items)
                        .map(|(element, item)| element.coerce(item))
                        .collect(),
                )
            }
            (Self::Map(element), Value::Object(entries)) => Value::Object(
                entries
                    .into_iter()
                    .map(|(k, v)| (k, element.coerce(v)))
                    .collect(),
            ),
            (_, value) => value,
        }
    }

    /// Whether this is a bare number, `bool` or string: what a one-argument application
    /// gives, never the array of several arguments.
    fn is_scalar(&self) -> bool {
        matches!(
            self,
            Self::Int { .. } | Self::Float | Self::Bool | Self::Str | Self::Char | Self::Unit
        )
    }
}

impl fmt::Display for Shape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Any => f.write_str("any JSON"),
            Self::Named(name) | Self::Int { name, .. } => f.write_str(name),
            Self::Float => f.write_str("f64"),
            Self::Bool => f.write_str("bool"),
            Self::Str => f.write_str("String"),
            Self::Char => f.write_str("char"),
            Self::Unit => f.write_str("()"),
            Self::Option(inner) => write!(f, "Option<{inner}>"),
            Self::Seq(element) => write!(f, "Vec<{element}>"),
            Self::Array(element, n) => write!(f, "[{element}; {n}]"),
            Self::Tuple(elements) => {
                f.write_str("(")?;
                for (i, element) in elements.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{element}")?;
                }
                f.write_str(")")
            }
            Self::Map(value) => write!(f, "Map<String, {value}>"),
            Self::Explore(output, next) => write!(f, "Explore<{output}, {next}>"),
        }
    }
}

/// A JSON value for a message, cut short when long.
fn brief(value: &Value) -> String {
    let text = value.to_string();
    if text.chars().count() <= 60 {
        text
    } else {
        let cut: String = text.chars().take(57).collect();
        format!("{cut}...")
    }
}

/// Why a value, or what a stage feeds its task, does not fit the task's types: each names
/// the value or the edge, the expected and the found type.
#[derive(Debug, Error)]
pub enum TypeError {
    /// A value is not of the shape wanted: `"x" is not an integer (u64)`.
    #[error("{value} is not {wanted}")]
    Not {
        /// The value, cut short when long.
        value: String,
        /// What it should be.
        wanted: String,
    },
    /// An integer out of its type's range.
    #[error("{number} is out of the range of {name}")]
    OutOfRange {
        /// The number.
        number: String,
        /// Its type, or the range of values.
        name: String,
    },
    /// An array of another length than a fixed-size array or a tuple has.
    #[error("{value} has {found} elements, not {wanted}")]
    Length {
        /// The array, cut short when long.
        value: String,
        /// Its length.
        found: usize,
        /// The length wanted.
        wanted: usize,
    },
    /// Text that is not JSON (a value as it is stored).
    #[error("{0}")]
    NotJson(serde_json::Error),
    /// The input of a task of several parameters is an array of another length.
    #[error("{value} gives {given} argument(s) but {task} takes {arity}")]
    Arguments {
        /// The input, cut short when long.
        value: String,
        /// Its length.
        given: usize,
        /// The task's signature.
        task: String,
        /// How many parameters it takes.
        arity: usize,
    },
    /// The input of a task of several parameters is not an array.
    #[error("{value} is one value but {task} takes {arity} arguments (give an array of {arity})")]
    OneValue {
        /// The input, cut short when long.
        value: String,
        /// The task's signature.
        task: String,
        /// How many parameters it takes.
        arity: usize,
    },
    /// A range's integers do not fit the task's input.
    #[error("the range {start}..{end} gives integers but {task} takes {input}")]
    Range {
        /// The range's first value.
        start: u64,
        /// The end of the range (exclusive).
        end: u64,
        /// The task's signature.
        task: String,
        /// What it takes.
        input: Box<Shape>,
    },
    /// A range feeds a task of several parameters.
    #[error(
        "a range gives each task one integer but {task} takes {arity} arguments (give values of arrays of {arity}, or a zip)"
    )]
    RangeArity {
        /// The task's signature.
        task: String,
        /// How many parameters it takes.
        arity: usize,
    },
    /// A map over a stage whose outputs are not what the task takes.
    #[error("map over {stage:?}: {task} takes {input} but {stage:?} outputs {output}")]
    Map {
        /// The stage read.
        stage: String,
        /// The task's signature.
        task: String,
        /// What it takes.
        input: Box<Shape>,
        /// What the stage outputs.
        output: Box<Shape>,
    },
    /// A map over a stage of single values, for a task of several parameters.
    #[error(
        "map over {stage:?}: each of {stage:?}'s outputs is one {output} but {task} takes {arity} arguments (an array of {arity})"
    )]
    MapScalar {
        /// The stage read.
        stage: String,
        /// What it outputs.
        output: Box<Shape>,
        /// The task's signature.
        task: String,
        /// How many parameters it takes.
        arity: usize,
    },
    /// A zip of another number of parts than the task has parameters.
    #[error("the zip gives {parts} argument(s) but {task} takes {arity}")]
    ZipArity {
        /// The zip's parts.
        parts: usize,
        /// The task's signature.
        task: String,
        /// How many parameters it takes.
        arity: usize,
    },
    /// A zip's part, a stage, whose outputs do not fit the parameter they are given as.
    #[error(
        "zip[{part}] over {stage:?}: parameter {part} of {task} is {param} but {stage:?} outputs {output}"
    )]
    ZipPart {
        /// The part.
        part: usize,
        /// The stage it reads.
        stage: String,
        /// The task's signature.
        task: String,
        /// The parameter.
        param: Box<Shape>,
        /// What the stage outputs.
        output: Box<Shape>,
    },
    /// A scatter feeds a task that does not take three parameters.
    #[error("scatter gives 3 argument(s) (value, index, count) but {task} takes {arity}")]
    ScatterArity {
        /// The task's signature.
        task: String,
        /// How many parameters it takes.
        arity: usize,
    },
    /// A scatter's index or count does not fit its parameter.
    #[error("scatter gives its {what} ({given}) but parameter {index} of {task} is {param}")]
    ScatterParam {
        /// `index` or `count`.
        what: &'static str,
        /// Their values.
        given: Box<Shape>,
        /// The parameter.
        index: usize,
        /// The task's signature.
        task: String,
        /// Its type.
        param: Box<Shape>,
    },
    /// A reduce over a stage whose outputs the reducer does not take.
    #[error("reduce over {stage:?}: the reducer takes {want} but {stage:?} outputs {output}")]
    Reduce {
        /// The stage folded.
        stage: String,
        /// What the reducer takes.
        want: Box<Shape>,
        /// What the stage outputs.
        output: Box<Shape>,
    },
    /// An explore stage's task takes other inputs than the next inputs it gives.
    #[error("explore: {task} takes {input} but its Explore gives next inputs of type {next}")]
    ExploreNext {
        /// The task's signature.
        task: String,
        /// What it takes.
        input: Box<Shape>,
        /// The next inputs it gives.
        next: Box<Shape>,
    },
    /// An explore stage's task does not return `Explore`.
    #[error(
        "an explore stage's task returns dipla_guest::Explore {{ output, next }}, but {task} returns {returns}"
    )]
    NotExplore {
        /// The task's signature.
        task: String,
        /// What it returns.
        returns: Box<Shape>,
    },
    /// A value that does not fit, for a task: `..., for f(x: u64) -> u64`.
    #[error("{error}, for {task}")]
    For {
        /// What does not fit.
        error: Box<TypeError>,
        /// The task's signature.
        task: String,
    },
    /// What does not fit, and where.
    #[error("{place}: {error}")]
    At {
        /// Where.
        place: Place,
        /// What does not fit there.
        error: Box<TypeError>,
    },
}

impl TypeError {
    /// This error, found at `place`.
    fn at(self, place: Place) -> Self {
        Self::At {
            place,
            error: Box::new(self),
        }
    }

    /// This error of a value given to `task`.
    fn of(self, task: &str) -> Self {
        Self::For {
            error: Box::new(self),
            task: task.to_owned(),
        }
    }
}

/// Where a [`TypeError`] is, in a value or among a stage's inputs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Place {
    /// Element `i` of an array: `element 1`.
    Element(usize),
    /// The value of a key of an object: `key "a"`.
    Key(String),
    /// Value `i` of a list: `values[3]`.
    Value(usize),
    /// Part `j` of a zip: `zip[1]`.
    Part(usize),
    /// A stage's list of inputs: `the inputs`.
    Inputs,
    /// A scatter's value: `the scattered value`.
    Scattered,
}

impl fmt::Display for Place {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Element(i) => write!(f, "element {i}"),
            Self::Key(key) => write!(f, "key {key:?}"),
            Self::Value(i) => write!(f, "values[{i}]"),
            Self::Part(j) => write!(f, "zip[{j}]"),
            Self::Inputs => f.write_str("the inputs"),
            Self::Scattered => f.write_str("the scattered value"),
        }
    }
}

/// A task's signature read as shapes: what one task takes and what it outputs.
#[derive(Debug, Clone)]
pub struct Signature {
    /// The task as `name(a: u64) -> u64`, for messages.
    pub display: String,
    /// Each parameter's shape, when the module records them.
    pub params: Option<Vec<Shape>>,
    /// What the task returns, as written into a result (`Result` and `Flow` unwrapped).
    pub returns: Shape,
}

impl Signature {
    /// The signature `info` records.
    pub fn of(info: &TaskInfo) -> Self {
        Self {
            display: info.to_string(),
            params: info
                .params
                .as_ref()
                .map(|params| params.iter().map(|p| Shape::parse(&p.ty)).collect()),
            returns: info
                .returns
                .as_deref()
                .map_or(Shape::Any, |text| Shape::parse_with(text, true)),
        }
    }

    /// The JSON one task takes: its one parameter, an array of its parameters, or `null`
    /// for none; `None` when the module does not say.
    pub fn input(&self) -> Option<Shape> {
        let params = self.params.as_ref()?;
        Some(match params.as_slice() {
            [] => Shape::Unit,
            [one] => one.clone(),
            many => Shape::Tuple(many.to_vec()),
        })
    }

    /// The JSON for parameter `i` of several, or [`Shape::Any`] when the module does not say.
    fn param(&self, i: usize) -> Shape {
        self.params
            .as_ref()
            .and_then(|params| params.get(i).cloned())
            .unwrap_or(Shape::Any)
    }

    /// The output of a stage running this task: in an explore stage, the `output` of its
    /// `Explore`.
    pub fn output(&self, explore: bool) -> Shape {
        match (&self.returns, explore) {
            (Shape::Explore(output, _), true) => (**output).clone(),
            (returns, _) => returns.clone(),
        }
    }
}

/// What the type check needs to know of a stage a stage reads.
#[derive(Debug, Clone)]
pub struct Upstream {
    /// Its name.
    pub name: String,
    /// The shape of each of its outputs.
    pub output: Shape,
}

/// Checks that `source` feeds `task` what it takes: arity and shape of a range and of the
/// stages it reads (zip, map, reduce, scatter), and, in an `explore` stage, that the task
/// returns `Explore` whose `next` inputs it takes. Lists of values are checked too unless
/// `values_checked` (the manifest checks them as it reads them, to name a file's lines).
/// `upstream` describes stage `i`. A task whose module records no types passes.
///
/// # Errors
/// A [`TypeError`] naming the edge, the expected and the found type, such as
/// `reduce over "factors": the reducer takes u64 but "factors" outputs Vec<u64>`.
pub fn check_feed(
    task: &TaskInfo,
    source: &Source,
    explore: bool,
    values_checked: bool,
    upstream: &dyn Fn(usize) -> Upstream,
) -> Result<(), TypeError> {
    let sig = Signature::of(task);
    let Some(input) = sig.input() else {
        return Ok(());
    };
    let arity = sig.params.as_ref().map_or(0, Vec::len);
    if explore {
        match &sig.returns {
            Shape::Explore(_, next) => {
                if !next.feeds(&input) {
                    return Err(TypeError::ExploreNext {
                        task: sig.display,
                        input: Box::new(input),
                        next: next.clone(),
                    });
                }
            }
            Shape::Any | Shape::Named(_) => {}
            other => {
                return Err(TypeError::NotExplore {
                    task: sig.display.clone(),
                    returns: Box::new(other.clone()),
                });
            }
        }
    }
    match source {
        Source::List(inputs) => check_inputs(inputs, &input, &sig, values_checked, Place::Inputs),
        Source::Stage(stage) => feed(upstream(*stage), input, sig, arity),
        Source::Zip(parts) => {
            if parts.len() != arity.max(1) {
                return Err(TypeError::ZipArity {
                    parts: parts.len(),
                    task: sig.display,
                    arity,
                });
            }
            for (j, part) in parts.iter().enumerate() {
                let param = if arity == 1 {
                    input.clone()
                } else {
                    sig.param(j)
                };
                match part {
                    Part::List(inputs) => {
                        check_one(inputs, &param, &sig, j, values_checked)?;
                    }
                    Part::Stage(stage) => {
                        let from = upstream(*stage);
                        if !from.output.feeds(&param) {
                            return Err(TypeError::ZipPart {
                                part: j,
                                stage: from.name,
                                task: sig.display,
                                param: Box::new(param),
                                output: Box::new(from.output),
                            });
                        }
                    }
                }
            }
            Ok(())
        }
        Source::Scatter { value, count } => {
            if arity != 3 {
                return Err(TypeError::ScatterArity {
                    task: sig.display,
                    arity,
                });
            }
            let value: Value = serde_json::from_str(value.get())
                .map_err(|e| TypeError::NotJson(e).at(Place::Scattered))?;
            sig.param(0)
                .check(&value)
                .map_err(|e| e.of(&sig.display).at(Place::Scattered))?;
            let last = count.saturating_sub(1);
            for (i, (what, given)) in [
                ("index", Shape::range(0, last)),
                ("count", Shape::range(*count, *count)),
            ]
            .into_iter()
            .enumerate()
            {
                let param = sig.param(i + 1);
                if !given.feeds(&param) {
                    return Err(TypeError::ScatterParam {
                        what,
                        given: Box::new(given),
                        index: i + 1,
                        task: sig.display,
                        param: Box::new(param),
                    });
                }
            }
            Ok(())
        }
        Source::Reduce { stage, .. } => {
            let from = upstream(*stage);
            // A reducer folds values of its parameters' type (the macro's `fold`), or is
            // given exactly two values as its two parameters.
            let wants = if task.fold {
                vec![sig.param(0)]
            } else {
                (0..arity).map(|i| sig.param(i)).collect()
            };
            for want in wants {
                if !from.output.feeds(&want) {
                    return Err(TypeError::Reduce {
                        stage: from.name,
                        want: Box::new(want),
                        output: Box::new(from.output),
                    });
                }
            }
            Ok(())
        }
    }
}

/// Checks that stage `from`'s outputs feed `input`, the input of `sig` of `arity` parameters
/// (a map over `from`).
fn feed(from: Upstream, input: Shape, sig: Signature, arity: usize) -> Result<(), TypeError> {
    if from.output.feeds(&input) {
        return Ok(());
    }
    if arity >= 2 && from.output.is_scalar() {
        return Err(TypeError::MapScalar {
            stage: from.name,
            output: Box::new(from.output),
            task: sig.display,
            arity,
        });
    }
    Err(TypeError::Map {
        stage: from.name,
        task: sig.display,
        input: Box::new(input),
        output: Box::new(from.output),
    })
}

/// Checks a list of inputs against the whole input of `sig`.
fn check_inputs(
    inputs: &Inputs,
    input: &Shape,
    sig: &Signature,
    values_checked: bool,
    what: Place,
) -> Result<(), TypeError> {
    let arity = sig.params.as_ref().map_or(0, Vec::len);
    match inputs {
        Inputs::Range { start, end } => {
            let given = Shape::range(*start, end.saturating_sub(1));
            if arity >= 2 {
                return Err(TypeError::RangeArity {
                    task: sig.display.clone(),
                    arity,
                });
            }
            if given.feeds(input) {
                Ok(())
            } else {
                Err(TypeError::Range {
                    start: *start,
                    end: *end,
                    task: sig.display.clone(),
                    input: Box::new(input.clone()),
                }
                .at(what))
            }
        }
        Inputs::Values(_) if values_checked => Ok(()),
        Inputs::Values(values) => {
            for (i, value) in values.iter().enumerate() {
                let value: Value = serde_json::from_str(value.get())
                    .map_err(|e| TypeError::NotJson(e).at(Place::Value(i)))?;
                check_value(&value, input, sig).map_err(|e| e.at(Place::Value(i)))?;
            }
            Ok(())
        }
    }
}

/// Checks part `j` of a zip, a list, against parameter `param` of `sig`.
fn check_one(
    inputs: &Inputs,
    param: &Shape,
    sig: &Signature,
    j: usize,
    values_checked: bool,
) -> Result<(), TypeError> {
    let one = Signature {
        display: sig.display.clone(),
        params: Some(vec![param.clone()]),
        returns: Shape::Any,
    };
    check_inputs(inputs, param, &one, values_checked, Place::Part(j)).map_err(|e| match e {
        TypeError::At {
            place: Place::Part(_),
            ..
        } => e,
        e => e.at(Place::Part(j)),
    })
}

/// Checks one input value against the input of `sig`, with a message that counts
/// arguments when it is an array of the wrong length for a task of several parameters.
///
/// # Errors
/// What does not fit, naming the task.
pub fn check_value(value: &Value, input: &Shape, sig: &Signature) -> Result<(), TypeError> {
    let arity = sig.params.as_ref().map_or(0, Vec::len);
    if arity >= 2 {
        match value {
            Value::Array(items) if items.len() != arity => {
                return Err(TypeError::Arguments {
                    value: brief(value),
                    given: items.len(),
                    task: sig.display.clone(),
                    arity,
                });
            }
            Value::Array(_) => {}
            _ => {
                return Err(TypeError::OneValue {
                    value: brief(value),
                    task: sig.display.clone(),
                    arity,
                });
            }
        }
    }
    input.check(value).map_err(|e| e.of(&sig.display))
}

/// A type string's tokens: words (paths joined), punctuation, numbers.
fn tokenize(text: &str) -> Vec<String> {
    let mut tokens = Vec::new();
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c.is_whitespace() {
            continue;
        }
        if c.is_alphanumeric() || c == '_' || c == '\'' {
            let mut word = String::from(c);
            while let Some(&next) = chars.peek() {
                if next.is_alphanumeric() || next == '_' {
                    word.push(next);
                    chars.next();
                } else {
                    break;
                }
            }
            tokens.push(word);
        } else if c == ':' && chars.peek() == Some(&':') {
            chars.next();
            tokens.push("::".into());
        } else {
            tokens.push(c.to_string());
        }
    }
    tokens
}

/// A recursive-descent reader of type strings.
struct Parser {
    tokens: Vec<String>,
    at: usize,
    /// Whether the next type read is a task's return type (the outermost one only).
    returns: bool,
}

impl Parser {
    fn peek(&self) -> Option<&str> {
        self.tokens.get(self.at).map(String::as_str)
    }

    fn eat(&mut self, token: &str) -> bool {
        if self.peek() == Some(token) {
            self.at += 1;
            true
        } else {
            false
        }
    }

    /// One type, or `None` when the text is not one this reader follows.
    fn ty(&mut self) -> Option<Shape> {
        let returns = std::mem::take(&mut self.returns);
        match self.peek()? {
            "&" => {
                self.at += 1;
                if self.peek().is_some_and(|t| t.starts_with('\'')) {
                    self.at += 1;
                }
                self.eat("mut");
                self.ty()
            }
            "(" => {
                self.at += 1;
                let mut elements = Vec::new();
                while !self.eat(")") {
                    elements.push(self.ty()?);
                    if !self.eat(",") {
                        if !self.eat(")") {
                            return None;
                        }
                        // `(T)` is `T`; `(T,)` is a tuple.
                        return Some(if elements.len() == 1 {
                            elements.remove(0)
                        } else {
                            Shape::Tuple(elements)
                        });
                    }
                }
                Some(if elements.is_empty() {
                    Shape::Unit
                } else {
                    Shape::Tuple(elements)
                })
            }
            "[" => {
                self.at += 1;
                let element = self.ty()?;
                if self.eat("]") {
                    return Some(Shape::Seq(Box::new(element)));
                }
                if !self.eat(";") {
                    return None;
                }
                let n = self.peek()?.parse::<usize>().ok();
                self.at += 1;
                if !self.eat("]") {
                    return None;
                }
                // A length written as a constant's name cannot be checked.
                Some(match n {
                    Some(n) => Shape::Array(Box::new(element), n),
                    None => Shape::Seq(Box::new(element)),
                })
            }
            "<" => None,
            _ => self.path(returns),
        }
    }

    /// A path type such as `std::vec::Vec<u64>`: its last segment and generic arguments.
    fn path(&mut self, returns: bool) -> Option<Shape> {
        self.eat("::");
        let mut name = self.word()?;
        while self.eat("::") {
            name = self.word()?;
        }
        let mut args = Vec::new();
        if self.eat("<") {
            loop {
                if self.peek().is_some_and(|t| t.starts_with('\'')) {
                    self.at += 1;
                } else {
                    args.push(self.ty()?);
                }
                if self.eat(">") {
                    break;
                }
                if !self.eat(",") {
                    return None;
                }
                if self.eat(">") {
                    break;
                }
            }
        }
        if returns && matches!((name.as_str(), args.len()), ("Result", 2) | ("Flow", 1)) {
            return Some(args.remove(0));
        }
        Some(named(&name, args))
    }

    fn word(&mut self) -> Option<String> {
        let token = self.peek()?;
        if token.chars().next()?.is_alphabetic() || token.starts_with('_') {
            let word = token.to_owned();
            self.at += 1;
            Some(word)
        } else {
            None
        }
    }
}

/// The shape of the type `name<args>`.
fn named(name: &str, mut args: Vec<Shape>) -> Shape {
    if let Some(&(int, min, max)) = INTEGERS.iter().find(|(int, ..)| *int == name)
        && args.is_empty()
    {
        return Shape::Int {
            name: int.to_owned(),
            min,
            max,
        };
    }
    let first = |args: &mut Vec<Shape>| Box::new(args.remove(0));
    match (name, args.len()) {
        ("f32" | "f64", 0) => Shape::Float,
        ("bool", 0) => Shape::Bool,
        ("String" | "str", 0) => Shape::Str,
        ("char", 0) => Shape::Char,
        ("Value", 0) => Shape::Any,
        ("Option", 1) => Shape::Option(first(&mut args)),
        ("Vec" | "VecDeque" | "HashSet" | "BTreeSet" | "LinkedList" | "BinaryHeap", 1) => {
            Shape::Seq(first(&mut args))
        }
        ("Box" | "Rc" | "Arc" | "Cow", 1) => args.remove(0),
        ("HashMap" | "BTreeMap", 2) => Shape::Map(Box::new(args.remove(1))),
        ("Explore", 2) => {
            let output = first(&mut args);
            Shape::Explore(output, Box::new(args.remove(0)))
        }
        (name, 0) => Shape::Named(name.to_owned()),
        _ => Shape::Any,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dipla_protocol::RawJson;
    use dipla_sandbox::abi::Param;
    use serde_json::json;

    fn shape(text: &str) -> Shape {
        Shape::parse(text)
    }

    fn task(params: &[&str], returns: &str, fold: bool) -> TaskInfo {
        TaskInfo {
            name: "t".into(),
            params: Some(
                params
                    .iter()
                    .enumerate()
                    .map(|(i, ty)| Param {
                        name: format!("p{i}"),
                        ty: (*ty).into(),
                    })
                    .collect(),
            ),
            returns: Some(returns.into()),
            fold,
            verifier: false,
        }
    }

    fn up(output: &str) -> impl Fn(usize) -> Upstream {
        let output = Signature::of(&task(&[], output, false)).returns;
        move |_| Upstream {
            name: "up".into(),
            output: output.clone(),
        }
    }

    fn values(items: &[Value]) -> Inputs {
        Inputs::Values(
            items
                .iter()
                .map(|v| RawJson::from_string(v.to_string()).unwrap())
                .collect(),
        )
    }

    #[test]
    fn reads_the_types_the_macro_writes() {
        assert_eq!(shape("u64"), Shape::parse("::core::primitive::u64"));
        assert_eq!(shape("Vec<u64>"), Shape::Seq(Box::new(shape("u64"))));
        assert_eq!(shape("std::vec::Vec<u64>"), shape("Vec<u64>"));
        assert_eq!(shape("&[u64]"), shape("Vec<u64>"));
        assert_eq!(shape("&'a str"), Shape::Str);
        assert_eq!(shape("Box<str>"), Shape::Str);
        assert_eq!(shape("()"), Shape::Unit);
        assert_eq!(shape("(u64)"), shape("u64"));
        assert_eq!(
            shape("(String, u32)"),
            Shape::Tuple(vec![Shape::Str, shape("u32")])
        );
        assert_eq!(shape("(u8,)"), Shape::Tuple(vec![shape("u8")]));
        assert_eq!(
            shape("[usize; 2]"),
            Shape::Array(Box::new(shape("usize")), 2)
        );
        assert_eq!(shape("[u8; N]"), Shape::Seq(Box::new(shape("u8"))));
        assert_eq!(
            shape("std::collections::BTreeMap<String, u64>"),
            Shape::Map(Box::new(shape("u64")))
        );
        assert_eq!(
            shape("Option<Vec<f64>>"),
            Shape::Option(Box::new(Shape::Seq(Box::new(Shape::Float))))
        );
        assert_eq!(shape("Cow<'static, str>"), Shape::Str);
        assert_eq!(shape("Search"), Shape::Named("Search".into()));
        assert_eq!(shape("serde_json::Value"), Shape::Any);
        assert_eq!(shape("Wrapper<u64>"), Shape::Any);
        assert_eq!(shape("<T as Trait>::Out"), Shape::Any);
        assert_eq!(
            shape("Vec<u64"),
            Shape::Any,
            "unreadable text matches anything"
        );
        assert_eq!(shape(""), Shape::Any);
    }

    #[test]
    fn return_types_write_their_value() {
        let returns = |text: &str| Signature::of(&task(&[], text, false)).returns;
        assert_eq!(returns("Result<u64, String>"), shape("u64"));
        assert_eq!(returns("dipla_guest::Flow<Vec<u64>>"), shape("Vec<u64>"));
        assert_eq!(returns("(u64, u64)"), shape("(u64, u64)"));
        assert_eq!(returns("(u64,)"), shape("(u64,)"));
        assert_eq!(
            returns("Explore<[usize; 2], [usize; 2]>"),
            Shape::Explore(Box::new(shape("[usize; 2]")), Box::new(shape("[usize; 2]")))
        );
        let explore = Signature::of(&task(&["u64"], "Explore<String, u64>", false));
        assert_eq!(explore.output(true), Shape::Str);
        assert!(matches!(explore.output(false), Shape::Explore(..)));
    }

    #[test]
    fn json_values_fit_their_types() {
        let fits = |ty: &str, v: Value| shape(ty).check(&v).map_err(|e| e.to_string());
        assert!(fits("u64", json!(18_446_744_073_709_551_615u64)).is_ok());
        assert_eq!(
            fits("u64", json!(-1)).unwrap_err(),
            "-1 is out of the range of u64"
        );
        assert_eq!(
            fits("u8", json!(256)).unwrap_err(),
            "256 is out of the range of u8"
        );
        assert_eq!(
            fits("u32", json!(1.5)).unwrap_err(),
            "1.5 is not an integer (u32)"
        );
        assert_eq!(
            fits("usize", json!(4_294_967_296u64)).unwrap_err(),
            "4294967296 is out of the range of usize"
        );
        assert!(fits("u128", json!(1e30)).is_ok());
        assert!(fits("f64", json!(3)).is_ok());
        assert!(fits("bool", json!(1)).is_err());
        assert!(fits("char", json!("é")).is_ok());
        assert!(fits("char", json!("ab")).is_err());
        assert!(fits("()", json!(null)).is_ok());
        assert!(fits("Option<u64>", json!(null)).is_ok());
        assert!(fits("Option<u64>", json!("x")).is_err());
        assert_eq!(
            fits("(String, u64)", json!(["a", "b"])).unwrap_err(),
            "element 1: \"b\" is not an integer (u64)"
        );
        assert_eq!(
            fits("(u64, u64)", json!([1, 2, 3])).unwrap_err(),
            "[1,2,3] has 3 elements, not 2"
        );
        assert!(fits("[u8; 2]", json!([1, 2])).is_ok());
        assert!(fits("[u8; 2]", json!([1])).is_err());
        assert!(fits("Vec<String>", json!(["a", "b"])).is_ok());
        assert_eq!(
            fits("Vec<String>", json!(["a", 2])).unwrap_err(),
            "element 1: 2 is not a string"
        );
        assert!(fits("HashMap<String, u64>", json!({"a": 1})).is_ok());
        assert!(fits("HashMap<String, u64>", json!({"a": "b"})).is_err());
        assert!(fits("Search", json!({"anything": [1]})).is_ok());
        assert!(
            fits("Search", json!(5)).is_ok(),
            "a newtype may read a number"
        );
    }

    #[test]
    fn outputs_feed_the_parameters_they_can() {
        let feeds = |from: &str, into: &str| shape(from).feeds(&shape(into));
        assert!(feeds("u64", "u64"));
        assert!(feeds("u64", "u32"), "values in range work");
        assert!(!feeds("u8", "i8") || feeds("u8", "i8"));
        assert!(feeds("u64", "f64"));
        assert!(
            !feeds("f64", "u64"),
            "serde writes 1.0, which no integer reads"
        );
        assert!(!feeds("Vec<u64>", "u64"));
        assert!(!feeds("String", "u64"));
        assert!(feeds("Option<u64>", "u64"), "its Somes work");
        assert!(feeds("()", "Option<u64>"));
        assert!(!feeds("()", "u64"));
        assert!(feeds("Vec<u64>", "(u64, u64)"), "a Vec of two works");
        assert!(!feeds("Vec<String>", "(u64, u64)"));
        assert!(feeds("(u64, u64)", "[u64; 2]"));
        assert!(!feeds("(u64, u64)", "(u64, u64, u64)"));
        assert!(!feeds("Find", "u64"), "a struct is never a bare number");
        assert!(!feeds("u64", "Find"));
        assert!(feeds("Find", "Find"));
        assert!(feeds("Find", "Other"));
        assert!(
            feeds("Find", "String"),
            "an enum's unit variant is a string"
        );
        assert!(feeds("Find", "Vec<u64>"));
        assert!(feeds("BTreeMap<String, u64>", "HashMap<String, u64>"));
        assert!(!feeds("BTreeMap<String, u64>", "HashMap<String, String>"));
        assert!(
            feeds("Wrapper<u64>", "u64"),
            "an unreadable type matches anything"
        );
        assert!(feeds("char", "String"));
    }

    #[test]
    fn decimal_strings_become_integers_where_integers_are_wanted() {
        let max = json!("18446744073709551615");
        assert_eq!(shape("u64").coerce(max.clone()), json!(u64::MAX));
        assert_eq!(
            shape("String").coerce(max.clone()),
            max,
            "a string parameter keeps it"
        );
        assert_eq!(
            shape("(u64, String)").coerce(json!(["9223372036854775808", "9"])),
            json!([9_223_372_036_854_775_808u64, "9"])
        );
        assert_eq!(
            shape("Vec<i64>").coerce(json!(["-5", "x"])),
            json!([-5, "x"])
        );
        assert_eq!(shape("Option<u64>").coerce(json!("7")), json!(7));
        let coerced = shape("u8").coerce(json!("300"));
        assert_eq!(
            shape("u8").check(&coerced).unwrap_err().to_string(),
            "300 is out of the range of u8"
        );
    }

    #[test]
    fn ranges_and_values_are_checked_for_arity_and_shape() {
        let add = task(&["u64", "u64"], "u64", true);
        let range = Source::List(Inputs::Range { start: 0, end: 10 });
        let e = check_feed(&add, &range, false, false, &up("u64"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("a range gives each task one integer but t(p0: u64, p1: u64) -> u64 [can reduce] takes 2 arguments"), "{e}");
        let square = task(&["u8"], "u8", false);
        assert!(
            check_feed(
                &square,
                &Source::List(Inputs::Range { start: 0, end: 256 }),
                false,
                false,
                &up("u64")
            )
            .is_ok()
        );
        let text = task(&["String"], "u8", false);
        let e = check_feed(&text, &range, false, false, &up("u64"))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("the range 0..10 gives integers but t(p0: String) -> u8 takes String"),
            "{e}"
        );
        let three = Source::List(values(&[json!([1, 2]), json!([100, 200, 300])]));
        let e = check_feed(&add, &three, false, false, &up("u64"))
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "values[1]: [100,200,300] gives 3 argument(s) but t(p0: u64, p1: u64) -> u64 [can reduce] takes 2"
        );
        let one = Source::List(values(&[json!(5)]));
        let e = check_feed(&add, &one, false, false, &up("u64"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("5 is one value but"), "{e}");
        assert!(
            check_feed(&add, &one, false, true, &up("u64")).is_ok(),
            "already checked"
        );
        let wrong = Source::List(values(&[json!([1, "two"])]));
        let e = check_feed(&add, &wrong, false, false, &up("u64"))
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "values[0]: element 1: \"two\" is not an integer (u64), for t(p0: u64, p1: u64) -> u64 [can reduce]"
        );
    }

    #[test]
    fn edges_are_checked() {
        let count = task(&["u64"], "u64", false);
        let e = check_feed(&count, &Source::Stage(0), false, false, &up("Vec<u64>"))
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "map over \"up\": t(p0: u64) -> u64 takes u64 but \"up\" outputs Vec<u64>"
        );
        let e = check_feed(&count, &Source::Stage(0), false, false, &up("Find"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("outputs Find"), "{e}");
        assert!(
            check_feed(
                &count,
                &Source::Stage(0),
                false,
                false,
                &up("Result<u64, String>")
            )
            .is_ok()
        );
        let add = task(&["u64", "u64"], "u64", true);
        let e = check_feed(&add, &Source::Stage(0), false, false, &up("u64"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("each of \"up\"'s outputs is one u64 but"), "{e}");
        assert!(check_feed(&add, &Source::Stage(0), false, false, &up("(u64, u64)")).is_ok());
        let reduce = Source::Reduce {
            stage: 0,
            fan_in: 2,
        };
        let e = check_feed(&add, &reduce, false, false, &up("Vec<u64>"))
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "reduce over \"up\": the reducer takes u64 but \"up\" outputs Vec<u64>"
        );
        assert!(check_feed(&add, &reduce, false, false, &up("u64")).is_ok());
        let zip = Source::Zip(vec![
            Part::Stage(0),
            Part::List(Inputs::Range { start: 0, end: 3 }),
        ]);
        let describe = task(&["String", "u32"], "String", false);
        assert!(check_feed(&describe, &zip, false, false, &up("String")).is_ok());
        let e = check_feed(&describe, &zip, false, false, &up("u64"))
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "zip[0] over \"up\": parameter 0 of t(p0: String, p1: u32) -> String is String but \"up\" outputs u64"
        );
        let zip = Source::Zip(vec![Part::Stage(0), Part::List(values(&[json!("x")]))]);
        let e = check_feed(&describe, &zip, false, false, &up("String"))
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("zip[1]: values[0]: \"x\" is not an integer (u32)"),
            "{e}"
        );
        let part = task(&["String", "u32", "u32"], "String", false);
        let scatter = |value: Value, count| Source::Scatter {
            value: RawJson::from_string(value.to_string()).unwrap(),
            count,
        };
        assert!(check_feed(&part, &scatter(json!("v"), 8), false, false, &up("u64")).is_ok());
        let e = check_feed(&part, &scatter(json!(5), 8), false, false, &up("u64"))
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("the scattered value: 5 is not a string"),
            "{e}"
        );
        let small = task(&["String", "u8", "u8"], "String", false);
        let e = check_feed(&small, &scatter(json!("v"), 1000), false, false, &up("u64"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("scatter gives its count (1000)"), "{e}");
    }

    #[test]
    fn explore_stages_need_explore_and_take_their_next_inputs() {
        let list = Source::List(values(&[json!(1)]));
        let reach = task(&["u64"], "Explore<u64, u64>", false);
        assert!(check_feed(&reach, &list, true, false, &up("u64")).is_ok());
        let wrong = task(&["u64"], "Explore<u64, String>", false);
        let e = check_feed(&wrong, &list, true, false, &up("u64"))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("takes u64 but its Explore gives next inputs of type String"),
            "{e}"
        );
        let plain = task(&["u64"], "u64", false);
        let e = check_feed(&plain, &list, true, false, &up("u64"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("returns u64"), "{e}");
    }

    #[test]
    fn a_task_without_types_is_not_checked() {
        let untyped = TaskInfo {
            name: "t".into(),
            params: None,
            returns: None,
            fold: false,
            verifier: false,
        };
        let range = Source::List(Inputs::Range { start: 0, end: 10 });
        assert!(check_feed(&untyped, &range, false, false, &up("u64")).is_ok());
        assert!(check_feed(&untyped, &Source::Stage(0), true, false, &up("Find")).is_ok());
        assert!(Signature::of(&untyped).input().is_none());
    }
}
