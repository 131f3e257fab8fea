//! What can go wrong in the driver API.

use std::path::PathBuf;

use dipla_protocol::{FailureKind, TaskFailure};
use thiserror::Error;

/// What went wrong in the driver API ([`crate::Dipla`]). Every variant names the stage,
/// task, module or path at fault; errors are cheap to clone, as a promise that cannot be made
/// hands its error to every promise made from it.
#[derive(Debug, Clone, Error, PartialEq, Eq)]
pub enum DriverError {
    /// The driver cannot start: the server cannot be reached or refuses it.
    #[error("cannot start the Dipla driver: {0}")]
    Start(String),
    /// A module cannot be read or is not a Dipla guest.
    #[error("cannot load the module {path}: {message}")]
    Module {
        /// Where it was read from.
        path: PathBuf,
        /// Why it cannot be used.
        message: String,
    },
    /// A task cannot be applied as asked (no such task, wrong number of arguments, empty or
    /// mismatched inputs...): the server refused the stage, saying why.
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
        failure: TaskFailure,
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
    /// The job ended (it was closed, cancelled, or the server went away) before the result
    /// existed.
    #[error("the Dipla job has ended")]
    Closed,
}

/// `task 3 of stage "x" returned an error: ...`, or `... failed: panic: ...`: the kind of
/// failure said once.
pub(crate) fn task_failed(stage: &str, index: u64, failure: &TaskFailure) -> String {
    match failure.kind {
        FailureKind::Guest => format!(
            "task {index} of stage {stage:?} returned an error: {}",
            failure.message
        ),
        _ => format!("task {index} of stage {stage:?} failed: {failure}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_task_error_is_named_once() {
        let error = DriverError::Task {
            stage: "halves".into(),
            index: 1,
            failure: TaskFailure {
                kind: FailureKind::Guest,
                message: "3 is odd".into(),
            },
        };
        assert_eq!(
            error.to_string(),
            r#"task 1 of stage "halves" returned an error: 3 is odd"#
        );
        let panic = DriverError::Task {
            stage: "halves".into(),
            index: 1,
            failure: TaskFailure {
                kind: FailureKind::Panic,
                message: "boom".into(),
            },
        };
        assert_eq!(
            panic.to_string(),
            r#"task 1 of stage "halves" failed: panic: boom"#
        );
    }
}
