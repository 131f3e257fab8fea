use std::path::PathBuf;

use thiserror::Error;

/// Why a job manifest cannot run. Every variant names the file, key or path at fault.
#[derive(Debug, Error)]
pub enum ManifestError {
    /// The manifest file cannot be read.
    #[error("cannot read the manifest {path}")]
    Read {
        /// The manifest's path.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The manifest is not valid TOML or does not have the expected keys and types.
    #[error("{path}: {message}")]
    Syntax {
        /// The manifest's path.
        path: PathBuf,
        /// The parser's message, with the line and the key at fault.
        message: String,
    },
    /// A key has a value that cannot work.
    #[error("{path}: {key}: {message}")]
    Invalid {
        /// The manifest's path.
        path: PathBuf,
        /// The key at fault, such as `stages[0].task`.
        key: String,
        /// What is wrong.
        message: String,
    },
}

/// What went wrong in the driver API ([`crate::Dipla`]). Every variant names the stage,
/// task, module or path at fault; errors are cheap to clone, as a promise that cannot be made
/// hands its error to every promise made from it.
#[derive(Debug, Clone, Error, PartialEq, Eq)]
pub enum DriverError {
    /// The server cannot start.
    #[error("cannot start the Dipla server: {0}")]
    Start(String),
    /// A module cannot be read or is not a runnable guest.
    #[error("cannot load the module {path}: {message}")]
    Module {
        /// Where it was read from.
        path: PathBuf,
        /// Why it cannot be used.
        message: String,
    },
    /// A task cannot be applied as asked (no such task, wrong number of arguments, empty or
    /// mismatched inputs...).
    #[error("stage {stage:?}: {message}")]
    Invalid {
        /// The stage that was being made.
        stage: String,
        /// What is wrong.
        message: String,
    },
    /// A task failed (after its retries).
    #[error("{}", task_failed(stage, *index, failure))]
    Task {
        /// Its stage.
        stage: String,
        /// Its index in the stage (its input's position).
        index: u64,
        /// Why: the failure kind and message.
        failure: dipla_protocol::TaskFailure,
    },
    /// A task's output does not have the type asked for.
    #[error("output {index} of stage {stage:?} is not a {expected}: {message}")]
    Decode {
        /// Its stage.
        stage: String,
        /// Its index in the stage.
        index: u64,
        /// The Rust type asked for.
        expected: &'static str,
        /// The JSON decoder's message.
        message: String,
    },
    /// The server shut down before the result existed.
    #[error("the Dipla server has shut down")]
    Closed,
}

/// `task 3 of stage "x" returned an error: ...`, or `... failed: panic: ...`: the kind of
/// failure said once.
fn task_failed(stage: &str, index: u64, failure: &dipla_protocol::TaskFailure) -> String {
    match failure.kind {
        dipla_protocol::FailureKind::Guest => format!(
            "task {index} of stage {stage:?} returned an error: {}",
            failure.message
        ),
        _ => format!("task {index} of stage {stage:?} failed: {failure}"),
    }
}
