//! Applying a task: its options, its inputs, and the stage it makes, as sent to the server.

use std::ops::{Range, RangeInclusive};
use std::sync::Arc;
use std::time::Duration;

use dipla_protocol::{ModuleHash, RawJson, TaskLimits};
use serde::Serialize;
use serde_json::json;
use thiserror::Error;

use crate::link::{Link, Up};
use crate::{ModuleRef, Promise, Reduced};

/// The most tasks an explore stage grows to unless [`Task::explore`] says otherwise.
pub const DEFAULT_MAX_EXPLORE_TASKS: u64 = 1_000_000;

/// How a stage replicates tasks to check their results.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Replicate {
    /// Every result is taken from one worker.
    Off,
    /// This fraction of tasks, chosen at random once answered, run on [`Task::quorum`]
    /// workers.
    Fraction(f64),
    /// More of new workers' answers are replicated, fewer of proven ones'.
    Adaptive,
}

/// A task of a module, with its options, about to be applied.
#[must_use = "a task does nothing until it is applied with map, zip, scatter, explore or reduce"]
pub struct Task {
    link: Arc<Link>,
    module: ModuleHash,
    export: String,
    name: Option<String>,
    limits: TaskLimits,
    max_attempts: u32,
    stop_after: u64,
    fan_in: u64,
    replicate: Replicate,
    quorum: u32,
    verify: Option<(ModuleHash, String)>,
    deadline: Option<Duration>,
    check_types: bool,
}

/// What a task is applied to: values known now, or the outputs of a promise.
pub struct Input(InputKind);

enum InputKind {
    List(Result<Inputs, DraftError>),
    Stage(Promise),
}

/// Inputs known up front.
enum Inputs {
    Range { start: u64, end: u64 },
    Values(Vec<Box<RawJson>>),
}

impl Inputs {
    fn to_json(&self) -> serde_json::Value {
        match self {
            Self::Range { start, end } => json!({ "range": { "start": start, "end": end } }),
            Self::Values(values) => json!({ "values": values }),
        }
    }
}

impl Input {
    /// One task per value, each value serialised to JSON.
    pub fn values<T: Serialize>(values: impl IntoIterator<Item = T>) -> Self {
        let values: Result<Vec<Box<RawJson>>, DraftError> = values
            .into_iter()
            .enumerate()
            .map(|(index, value)| {
                serde_json::value::to_raw_value(&value)
                    .map_err(|error| DraftError::InputNotJson { index, error })
            })
            .collect();
        Self(InputKind::List(values.map(Inputs::Values)))
    }

    fn part(self, application: Application) -> Result<DraftPart, DraftError> {
        match self.0 {
            InputKind::List(list) => list.map(DraftPart::List).map_err(|error| DraftError::In {
                application,
                error: Box::new(error),
            }),
            InputKind::Stage(promise) => Ok(DraftPart::Stage(promise.read())),
        }
    }
}

impl From<Range<u64>> for Input {
    fn from(range: Range<u64>) -> Self {
        Self(InputKind::List(Ok(Inputs::Range {
            start: range.start,
            end: range.end,
        })))
    }
}

impl From<RangeInclusive<u64>> for Input {
    fn from(range: RangeInclusive<u64>) -> Self {
        let (start, end) = range.into_inner();
        match end.checked_add(1) {
            Some(end) => (start..end).into(),
            None => Self(InputKind::List(Err(DraftError::RangeToMax))),
        }
    }
}

impl<T: Serialize> From<Vec<T>> for Input {
    fn from(values: Vec<T>) -> Self {
        Self::values(values)
    }
}

impl<T: Serialize> From<&[T]> for Input {
    fn from(values: &[T]) -> Self {
        Self::values(values)
    }
}

impl From<&Promise> for Input {
    fn from(promise: &Promise) -> Self {
        Self(InputKind::Stage(promise.clone()))
    }
}

impl From<&Reduced> for Input {
    fn from(reduced: &Reduced) -> Self {
        Self(InputKind::Stage(reduced.promise().clone()))
    }
}

impl Task {
    pub(crate) fn new(module: &ModuleRef, export: &str) -> Self {
        let link = module.link.clone();
        Self {
            module: module.hash,
            export: export.to_owned(),
            name: None,
            limits: link.limits,
            max_attempts: link.max_attempts,
            stop_after: 1,
            fan_in: 2,
            replicate: Replicate::Off,
            quorum: 2,
            verify: None,
            deadline: None,
            check_types: true,
            link,
        }
    }

    /// Whether the server checks the stage's inputs and the outputs it reads against the
    /// types the module records (default yes). Turn it off only for a type the check cannot
    /// see through, such as a struct that serialises as a bare number.
    pub fn check_types(mut self, check: bool) -> Self {
        self.check_types = check;
        self
    }

    /// Names the stage (in errors and logs; default: the task's name, numbered when used
    /// again).
    pub fn named(mut self, name: &str) -> Self {
        self.name = Some(name.to_owned());
        self
    }

