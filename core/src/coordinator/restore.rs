//! The journal: what the coordinator records of workers and receipts, and replaying an
//! earlier run's records to bring a new coordinator back to its results.

use super::Coordinator;
use super::results::Proof;
use crate::plan::Feed;
use crate::record::Record;
use crate::types::{TaskRef, WorkerId};

impl Coordinator {
    /// Journals what the scheduler knows of `worker`, called `name`, as it leaves.
    pub fn journal_worker(&mut self, worker: WorkerId, name: &str) {
        if let Some(record) = self.fleet.record(worker) {
            self.journal(|| Record::Worker {
                name: name.to_owned(),
                record,
            });
        }
    }

    /// Journals a worker's receipt.
    pub fn journal_receipt(&mut self, receipt: Record) {
        self.journal(|| receipt);
    }

    /// Replays one record of an earlier run's journal, before any worker joins: a result
    /// becomes final without running its task (which leaves the queues), exactly as it did
    /// then. Replayed in journal order, the records rebuild the same results, the same
    /// discovered inputs and the same stops.
    pub fn restore(&mut self, record: Record) {
        match record {
            Record::Result {
                task,
                outcome,
                check,
                by,
            } => {
                self.unqueue(task);
                let by = by.map(|key| self.fleet.intern(&key));
                self.finish(task, outcome, Proof { by, check });
            }
            Record::Identity { key, credibility } => self.fleet.restore(&key, credibility),
            Record::Goal(task) => {
                if self.stages[task.stage].stopped.is_none() {
                    self.goal(task);
                }
            }
            Record::Discovered { stage, input } => {
                let state = &mut self.stages[stage];
                if state.seen.insert(input.get().to_owned()) {
                    state.discovered.push(input);
                    state.plan.tasks += 1;
                }
            }
            Record::Revoked(task) => self.revoke(task),
            Record::Worker { .. } | Record::Receipt { .. } => {}
        }
        self.settle();
        // Every final result so far came from the journal (no worker has joined): a reduce
        // stage's inner tree values are not results, so records are not counted themselves.
        self.counts.restored = self.counts.succeeded + self.counts.failed;
    }

    /// Takes `task` out of wherever it waits to be handed out: an input stage's tasks before
    /// it that are not done yet go to the retry queue (they were running when the journal
    /// ended, and run first).
    fn unqueue(&mut self, task: TaskRef) {
        let state = &mut self.stages[task.stage];
        if state.plan.feed == Feed::Inputs && task.index >= state.fresh {
            let skipped = state.fresh..task.index;
            state.fresh = task.index + 1;
            for index in skipped {
                self.retries.push_back(TaskRef {
                    stage: task.stage,
                    index,
                });
            }
            return;
        }
        // Usually at or near the front: tasks become ready in about the order they finish.
        for queue in [&mut self.ready, &mut self.retries] {
            if let Some(at) = queue.iter().position(|&t| t == task) {
                queue.remove(at);
                return;
            }
        }
    }
}
