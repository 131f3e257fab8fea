//! Whether a module's task fits the place a stage gives it: how many arguments it takes, and
//! whether it can fold a reduction's groups. Pure checks on the task's signature, used when the
//! manifest is loaded and when a driver adds a stage.

use dipla_sandbox::abi::TaskInfo;

use crate::manifest::stage_error::StageError;

/// Checks that `task` takes `given` arguments (`by` names who gives them, for the message).
///
/// # Errors
/// [`StageError::Arity`], naming both counts and the task's signature.
pub(crate) fn check_arity(task: &TaskInfo, given: usize, by: &str) -> Result<(), StageError> {
    match task.arity() {
        Some(takes) if takes != given => Err(StageError::Arity {
            by: by.to_owned(),
            given,
            task: task.to_string(),
            takes,
        }),
        _ => Ok(()),
    }
}

/// Checks that `task` can fold groups of `fan_in` values: it takes two values of its result's
/// type (a `#[task]` the macro marks as able to reduce), or its module does not say.
///
/// # Errors
/// [`StageError::FanIn`] or [`StageError::NotReducer`].
pub(crate) fn check_reducer(task: &TaskInfo, fan_in: u64) -> Result<(), StageError> {
    if fan_in < 2 {
        return Err(StageError::FanIn);
    }
    if task.fold || (task.arity() == Some(2) && fan_in == 2) || task.arity().is_none() {
        Ok(())
    } else {
        Err(StageError::NotReducer {
            task: task.to_string(),
        })
    }
}
