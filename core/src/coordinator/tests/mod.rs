//! The coordinator's examples, by concern; the helpers they share.

mod assign;
mod deadline;
mod effects;
mod failure;
mod pause;
mod replicate;
mod restore;
mod speculate;
mod stages;
mod trust;
mod workers;

use std::collections::{HashMap, HashSet};

use dipla_protocol::{FailureKind, RawJson, TaskFailure};

use super::{Coordinator, DEADLINE_GRACE, MAX_LOST};
use crate::effect::{Effect, Event, Wake};
use crate::fleet::{MAX_PER_CORE, MIN_PER_CORE};
use crate::plan::{Feed, Keep, Replicate, StagePlan};
use crate::record::Record;
use crate::types::{
    Answer, Assignment, AttemptId, Check, Counts, Finished, Outcome, TaskRef, Violation, WorkerId,
};

/// The records `c` asked to journal since its effects were last taken (taking them).
fn journal(c: &mut Coordinator) -> Vec<Record> {
    c.take_effects()
        .into_iter()
        .filter_map(|effect| match effect {
            Effect::Journal(record) => Some(record),
            _ => None,
        })
        .collect()
}

/// The attempts `c` asked `worker` to stop since its effects were last taken (taking them).
fn cancels(c: &mut Coordinator, worker: WorkerId) -> Vec<AttemptId> {
    c.take_effects()
        .into_iter()
        .filter_map(|effect| match effect {
            Effect::Cancel {
                worker: w,
                attempts,
            } if w == worker => Some(attempts),
            _ => None,
        })
        .flatten()
        .collect()
}

/// Whether `c` asked to wake every connection since its effects were last taken (taking
/// them).
fn woke_all(c: &mut Coordinator) -> bool {
    c.take_effects()
        .iter()
        .any(|effect| matches!(effect, Effect::Wake(Wake::All)))
}

fn output(text: &str) -> Result<Box<RawJson>, TaskFailure> {
    Ok(RawJson::from_string(text.to_owned()).unwrap())
}

fn panic() -> Result<Box<RawJson>, TaskFailure> {
    failure(FailureKind::Panic, "boom")
}

fn failure(kind: FailureKind, message: &str) -> Result<Box<RawJson>, TaskFailure> {
    Err(TaskFailure {
        kind,
        message: message.into(),
    })
}

fn task(stage: usize, index: u64) -> TaskRef {
    TaskRef { stage, index }
}

/// The tasks of `assignments`, in order.
fn tasks(assignments: &[Assignment]) -> Vec<TaskRef> {
    tasks_of(&ids(assignments))
}

/// The tasks of these attempts, in order.
fn tasks_of(attempts: &[(AttemptId, TaskRef)]) -> Vec<TaskRef> {
    attempts.iter().map(|&(_, task)| task).collect()
}

/// When an attempt given out at 0 under a 1 s deadline is first overdue.
const OVERDUE: u64 = 1_000_000 + DEADLINE_GRACE + 1;

fn plan(tasks: u64) -> StagePlan {
    StagePlan {
        name: "s".into(),
        tasks,
        max_attempts: 3,
        feed: Feed::Inputs,
        stop_after: 1,
        stoppable: false,
        explore: None,
        keep: Keep::Ordered,
        replicate: Replicate::Off,
        quorum: 2,
        deadline: None,
        fuel: 1_000_000_000,
        timeout: 60_000_000,
    }
}

fn fed(tasks: u64, feed: Feed) -> StagePlan {
    StagePlan {
        name: "d".into(),
        tasks,
        max_attempts: 1,
        feed,
        stop_after: 1,
        stoppable: false,
        explore: None,
        keep: Keep::Ordered,
        replicate: Replicate::Off,
        quorum: 2,
        deadline: None,
        fuel: 1_000_000_000,
        timeout: 60_000_000,
    }
}

fn ids(assignments: &[Assignment]) -> Vec<(AttemptId, TaskRef)> {
    assignments
        .iter()
        .flat_map(|a| {
            a.tasks.iter().map(|&(id, index)| {
                (
                    id,
                    TaskRef {
                        stage: a.stage,
                        index,
                    },
                )
            })
        })
        .collect()
}

/// Runs every assignable task on worker 1, answering with `answer(task, input values)`.
fn run_all(c: &mut Coordinator, answer: impl Fn(TaskRef, &Coordinator) -> Outcome) {
    loop {
        let tasks = ids(&c.assign(1));
        if tasks.is_empty() {
            return;
        }
        for (id, task) in tasks {
            let outcome = answer(task, c);
            c.complete(1, id, 5, outcome).unwrap();
        }
    }
}

/// Runs every assignable task on `workers` in turn until none is left, answering with
/// `answer(worker, task)`.
fn run_all_on(
    c: &mut Coordinator,
    workers: &[WorkerId],
    answer: impl Fn(WorkerId, TaskRef) -> Outcome,
) {
    run_all_reading(c, workers, |worker, task, _| answer(worker, task));
}

/// Like [`run_all_on`], with `answer(worker, task, c)` free to read the coordinator (a
/// reduce task's group, a mapped task's item).
fn run_all_reading(
    c: &mut Coordinator,
    workers: &[WorkerId],
    answer: impl Fn(WorkerId, TaskRef, &Coordinator) -> Outcome,
) {
    loop {
        let mut any = false;
        for &worker in workers {
            for (id, task) in ids(&c.assign(worker)) {
                any = true;
                let outcome = answer(worker, task, c);
                let answer = Answer {
                    fuel: 0,
                    micros: 5,
                    outcome,
                    stop: false,
                    verified: false,
                    capped: false,
                };
                c.answer(worker, id, answer).unwrap();
            }
        }
        if !any {
            return;
        }
    }
}
