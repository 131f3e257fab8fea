//! Checking a stage a driver makes against the job it joins, for the embedded driver and for
//! a remote one's `POST /api/jobs/ID/stages` alike: what it reads exists, its inputs fit its
//! task, and how many tasks it has, counted here (a remote driver's count is never trusted).

use dipla_sandbox::abi::TaskInfo;

use crate::manifest::job::{Part, Source, Stage};
use crate::manifest::may_stop;
use crate::manifest::stage_error::{Application, StageError};
use crate::manifest::task_fit::{check_arity, check_reducer};
use crate::manifest::types::{self, Signature, Upstream};
use crate::net::state::Core;

/// Checks `stage`, about to be added to `core`'s job, whose task is `info`; sets its task
/// count and whether it may stop early.
///
/// # Errors
/// A [`StageError`] saying what is wrong (the caller names the stage).
pub(crate) fn resolve(core: &Core, stage: &mut Stage, info: &TaskInfo) -> Result<(), StageError> {
    let stages = core.coordinator.stage_count();
    let name = |read: usize| core.job.stages[read].name.clone();
    let exists = |read: usize| {
        if read < stages {
            Ok(read)
        } else {
            Err(StageError::NoStage(read))
        }
    };
    let what = if stage.explore.is_some() {
        Application::Explore
    } else {
        Application::Map
    };
    let tasks = match &stage.source {
        Source::List(inputs) => {
            if inputs.is_empty() {
                return Err(StageError::NoInputs(what));
            }
            inputs.len()
        }
        Source::Stage(read) => core.coordinator.lines(exists(*read)?),
        Source::Zip(parts) => {
            if parts.is_empty() {
                return Err(StageError::EmptyZip);
            }
            check_arity(info, parts.len(), "the zip")?;
            let mut lengths = Vec::new();
            for (j, part) in parts.iter().enumerate() {
                lengths.push(match part {
                    Part::List(inputs) if inputs.is_empty() => {
                        return Err(StageError::NoInputs(Application::Zip(j)));
                    }
                    Part::List(inputs) => inputs.len(),
                    Part::Stage(read) => {
                        let read = exists(*read)?;
                        if !core.coordinator.is_dense(read) {
                            return Err(StageError::Sparse {
                                part: j,
                                stage: name(read),
                            });
                        }
                        core.coordinator.lines(read)
                    }
                });
            }
            if lengths.iter().any(|&length| length != lengths[0]) {
                return Err(StageError::Lengths(lengths));
            }
            lengths[0]
        }
        Source::Scatter { count, .. } => {
            check_arity(info, 3, "scatter")?;
            if *count == 0 {
                return Err(StageError::NoCount);
            }
            *count
        }
        Source::Reduce {
            stage: read,
            fan_in,
        } => {
            check_reducer(info, *fan_in)?;
            core.coordinator.lines(exists(*read)?)
        }
    };
    if let Some(max) = stage.explore {
        if !matches!(stage.source, Source::List(_)) {
            return Err(StageError::ExploreSource);
        }
        if tasks > max {
            return Err(StageError::MaxTasks { max, tasks });
        }
    }
    if tasks == 0 {
        let read = stage.stages_read().into_iter().map(name).collect();
        return Err(StageError::NoOutputs(read));
    }
    if let Some(guest) = core.job.guest(&stage.module) {
        guest.info().check_memory(stage.limits.memory_mb)?;
    }
    if stage.check_types {
        types::check_feed(
            info,
            &stage.source,
            stage.explore.is_some(),
            false,
            &|read| upstream(core, read),
        )?;
    }
    stage.tasks = tasks;
    stage.stoppable = may_stop(info);
    Ok(())
}

/// Stage `stage` of the job, as a type check of a stage reading it sees it.
fn upstream(core: &Core, stage: usize) -> Upstream {
    let stage = &core.job.stages[stage];
    let output = core
        .job
        .guest(&stage.module)
        .and_then(|guest| guest.check_task(&stage.export).ok())
        .map_or(types::Shape::Any, |info| {
            Signature::of(info).output(stage.explore.is_some())
        });
    Upstream {
        name: stage.name.clone(),
        output,
    }
}
