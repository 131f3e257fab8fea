//! Why a stage a driver makes cannot be added to its job: what the driver gave, or what the
//! checks of [`crate::run::stage_check`] found. The driver API reports it as
//! [`crate::DriverError::Invalid`], a remote driver's `POST /api/jobs/ID/stages` as a `400`.

use std::fmt;

use dipla_sandbox::abi::{AbiError, MemoryTooSmall};
use thiserror::Error;

use crate::DriverError;
use crate::manifest::types::TypeError;

/// Why a stage cannot be made.
#[derive(Debug, Error)]
pub enum StageError {
    // What a driver gives.
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
    /// The same inputs given to a second application.
    #[error("the inputs were used already")]
    InputsUsed,
    /// A scatter's value cannot be serialised to JSON.
    #[error("the scattered value cannot be JSON: {0}")]
    ScatterNotJson(serde_json::Error),
    /// The module has no such task.
    #[error("module {module}: {error}")]
    Task {
        /// The module's name.
        module: String,
        /// Why.
        error: AbiError,
    },
    /// The verifier asked for is a task, not a `#[verifier]`.
    #[error("verify: {task} is not a #[verifier]")]
    NotVerifier {
        /// The task's signature.
        task: String,
    },
    /// The verifier's module has no such export.
    #[error("verify: module {module}: {error}")]
    Verifier {
        /// The module's name.
        module: String,
        /// Why.
        error: AbiError,
    },
    /// The stage reads a promise that could not be made.
    #[error("it reads stage {stage:?}, which could not be made: {error}")]
    Unmade {
        /// The stage read.
        stage: String,
        /// Why it could not be made.
        error: DriverError,
    },
    /// What is wrong with the inputs of an application.
    #[error("{application}: {error}")]
    In {
        /// The application.
        application: Application,
        /// What is wrong.
        error: Box<StageError>,
    },

    // What the checks against the job find.
    /// The stage reads a stage the job does not have.
    #[error("it reads stage {0}, which does not exist")]
    NoStage(usize),
    /// An application, or a zip's part, without inputs.
    #[error("{0}: there are no inputs")]
    NoInputs(Application),
    /// A zip of nothing.
    #[error("a zip needs at least one part")]
    EmptyZip,
    /// A zip's part reads a stage whose outputs are not one per index.
    #[error(
        "zip[{part}]: stage {stage:?} can stop early or explores, so a zip cannot match it by index"
    )]
    Sparse {
        /// The part.
        part: usize,
        /// The stage it reads.
        stage: String,
    },
    /// A zip whose parts differ in length.
    #[error("the zip's parts differ in length ({})", join(.0, ", "))]
    Lengths(Vec<u64>),
    /// An application that gives the task another number of arguments than it takes.
    #[error("{by} gives {given} argument(s) but {task} takes {takes}")]
    Arity {
        /// Who gives them: `the zip`, `scatter`.
        by: String,
        /// How many.
        given: usize,
        /// The task's signature.
        task: String,
        /// How many it takes.
        takes: usize,
    },
    /// A scatter of no tasks.
    #[error("scatter needs a count of at least 1")]
    NoCount,
    /// A reduce folding fewer than two values at a time.
    #[error("a reduce needs a fan-in of at least 2")]
    FanIn,
    /// A reduce with a task that cannot fold.
    #[error(
        "{task} cannot reduce: a reducer takes two parameters of its result's type, such as add(a: u64, b: u64) -> u64"
    )]
    NotReducer {
        /// The task's signature.
        task: String,
    },
    /// An explore stage reading another stage, or a zip or a scatter.
    #[error("an explore stage starts from values or a range")]
    ExploreSource,
    /// An explore stage allowed fewer tasks than it starts with.
    #[error("max_tasks {max} is less than the {tasks} inputs it starts with")]
    MaxTasks {
        /// Its `max_tasks`.
        max: u64,
        /// The inputs it starts with.
        tasks: u64,
    },
    /// The stages it reads ended with no outputs.
    #[error("it reads {}, which ended with no outputs", quoted(.0))]
    NoOutputs(Vec<String>),
    /// The memory limit leaves a task no room.
    #[error(transparent)]
    Memory(#[from] MemoryTooSmall),
    /// What it feeds its task does not fit the task's types.
    #[error(transparent)]
    Types(#[from] TypeError),
}

impl StageError {
    /// This error, of the inputs of `application`.
    pub(crate) fn of(self, application: Application) -> Self {
        Self::In {
            application,
            error: Box::new(self),
        }
    }
}

/// How a task is applied to inputs, in messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Application {
    /// `map`.
    Map,
    /// `explore`.
    Explore,
    /// Part `j` of a zip: `zip[j]`.
    Zip(usize),
}

impl fmt::Display for Application {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Map => f.write_str("map"),
            Self::Explore => f.write_str("explore"),
            Self::Zip(j) => write!(f, "zip[{j}]"),
        }
    }
}

/// `items`, separated by `separator`.
fn join(items: &[u64], separator: &str) -> String {
    let items: Vec<String> = items.iter().map(u64::to_string).collect();
    items.join(separator)
}

/// `"a" and "b"`.
fn quoted(names: &[String]) -> String {
    let names: Vec<String> = names.iter().map(|name| format!("{name:?}")).collect();
    names.join(" and ")
}
