//! Volunteers pausing: a worker whose machine is busy, on battery or outside its hours says
//! so and stays connected. What it held goes back to the front of the queue at once (other
//! workers take it now, not at a deadline), counted neither as lost nor as a failure and
//! with no effect on its identity's trust; it gets nothing until it resumes.

use super::Coordinator;
use crate::effect::Wake;
use crate::types::{AttemptId, TaskRef, WorkerId};

impl Coordinator {
    /// Worker `worker` paused: its tasks go back to the queue for others, its late answers
    /// to them are ignored (it stopped them; one may have finished on the way), and it is
    /// given no work until [`Coordinator::resume`]. Pausing twice, or an unknown worker,
    /// changes nothing.
    pub fn pause(&mut self, worker: WorkerId) {
        if !self.fleet.pause(worker) {
            return;
        }
        let mut held: Vec<(AttemptId, TaskRef)> = self
            .attempts
            .iter()
            .filter(|(_, attempt)| attempt.worker == worker)
            .map(|(&id, attempt)| (id, attempt.task))
            .collect();
        // Put back in order: the lowest index ends up first in the queue.
        held.sort_unstable_by_key(|&(_, task)| std::cmp::Reverse(task));
        for (id, task) in held {
            self.forget_attempt(id);
            self.cancelled.insert(id);
            if !self.carries_on(task) {
                self.give_back(task, true);
            }
        }
        // Its share of scarce work goes to the others.
        self.wake(Wake::All);
        self.settle();
    }

    /// Worker `worker` runs again: it may ask for work. Resuming a worker that is not
    /// paused changes nothing.
    pub fn resume(&mut self, worker: WorkerId) {
        if self.fleet.resume(worker) {
            self.wake(Wake::Worker(worker));
        }
    }

    /// Whether `worker` is paused.
    pub fn is_paused(&self, worker: WorkerId) -> bool {
        self.fleet.paused(worker)
    }
}
