//! Final results: recording one (and journaling it), keeping it for whoever still reads it,
//! and the writer taking them in order.

use dipla_protocol::RawJson;

use super::Coordinator;
use crate::fleet::IdentityId;
use crate::plan::{Feed, Keep};
use crate::record::Record;
use crate::types::{Check, Finished, Outcome, TaskRef};

/// Who produced a final result and how it was checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Proof {
    pub(super) by: Option<IdentityId>,
    pub(super) check: Check,
}

impl Proof {
    pub(super) const NONE: Self = Self {
        by: None,
        check: Check::Unchecked,
    };
}

/// A final result, kept while someone still reads it.
#[derive(Debug)]
pub(super) struct Entry {
    pub(super) outcome: Outcome,
    pub(super) attempts: u32,
    /// Readers not done with it: stages reading it, and the writer.
    pub(super) readers: u32,
    /// Who produced it and how it was checked.
    pub(super) proof: Proof,
}

impl Coordinator {
    /// A task has its final outcome: record it and make ready what was waiting for it.
    pub(super) fn finish(&mut self, task: TaskRef, outcome: Outcome, proof: Proof) {
        if self.journaling {
            let by = proof.by.map(|identity| self.fleet.key(identity).to_owned());
            self.journal(|| Record::Result {
                task,
                outcome: outcome.clone(),
                check: proof.check,
                by,
            });
        }
        self.ready();
        // Final once: no copy of it waits in a queue (a retry asked for twice, a replica
        // or an overdue reissue) or runs on.
        self.reissued.remove(&task);
        self.retries.discard(task);
        self.ready.discard(task);
        if self.live.contains_key(&task) {
            self.cancel_copies(task);
        }
        let history = self.history.remove(&task).unwrap_or_default();
        let attempts = history.tries + u32::from(outcome.is_ok());
        let node = self.stages[task.stage]
            .tree
            .as_ref()
            .map(|tree| tree.node(task.index));
        match node {
            Some((level, position)) => {
                if let (Some(by), Check::Unchecked) = (proof.by, proof.check)
                    && let Some(tree) = self.stages[task.stage].tree.as_mut()
                    && level < tree.top()
                {
                    tree.by.insert((level, position), by);
                }
                self.tree_value(task.stage, level, position, outcome, attempts, proof);
            }
            None => self.result(task, outcome, attempts, proof),
        }
    }

    /// A stage's result `task` is final: count it, keep it for those who read it, and feed
    /// the stages reading it.
    pub(super) fn result(&mut self, task: TaskRef, outcome: Outcome, attempts: u32, proof: Proof) {
        // However it became final (run, failed upstream, folded): the writer may take it.
        self.ready();
        match outcome {
            Ok(_) => self.counts.succeeded += 1,
            Err(_) => self.counts.failed += 1,
        }
        let state = &mut self.stages[task.stage];
        state.done += 1;
        match (&outcome, proof.check) {
            (Err(_), _) => state.progress.failed += 1,
            (Ok(_), Check::Unchecked) => state.progress.unchecked += 1,
            (Ok(_), Check::Verified) => state.progress.verified += 1,
            (Ok(_), Check::Replicated(_)) => state.progress.replicated += 1,
        }
        let keep = state.plan.keep;
        let held = state.held();
        if keep == Keep::All && !held {
            // A held stage's results are logged when it is released: until then they may
            // still be revoked, and nobody may see them.
            state.log.push(task.index);
        }
        let dependents = state.dependents.clone();
        let mut readers = u32::from(keep == Keep::Ordered);
        for &dependent in &dependents {
            let shaped = self.stages[dependent].tree.is_some();
            if matches!(self.stages[dependent].plan.feed, Feed::Reduce { .. }) && shaped && !held {
                // A dense stage's reduce: item `i` is at position `i`.
                self.tree_value(dependent, 0, task.index, outcome.clone(), 0, Proof::NONE);
            } else {
                readers += 1;
            }
        }
        if readers > 0 || keep == Keep::All || held {
            let entry = Entry {
                outcome,
                attempts,
                readers,
                proof,
            };
            self.stages[task.stage].results.insert(task.index, entry);
        }
        if held {
            // Released, with its inputs, when the stage completes.
            return;
        }
        for dependent in dependents {
            if let Feed::Items(sources) = self.stages[dependent].plan.feed.clone() {
                self.feed_item(dependent, &sources, task.index, task.stage);
            }
        }
        if keep != Keep::Ordered {
            self.release_inputs(task);
        }
    }

