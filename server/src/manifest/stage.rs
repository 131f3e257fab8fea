//! One stage's own settings, checked in the order they are reported, and the resolved
//! [`Stage`].

use std::time::Duration;

use dipla_protocol::{ModuleHash, TaskLimits};
use dipla_sandbox::abi::TaskInfo;

use super::modules::Guests;
use super::schema::StageFile;
use super::{DEFAULT_MAX_ATTEMPTS, Fault, checks, explore, may_stop};
use crate::{Source, Stage};

/// Stage `i` as `file` sets it, with its resolved `source` and number of tasks, its `task`
/// and the job's `limits`; its verifier is found in `guests`.
pub(super) fn stage(
    i: usize,
    file: StageFile,
    (source, count): (Source, u64),
    task: &(ModuleHash, String, TaskInfo),
    guests: &Guests<'_>,
    limits: TaskLimits,
) -> Result<Stage, Fault> {
    let max_attempts = file.max_attempts.unwrap_or(DEFAULT_MAX_ATTEMPTS);
    if max_attempts == 0 {
        return Err(Fault::new(
            format!("stages[{i}].max_attempts"),
            "must be at least 1",
        ));
    }
    let explore = explore::explore(i, file.explore.as_ref(), &source, count)?;
    let stop_after = explore::stop_after(i, file.stop_after)?;
    let replicate = checks::replicate(i, file.replicate.as_ref())?;
    let quorum = checks::quorum(i, file.quorum)?;
    let verify = checks::verify(i, file.verify.as_deref(), guests)?;
    let deadline = deadline(i, file.deadline_secs)?;
    let (module, export, info) = task.clone();
    Ok(Stage {
        deadline,
        replicate,
        quorum,
        verify,
        stoppable: may_stop(&info),
        name: file.name,
        module,
        export,
        source,
        tasks: count,
        limits,
        max_attempts,
        stop_after,
        explore,
        check_types: file.check_types.unwrap_or(true),
    })
}

/// `stages[i].deadline_secs`: how long a task may run before it is given to another worker
/// too (`None`: from its limits and the worker's speed).
fn deadline(i: usize, secs: Option<f64>) -> Result<Option<Duration>, Fault> {
    match secs {
        None => Ok(None),
        Some(secs) if secs.is_finite() && secs > 0.0 && secs < 1e9 => {
            Ok(Some(Duration::from_secs_f64(secs)))
        }
        Some(secs) => Err(Fault::new(
            format!("stages[{i}].deadline_secs"),
            format!("{secs} should be a positive number of seconds"),
        )),
    }
}