    /// The limits each of its tasks gets.
    pub fn limits(mut self, limits: TaskLimits) -> Self {
        self.limits = limits;
        self
    }

    /// Failures a task may have before it is reported as failed.
    pub fn max_attempts(mut self, attempts: u32) -> Self {
        self.max_attempts = attempts.max(1);
        self
    }

    /// For a task returning `Flow`: how many outputs that meet the goal end the stage
    /// (default 1). The stage's other tasks are then cancelled or never run.
    pub fn stop_after(mut self, outputs: u64) -> Self {
        self.stop_after = outputs.max(1);
        self
    }

    /// Checks results by running a fraction of tasks (or, [`Replicate::Adaptive`], more
    /// of new workers' and fewer of proven ones') on [`Task::quorum`] workers.
    pub fn replicate(mut self, replicate: Replicate) -> Self {
        self.replicate = replicate;
        self
    }

    /// How long a task may run on a worker before it is given to another one as well (the
    /// first answer wins); by default, from its limits and the worker's measured speed.
    pub fn deadline(mut self, deadline: Duration) -> Self {
        self.deadline = Some(deadline);
        self
    }

    /// Agreeing workers a replicated task needs (default 2, at least 2).
    pub fn quorum(mut self, quorum: u32) -> Self {
        self.quorum = quorum.clamp(2, 9);
        self
    }

    /// Checks every output with `module`'s `#[verifier]` `name`, run by the server; a
    /// rejected output runs again on another worker.
    pub fn verify(mut self, module: &ModuleRef, name: &str) -> Self {
        self.verify = Some((module.hash, name.to_owned()));
        self
    }

    /// For a reduce: how many values each task folds (default 2).
    pub fn fan_in(mut self, fan_in: u64) -> Self {
        self.fan_in = fan_in;
        self
    }

    /// One task per input, in order: values, a range, or the outputs of a promise (a task
    /// then starts as soon as its input exists).
    pub fn map(self, inputs: impl Into<Input>) -> Promise {
        let source = inputs.into().part(Application::Map).map(DraftSource::One);
        self.make(None, source)
    }

    /// One task per index, its arguments taken from each part at that index (a task of
    /// several parameters); the parts must have the same length.
    pub fn zip(self, parts: impl IntoIterator<Item = Input>) -> Promise {
        let parts: Result<Vec<DraftPart>, DraftError> = parts
            .into_iter()
            .enumerate()
            .map(|(j, part)| part.part(Application::Zip(j)))
            .collect();
        self.make(None, parts.map(DraftSource::Zip))
    }

    /// `count` tasks over one value, task `i` given `(value, i, count)`.
    pub fn scatter(self, value: impl Serialize, count: u64) -> Promise {
        let source = serde_json::value::to_raw_value(&value)
            .map(|value| DraftSource::Scatter { value, count })
            .map_err(DraftError::ScatterNotJson);
        self.make(None, source)
    }

    /// A stage that grows: each task returns its output and new inputs (`Explore`), which
    /// run in turn unless seen before, up to `max_tasks` tasks in all (0: the default,
    /// [`DEFAULT_MAX_EXPLORE_TASKS`]).
    pub fn explore(self, inputs: impl Into<Input>, max_tasks: u64) -> Promise {
        let max = if max_tasks == 0 {
            DEFAULT_MAX_EXPLORE_TASKS
        } else {
            max_tasks
        };
        let source = inputs
            .into()
            .part(Application::Explore)
            .map(DraftSource::One);
        self.make(Some(max), source)
    }

    /// Folds every output of `of` into one, as a tree of tasks of fixed shape (the result
    /// is the same on every run).
    pub fn reduce(self, of: &Promise) -> Reduced {
        let source = DraftSource::Reduce {
            read: of.read(),
            fan_in: self.fan_in,
        };
        Reduced::new(self.make(None, Ok(source)))
    }

    /// Makes the promise and queues its stage; the server checks it and says what is wrong.
    fn make(self, explore: Option<u64>, source: Result<DraftSource, DraftError>) -> Promise {
        let name = self
            .link
            .stage_name(self.name.as_deref().unwrap_or(&self.export));
        let promise = Promise::new(self.link.clone(), name.clone());
        match source {
            Err(error) => promise.fail(error.to_string()),
            Ok(source) => {
                let draft = Draft {
                    name,
                    module: self.module,
                    export: self.export,
                    source,
                    limits: self.limits,
                    max_attempts: self.max_attempts,
                    stop_after: self.stop_after,
                    explore,
                    replicate: self.replicate,
                    quorum: self.quorum,
                    verify: self.verify,
                    deadline: self.deadline,
                    check_types: self.check_types,
                };
                self.link.send(Up::Stage {
                    promise: promise.id(),
                    draft: Box::new(draft),
                });
            }
        }
        promise
    }
}

