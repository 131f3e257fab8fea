//! Attempts: one worker running one task, from being handed out to being answered,
//! forgotten or cancelled, and how many attempts of a task are live.

use super::Coordinator;
use crate::effect::{Effect, Wake};
use crate::types::{AttemptId, TaskRef, WorkerId};

#[derive(Debug)]
pub(super) struct Attempt {
    pub(super) task: TaskRef,
    pub(super) worker: WorkerId,
    /// When it was handed out ([`Coordinator::set_clock`]).
    pub(super) started: u64,
    /// When it is overdue: the task is then given to another worker as well.
    pub(super) deadline: u64,
    /// Whether it is overdue and was reissued.
    pub(super) expired: bool,
}

impl Coordinator {
    /// The task of attempt `id`, if `worker` is running it.
    pub fn attempt_task(&self, worker: WorkerId, id: AttemptId) -> Option<TaskRef> {
        self.attempts
            .get(&id)
            .filter(|attempt| attempt.worker == worker)
            .map(|attempt| attempt.task)
    }

    /// Removes attempt `id` from those running.
    pub(super) fn forget_attempt(&mut self, id: AttemptId) -> Option<Attempt> {
        let attempt = self.attempts.remove(&id)?;
        if !attempt.expired {
            self.deadlines.remove(&(attempt.deadline, id));
        }
        Some(attempt)
    }

    /// Whether an attempt of `task` runs that is not overdue: one whose answer is worth
    /// waiting for. (An overdue one may still answer, but nothing should wait on it: its
    /// worker may never answer at all.)
    pub(super) fn running_in_time(&self, task: TaskRef) -> bool {
        self.in_time(task) > 0
    }

    /// How many attempts of `task` run that are not overdue.
    pub(super) fn in_time(&self, task: TaskRef) -> usize {
        if !self.live.contains_key(&task) {
            return 0;
        }
        self.attempts
            .values()
            .filter(|attempt| attempt.task == task && !attempt.expired)
            .count()
    }

    /// One attempt of `task` ended: how many others are still running.
    pub(super) fn drop_live(&mut self, task: TaskRef) -> u32 {
        let Some(live) = self.live.get_mut(&task) else {
            return 0;
        };
        *live = live.saturating_sub(1);
        let left = *live;
        if left == 0 {
            self.live.remove(&task);
        }
        left
    }

    /// Cancels attempt `id`: its worker is told to drop it, its late answer is ignored, and
    /// it no longer counts as running. Returns its task and how many other attempts of the
    /// task are still running.
    pub(super) fn cancel_attempt(&mut self, id: AttemptId) -> Option<(TaskRef, u32)> {
        let Attempt { task, worker, .. } = self.forget_attempt(id)?;
        let others = self.drop_live(task);
        self.cancelled.insert(id);
        if self.fleet.get(worker).is_some() {
            self.effects.push(Effect::Cancel {
                worker,
                attempts: vec![id],
            });
            self.wake(Wake::Worker(worker));
        }
        self.fleet.cancelled(worker, self.now);
        Some((task, others))
    }
}
