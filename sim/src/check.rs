//! The checks made once a job is complete: every line was written once, in order, and says
//! what the reference computation says — an output equal to the task's, or a failure the
//! run explains (the task fails everywhere, its input failed, or enough distinct identities
//! were lost running it).

use std::collections::{BTreeMap, HashMap, HashSet};

use dipla_core::{Coordinator, Keep, TaskRef};
use dipla_protocol::FailureKind;

use crate::ledger::Ledger;
use crate::shape::{Input, Job, Kind, MODULUS};

/// What a line says: an output's value or a failure's kind.
type Line = Result<u64, FailureKind>;

/// Checks the written results of a complete job.
///
/// # Errors
/// The first line that is wrong, missing or written twice.
pub fn results(
    job: &Job,
    core: &Coordinator,
    ledger: &Ledger,
    written: &BTreeMap<TaskRef, Line>,
    lost_by: &HashMap<TaskRef, HashSet<usize>>,
    claimers: bool,
) -> Result<(), String> {
    for (stage, spec) in job.stages.iter().enumerate() {
        if spec.plan.keep != Keep::Ordered {
            continue;
        }
        let lines: Vec<(&TaskRef, &Line)> = written
            .range(
                TaskRef { stage, index: 0 }..TaskRef {
                    stage: stage + 1,
                    index: 0,
                },
            )
            .collect();
        if lines.len() as u64 != core.done(stage) {
            return Err(format!(
                "stage {stage}: {} lines written, {} results final",
                lines.len(),
                core.done(stage)
            ));
        }
        let complete = core.stopped(stage).is_none()
            && !reads_stopped(job, core, stage)
            && !matches!(spec.kind, Kind::Explore { .. });
        if complete && lines.len() as u64 != core.lines(stage) {
            return Err(format!(
                "stage {stage}: {} of its {} lines written",
                lines.len(),
                core.lines(stage)
            ));
        }
        if !ledger.lies_accepted.is_empty() {
            // A lie the model lets through (unchecked, in a stage that samples) changes what
            // reads it; each accepted output was still checked against its own input.
            continue;
        }
        for (&task, line) in lines {
            let want = reference(job, ledger, task);
            // A reduce writes one line for its whole tree: any of its groups lost on enough
            // machines fails it.
            let lost = match spec.kind {
                Kind::Reduce(_) => lost_by
                    .iter()
                    .filter(|(lost, _)| lost.stage == stage)
                    .map(|(_, by)| by.len())
                    .max()
                    .unwrap_or(0),
                _ => lost_by.get(&task).map_or(0, HashSet::len),
            } as u32;
            let explained = match (line, &want) {
                (got, want) if got == want => true,
                (Err(FailureKind::Worker), _) => lost >= dipla_core::MAX_LOST,
                (Err(FailureKind::Upstream), Err(FailureKind::Upstream)) => true,
                // A task that fails everywhere, out of attempts with no failure confirmed:
                // the most reported failure stands, and with made-up failures from hostile
                // identities tied with the honest one, it may be theirs. The task does fail;
                // its message is the claimer's (a limit of max_attempts, not a wrong result).
                (Err(FailureKind::Panic), Err(_)) => claimers,
                _ => false,
            };
            if !explained {
                return Err(format!(
                    "task {task:?} was written as {line:?}; the reference is {want:?} (lost by {lost})"
                ));
            }
        }
    }
    Ok(())
}

/// Whether `stage` reads a stage that stopped early (so lines may be missing).
fn reads_stopped(job: &Job, core: &Coordinator, stage: usize) -> bool {
    match &job.stages[stage].kind {
        Kind::Zip(sources) => sources
            .iter()
            .any(|&s| core.stopped(s).is_some() || reads_stopped(job, core, s)),
        Kind::Reduce(source) => {
            core.stopped(*source).is_some() || reads_stopped(job, core, *source)
        }
        Kind::Map | Kind::Explore { .. } => false,
    }
}

/// What task `task`'s line should say, from its inputs' final results.
fn reference(job: &Job, ledger: &Ledger, task: TaskRef) -> Line {
    match &job.stages[task.stage].kind {
        Kind::Map | Kind::Explore { .. } => match ledger.input(job, task) {
            Some(input) => computed(job, task.stage, &input),
            None => Err(FailureKind::Upstream),
        },
        Kind::Zip(sources) => {
            let mut items = Vec::new();
            for &source in sources {
                match line_of(job, ledger, source, task.index) {
                    Some(Ok(value)) => items.push(value),
                    _ => return Err(FailureKind::Upstream),
                }
            }
            computed(job, task.stage, &Input::Items(items))
        }
        Kind::Reduce(source) => {
            let mut sum = 0;
            let mut any = false;
            for index in 0..job.stages[*source].plan.tasks {
                match line_of(job, ledger, *source, index) {
                    None => {}
                    Some(Ok(value)) => {
                        any = true;
                        sum = (sum + value) % MODULUS;
                    }
                    Some(Err(_)) => return Err(FailureKind::Upstream),
                }
            }
            if any {
                Ok(sum)
            } else {
                Err(FailureKind::Upstream)
            }
        }
    }
}

/// The final result of task `index` of map or zip stage `stage`, if it has one: journaled,
/// or (not journaled) a failure of one of its inputs.
fn line_of(job: &Job, ledger: &Ledger, stage: usize, index: u64) -> Option<Line> {
    if let Some(result) = ledger.finals.get(&TaskRef { stage, index }) {
        return Some(result.value);
    }
    let Kind::Zip(sources) = &job.stages[stage].kind else {
        return None;
    };
    let mut failed = false;
    for &source in sources {
        failed |= line_of(job, ledger, source, index)?.is_err();
    }
    failed.then_some(Err(FailureKind::Upstream))
}

fn computed(job: &Job, stage: usize, input: &Input) -> Line {
    job.compute(stage, input)
        .value
        .map_err(|failure| failure.kind)
}
