//! A stage's `inputs`: a list (range, values, file), a stage, a zip of those, or a scatter,
//! resolved to a [`Source`] and its number of tasks, each value checked against the task's
//! parameters where its module records them.

use std::path::PathBuf;

use dipla_protocol::RawJson;
use dipla_sandbox::abi::TaskInfo;

use super::schema::InputsFile;
use super::{ReadError, ReadFile};
use crate::manifest::task_fit::check_arity;
use crate::manifest::types::{self, Shape, Signature};
use crate::{Inputs, Part, Source};

/// Why a stage's `inputs` cannot be used (reported under the stage's `inputs` key).
#[derive(Debug, thiserror::Error)]
pub(super) enum InputsError {
    /// `zip = []`.
    #[error("a zip needs at least one part")]
    EmptyZip,
    /// The inputs give the task another number of arguments than it takes.
    #[error("{0}")]
    Arity(String),
    /// A zip of zips, or of a scatter.
    #[error("zip[{0}]: a zip part is a list or a stage")]
    ZipPartKind(usize),
    /// A zip's part is wrong.
    #[error("zip[{part}]: {why}")]
    ZipPart {
        /// Its index in the zip.
        part: usize,
        /// What is wrong with it.
        why: Box<InputsError>,
    },
    /// A zip's parts have different lengths.
    #[error("the zip's parts differ in length ({})", lengths(.0))]
    ZipLengths(Vec<u64>),
    /// `scatter = { count = 0 }`.
    #[error("scatter needs a count of at least 1")]
    ScatterCount,
    /// A scatter's value is not JSON.
    #[error("scatter.value: {0}")]
    ScatterValue(serde_json::Error),
    /// A range's bound is not an integer in range.
    #[error(
        "range.{what}: {value} should be an integer from 0 to {} (write one above {} as a string, such as \"18446744073709551615\")",
        u64::MAX,
        i64::MAX
    )]
    Bound {
        /// `start` or `end`.
        what: &'static str,
        /// The bound as written.
        value: toml::Value,
    },
    /// `start >= end`.
    #[error("the range {start}..{end} is empty (end is exclusive)")]
    EmptyRange {
        /// The first integer.
        start: u64,
        /// One past the last.
        end: u64,
    },
    /// One of `values` is not JSON or not of the task's input type.
    #[error("values[{index}]: {why}")]
    Value {
        /// Its index in the list.
        index: usize,
        /// What is wrong with it.
        why: String,
    },
    /// An input file cannot be read.
    #[error(transparent)]
    Read(#[from] ReadError),
    /// An input file is not UTF-8.
    #[error("{} is not UTF-8 text", .0.display())]
    NotUtf8(PathBuf),
    /// A line of an input file is not JSON, or not of the task's input type.
    #[error("{}:{line}: {why}", path.display())]
    Line {
        /// The file, as the manifest names it.
        path: PathBuf,
        /// The line's number, from 1.
        line: usize,
        /// What is wrong with it.
        why: String,
    },
    /// The list is empty.
    #[error("there are no inputs")]
    NoInputs,
}

/// `1, 2, 3`.
fn lengths(lengths: &[u64]) -> String {
    let lengths: Vec<String> = lengths.iter().map(u64::to_string).collect();
    lengths.join(", ")
}

/// Resolves a stage's `inputs` to a source and its number of tasks: `info` is the stage's
/// task (its values are checked against it when `check`), `find` finds a stage by name and
/// `count` says how many outputs an upstream stage has.
pub(super) fn source(
    inputs: &InputsFile,
    read: &ReadFile<'_>,
    info: &TaskInfo,
    check: bool,
    find: &impl Fn(&str) -> Option<usize>,
    count: &impl Fn(usize) -> u64,
) -> Result<(Source, u64), InputsError> {
    let arity = |want: usize, what: &str| {
        check_arity(info, want, what).map_err(|e| InputsError::Arity(e.to_string()))
    };
    let sig = Signature::of(info);
    match inputs {
        InputsFile::Stage(name) => {
            let stage = find(name).expect("checked");
            Ok((Source::Stage(stage), count(stage)))
        }
        InputsFile::Zip(parts) => {
            if parts.is_empty() {
                return Err(InputsError::EmptyZip);
            }
            arity(parts.len(), "the zip")?;
            zip(parts, read, &sig, check, find, count)
        }
        InputsFile::Scatter { value, count } => {
            arity(3, "scatter")?;
            if *count == 0 {
                return Err(InputsError::ScatterCount);
            }
            let json = serde_json::to_value(value).map_err(InputsError::ScatterValue)?;
            let json = match sig.params.as_deref() {
                Some([first, ..]) => first.coerce(json),
                _ => json,
            };
            let value =
                RawJson::from_string(json.to_string()).map_err(InputsError::ScatterValue)?;
            Ok((
                Source::Scatter {
                    value,
                    count: *count,
                },
                *count,
            ))
        }
        list => {
            let list = list_inputs(list, read, &sig, check)?;
            let length = list.len();
            Ok((Source::List(list), length))
        }
    }
}