/// Why a stage cannot be sent to the server: what the driver was given, or a stage it reads
/// that could not be made. The promise fails with it as [`crate::DriverError::Invalid`].
#[derive(Debug, Error)]
pub(crate) enum DraftError {
    /// An input value cannot be serialised to JSON.
    #[error("input {index} cannot be JSON: {error}")]
    InputNotJson {
        /// Its position.
        index: usize,
        /// Why.
        error: serde_json::Error,
    },
    /// `start..=u64::MAX`, which has one value too many to be a range.
    #[error("a range cannot end at u64::MAX inclusive")]
    RangeToMax,
    /// A scatter's value cannot be serialised to JSON.
    #[error("the scattered value cannot be JSON: {0}")]
    ScatterNotJson(serde_json::Error),
    /// What is wrong with the inputs of an application.
    #[error("{application}: {error}")]
    In {
        /// The application.
        application: Application,
        /// What is wrong.
        error: Box<DraftError>,
    },
    /// The stage reads a promise that has no stage.
    #[error("it reads stage {stage:?}, which could not be made: {error}")]
    Unread {
        /// The stage read.
        stage: String,
        /// Why it has none.
        error: Unmade,
    },
}

/// Why a promise a stage reads has no stage on the server.
#[derive(Debug, Error)]
pub(crate) enum Unmade {
    /// It failed.
    #[error(transparent)]
    Failed(crate::DriverError),
    /// It was never sent.
    #[error("it was not made")]
    Pending,
}

/// How a task is applied to inputs, in messages.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Application {
    /// `map`.
    Map,
    /// `explore`.
    Explore,
    /// Part `j` of a zip: `zip[j]`.
    Zip(usize),
}

impl std::fmt::Display for Application {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Map => f.write_str("map"),
            Self::Explore => f.write_str("explore"),
            Self::Zip(j) => write!(f, "zip[{j}]"),
        }
    }
}

/// A stage read by another: its promise's id and name.
pub(crate) struct Read {
    pub(crate) promise: usize,
    pub(crate) name: String,
}

/// One part of a zip, or the input of a one-argument application.
enum DraftPart {
    List(Inputs),
    Stage(Read),
}

enum DraftSource {
    One(DraftPart),
    Zip(Vec<DraftPart>),
    Scatter { value: Box<RawJson>, count: u64 },
    Reduce { read: Read, fan_in: u64 },
}

/// A stage made by the driver, to be sent once the stages it reads have numbers.
pub(crate) struct Draft {
    pub(crate) name: String,
    module: ModuleHash,
    export: String,
    source: DraftSource,
    limits: TaskLimits,
    max_attempts: u32,
    stop_after: u64,
    explore: Option<u64>,
    replicate: Replicate,
    quorum: u32,
    verify: Option<(ModuleHash, String)>,
    deadline: Option<Duration>,
    check_types: bool,
}

impl Draft {
    /// The modules it runs.
    pub(crate) fn modules(&self) -> impl Iterator<Item = &ModuleHash> {
        std::iter::once(&self.module).chain(self.verify.as_ref().map(|(module, _)| module))
    }

    /// The stage as the server takes it, with `number` giving the server's number of each
    /// promise read (or why it has none).
    ///
    /// # Errors
    /// [`DraftError::Unread`] when a promise it reads has no stage.
    pub(crate) fn to_json(
        &self,
        number: impl Fn(usize) -> Result<usize, Unmade>,
    ) -> Result<serde_json::Value, DraftError> {
        let stage = |read: &Read| {
            number(read.promise).map_err(|error| DraftError::Unread {
                stage: read.name.clone(),
                error,
            })
        };
        let part = |part: &DraftPart| -> Result<serde_json::Value, DraftError> {
            Ok(match part {
                DraftPart::List(inputs) => json!({ "list": inputs.to_json() }),
                DraftPart::Stage(read) => json!({ "stage": stage(read)? }),
            })
        };
        let source = match &self.source {
            DraftSource::One(one) => part(one)?,
            DraftSource::Zip(parts) => {
                let parts: Result<Vec<_>, DraftError> = parts.iter().map(part).collect();
                json!({ "zip": parts? })
            }
            DraftSource::Scatter { value, count } => {
                json!({ "scatter": { "value": value, "count": count } })
            }
            DraftSource::Reduce { read, fan_in } => {
                json!({ "reduce": { "stage": stage(read)?, "fan_in": fan_in } })
            }
        };
        Ok(json!({
            "name": self.name,
            "module": self.module,
            "export": self.export,
            "source": source,
            // Counted by the server.
            "tasks": 0,
            "limits": self.limits,
            "max_attempts": self.max_attempts,
            "stop_after": self.stop_after,
            "stoppable": false,
            "explore": self.explore,
            "replicate": self.replicate,
            "quorum": self.quorum,
            "verify": self.verify,
            "deadline": self.deadline,
            "check_types": self.check_types,
        }))
    }
}
