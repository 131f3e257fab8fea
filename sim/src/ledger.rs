//! What the journal says so far, as the simulator reads it: every task's current final
//! result, the inputs explore stages discovered, goals met. It is built from the very
//! records the core emitted (the ones a restarted server replays), and checks each as it
//! comes: a task is final once, an accepted output is what the task computes, a stage whose
//! every answer is checked discovers only inputs an honest answer names, and no output of an
//! identity caught lying stands in a stage that can still take it back.

use std::collections::{BTreeMap, HashMap, HashSet};

use dipla_core::{Check, Outcome, Record, TaskRef};
use dipla_protocol::FailureKind;

use crate::shape::{Computed, Input, Job, Kind};

/// A final result, as journaled.
#[derive(Debug, Clone)]
pub struct Final {
    /// Its output's value or its failure kind.
    pub value: Result<u64, FailureKind>,
    /// How it was checked.
    pub check: Check,
    /// The identity that gave it.
    pub by: Option<String>,
}

/// The journal as read so far.
#[derive(Debug, Default)]
pub struct Ledger {
    /// Every task's current final result (a revoked one is removed).
    pub finals: BTreeMap<TaskRef, Final>,
    /// Each explore stage's discovered inputs, in order.
    pub discovered: HashMap<usize, Vec<u64>>,
    /// Wrong outputs accepted from liars (unchecked, in stages that do not check them all).
    pub lies_accepted: HashSet<TaskRef>,
    /// Results revoked.
    pub revoked: u64,
    /// Each fully checked explore stage's inputs an honest run reaches (worked out when first
    /// needed).
    reachable: HashMap<usize, HashSet<u64>>,
}

/// Parses an output the core holds as a number.
pub fn number(raw: &dipla_protocol::RawJson) -> Result<u64, String> {
    raw.get()
        .parse()
        .map_err(|_| format!("output {} is not a number", raw.get()))
}

fn value_of(outcome: &Outcome) -> Result<Result<u64, FailureKind>, String> {
    match outcome {
        Ok(raw) => number(raw).map(Ok),
        Err(failure) => Ok(Err(failure.kind)),
    }
}

impl Ledger {
    /// Reads one record. `liars` are the keys of identities that lie; `caught` those the
    /// core untrusted so far.
    ///
    /// # Errors
    /// When the record breaks an invariant.
    pub fn read(
        &mut self,
        job: &Job,
        record: &Record,
        liars: &HashSet<String>,
        caught: &HashSet<String>,
    ) -> Result<(), String> {
        match record {
            Record::Result {
                task,
                outcome,
                check,
                by,
            } => {
                if self.finals.contains_key(task) {
                    return Err(format!("task {task:?} became final twice"));
                }
                let value = value_of(outcome)?;
                if let (Ok(got), Some(want)) = (value, self.expected(job, *task)) {
                    let want = want.value.as_ref().ok().copied();
                    if want != Some(got) {
                        let liar = by.as_ref().is_some_and(|by| liars.contains(by));
                        let spec = &job.stages[task.stage];
                        if !(liar && *check == Check::Unchecked && !spec.fully_checked()) {
                            return Err(format!(
                                "task {task:?} accepted output {got} ({check}, by {by:?}); it computes {want:?}"
                            ));
                        }
                        self.lies_accepted.insert(*task);
                    }
                }
                // A reduce's groups are not checked one by one here: one a liar gave
                // unchecked may be a lie that stands (the model lets unchecked lies through
                // at the sampling rate), so the written sum is not compared.
                if matches!(job.stages[task.stage].kind, Kind::Reduce(_))
                    && *check == Check::Unchecked
                    && by.as_ref().is_some_and(|by| liars.contains(by))
                    && !job.stages[task.stage].fully_checked()
                {
                    self.lies_accepted.insert(*task);
                }
                if let Some(by) = by
                    && caught.contains(by)
                    && *check == Check::Unchecked
                    && job.stages[task.stage].replicated()
                {
                    return Err(format!(
                        "task {task:?} accepted an output of {by}, already caught lying"
                    ));
                }
                self.finals.insert(
                    *task,
                    Final {
                        value,
                        check: *check,
                        by: by.clone(),
                    },
                );
            }
            Record::Revoked(task) => {
                // A reduce's group folded from a revoked one goes with it, whether it was
                // run or passed up.
                let reduce = matches!(job.stages[task.stage].kind, Kind::Reduce(_));
                if self.finals.remove(task).is_none() && !reduce {
                    return Err(format!("task {task:?} revoked but not final"));
                }
                self.lies_accepted.remove(task);
                self.revoked += 1;
            }
            Record::Discovered { stage, input } => {
                let input = number(input)?;
                let spec = &job.stages[*stage];
                if spec.fully_checked() {
                    let reachable = self
                        .reachable
                        .entry(*stage)
                        .or_insert_with(|| job.reachable(*stage));
                    if !reachable.contains(&input) {
                        return Err(format!(
                            "stage {stage}, whose every answer is checked, discovered input {input}, which no honest answer names"
                        ));
                    }
                }
                self.discovered.entry(*stage).or_default().push(input);
            }
            Record::Goal(_) | Record::Identity { .. } | Record::Receipt { .. } => {}
            Record::Worker { .. } => {}
        }
        Ok(())
    }

    /// The input task `task` ran on, from the final results it read, if it can be told
    /// (a reduce's inner groups are the core's own business).
    pub fn input(&self, job: &Job, task: TaskRef) -> Option<Input> {
        match &job.stages[task.stage].kind {
            Kind::Map => Some(Input::Value(job.input(task.stage, task.index))),
            Kind::Explore { seeds, .. } => {
                let n = task.index as usize;
                let value = match seeds.get(n) {
                    Some(&seed) => seed,
                    None => *self.discovered.get(&task.stage)?.get(n - seeds.len())?,
                };
                Some(Input::Value(value))
            }
            Kind::Zip(sources) => {
                let mut items = Vec::new();
                for &source in sources {
                    let found = self.finals.get(&TaskRef {
                        stage: source,
                        index: task.index,
                    })?;
                    items.push(*found.value.as_ref().ok()?);
                }
                Some(Input::Items(items))
            }
            Kind::Reduce(_) => None,
        }
    }

    /// What task `task` computes on the input the journal says it had.
    pub fn expected(&self, job: &Job, task: TaskRef) -> Option<Computed> {
        Some(job.compute(task.stage, &self.input(job, task)?))
    }

    /// How many of `stage`'s results are final (not counting a reduce's inner groups).
    pub fn done(&self, job: &Job, stage: usize) -> u64 {
        let count = self
            .finals
            .range(
                TaskRef { stage, index: 0 }..TaskRef {
                    stage: stage + 1,
                    index: 0,
                },
            )
            .count() as u64;
        match job.stages[stage].kind {
            Kind::Reduce(_) => 0,
            _ => count,
        }
    }
}