/// Resolves a zip's parts, each a list checked against its parameter of `sig`, or a stage.
fn zip(
    parts: &[InputsFile],
    read: &ReadFile<'_>,
    sig: &Signature,
    check: bool,
    find: &impl Fn(&str) -> Option<usize>,
    count: &impl Fn(usize) -> u64,
) -> Result<(Source, u64), InputsError> {
    // What a zip's part `j` is checked against: that one parameter.
    let part_sig = |j: usize| {
        let param = match sig.params.as_deref() {
            Some([_]) => sig.input(),
            Some(params) => params.get(j).cloned(),
            None => None,
        };
        Signature {
            display: sig.display.clone(),
            params: param.map(|param| vec![param]),
            returns: Shape::Any,
        }
    };
    let mut resolved = Vec::new();
    let mut lengths = Vec::new();
    for (j, part) in parts.iter().enumerate() {
        let (part, length) = match part {
            InputsFile::Stage(name) => {
                let stage = find(name).expect("checked");
                (Part::Stage(stage), count(stage))
            }
            InputsFile::Zip(_) | InputsFile::Scatter { .. } => {
                return Err(InputsError::ZipPartKind(j));
            }
            list => {
                let list = list_inputs(list, read, &part_sig(j), check).map_err(|why| {
                    InputsError::ZipPart {
                        part: j,
                        why: Box::new(why),
                    }
                })?;
                let length = list.len();
                (Part::List(list), length)
            }
        };
        resolved.push(part);
        lengths.push(length);
    }
    if lengths.iter().any(|&length| length != lengths[0]) {
        return Err(InputsError::ZipLengths(lengths));
    }
    Ok((Source::Zip(resolved), lengths[0]))
}

/// A range bound: a non-negative TOML integer, or a decimal string for one above `i64::MAX`.
fn bound(value: &toml::Value, what: &'static str) -> Result<u64, InputsError> {
    let parsed = match value {
        toml::Value::Integer(int) => u64::try_from(*int).ok(),
        toml::Value::String(text) => text.trim().parse::<u64>().ok(),
        _ => None,
    };
    parsed.ok_or_else(|| InputsError::Bound {
        what,
        value: value.clone(),
    })
}

/// Reads a list of inputs; when `check`, each value is checked against the input of `sig`
/// (its decimal strings read as integers where it takes integers, as TOML stops at
/// `i64::MAX`).
fn list_inputs(
    file: &InputsFile,
    read: &ReadFile<'_>,
    sig: &Signature,
    check: bool,
) -> Result<Inputs, InputsError> {
    let input = sig.input();
    let inputs = match file {
        InputsFile::Range { start, end } => {
            let (start, end) = (bound(start, "start")?, bound(end, "end")?);
            if start >= end {
                return Err(InputsError::EmptyRange { start, end });
            }
            Inputs::Range { start, end }
        }
        InputsFile::Values(values) => Inputs::Values(
            values
                .iter()
                .enumerate()
                .map(|(index, value)| {
                    let invalid = |why: String| InputsError::Value { index, why };
                    let json = serde_json::to_value(value).map_err(|e| invalid(e.to_string()))?;
                    let json = match &input {
                        Some(input) => {
                            let json = input.coerce(json);
                            if check {
                                types::check_value(&json, input, sig)
                                    .map_err(|e| invalid(e.to_string()))?;
                            }
                            json
                        }
                        None => json,
                    };
                    RawJson::from_string(json.to_string()).map_err(|e| invalid(e.to_string()))
                })
                .collect::<Result<_, _>>()?,
        ),
        InputsFile::File(path) => {
            let text =
                String::from_utf8(read(path)?).map_err(|_| InputsError::NotUtf8(path.clone()))?;
            let mut values = Vec::new();
            for (i, line) in text.lines().enumerate() {
                if line.trim().is_empty() {
                    continue;
                }
                let invalid = |why: String| InputsError::Line {
                    path: path.clone(),
                    line: i + 1,
                    why,
                };
                let value = RawJson::from_string(line.trim().to_owned())
                    .map_err(|e| invalid(format!("not JSON: {e}")))?;
                if let (Some(input), true) = (&input, check) {
                    let json: serde_json::Value = serde_json::from_str(value.get())
                        .map_err(|e| invalid(format!("not JSON: {e}")))?;
                    types::check_value(&json, input, sig).map_err(|e| invalid(e.to_string()))?;
                }
                values.push(value);
            }
            Inputs::Values(values)
        }
        InputsFile::Stage(_) | InputsFile::Zip(_) | InputsFile::Scatter { .. } => {
            unreachable!("handled by the caller")
        }
    };
    if inputs.is_empty() {
        return Err(InputsError::NoInputs);
    }
    Ok(inputs)
}