    /// The output of item `index` of `stage`, if it succeeded and is still kept.
    pub fn item(&self, stage: usize, index: u64) -> Option<&RawJson> {
        match self.stages[stage].results.get(&index).map(|e| &e.outcome) {
            Some(Ok(output)) => Some(output),
            _ => None,
        }
    }

    /// The final result `index` of `stage`, if it is kept.
    pub fn result_of(&self, stage: usize, index: u64) -> Option<&Outcome> {
        self.stages[stage].results.get(&index).map(|e| &e.outcome)
    }

    /// The kept results of `stage`, in index order.
    pub fn results(&self, stage: usize) -> impl Iterator<Item = (u64, &Outcome)> {
        self.stages[stage]
            .results
            .iter()
            .map(|(&index, entry)| (index, &entry.outcome))
    }

    /// The indexes of `stage`'s results in the order they became final (for a stage whose
    /// results a promise holds).
    pub fn log(&self, stage: usize) -> &[u64] {
        &self.stages[stage].log
    }

    /// Takes the finished results of [`Keep::Ordered`] stages that are next in order: stage
    /// by stage, each stage's in input order, a stage only once every earlier one is
    /// complete. Within a stage that stopped early or read one, indexes without a result are
    /// skipped once the stage is complete.
    pub fn take_ready(&mut self) -> Vec<Finished> {
        let mut ready = Vec::new();
        for stage in 0..self.stages.len() {
            if self.stages[stage].plan.keep != Keep::Ordered {
                continue;
            }
            let gaps = self.is_stage_complete(stage);
            let state = &self.stages[stage];
            if state.held() {
                break;
            }
            let mut next = state.cursor;
            let mut indexes = Vec::new();
            for &index in state.results.range(state.cursor..).map(|(index, _)| index) {
                if index != next && !gaps {
                    break;
                }
                indexes.push(index);
                next = index + 1;
            }
            for index in indexes {
                ready.push(self.take(stage, index));
            }
            let state = &self.stages[stage];
            if !(gaps && state.taken == state.done) {
                break;
            }
        }
        ready
    }

    /// The writer takes result `index` of `stage`.
    fn take(&mut self, stage: usize, index: u64) -> Finished {
        let task = TaskRef { stage, index };
        let items = match &self.stages[stage].plan.feed {
            Feed::Items(sources) => sources
                .iter()
                .map(|&source| self.item(source, index).map(ToOwned::to_owned))
                .collect(),
            _ => Vec::new(),
        };
        let state = &mut self.stages[stage];
        state.cursor = index + 1;
        state.taken += 1;
        let entry = state
            .results
            .get_mut(&index)
            .expect("taken from the results");
        entry.readers -= 1;
        let check = entry.proof.check;
        let (outcome, attempts) = if entry.readers == 0 {
            let entry = state.results.remove(&index).expect("present");
            (entry.outcome, entry.attempts)
        } else {
            (entry.outcome.clone(), entry.attempts)
        };
        self.release_inputs(task);
        Finished {
            task,
            outcome,
            attempts,
            items,
            check,
        }
    }

    /// Whether every result is final and every [`Keep::Ordered`] one has been taken.
    pub fn is_complete(&self) -> bool {
        (0..self.stages.len()).all(|stage| {
            let state = &self.stages[stage];
            self.is_stage_complete(stage)
                && (state.plan.keep != Keep::Ordered || state.taken == state.done)
        })
    }
}
