//! Time and deadlines: the clock the transport sets, each attempt's deadline, reissuing the
//! tasks of overdue attempts, and [`Coordinator::tick`] and [`Coordinator::poll_timeout`],
//! by which the coordinator says when it next needs to be called.

use std::collections::HashSet;

use super::Coordinator;
use crate::effect::{Event, Wake};
use crate::types::{AttemptId, TaskRef, WorkerId};

/// Time added to every deadline for the network and queueing, in microseconds.
pub const DEADLINE_GRACE: u64 = 2_000_000;

impl Coordinator {
    /// The time now, in microseconds since the job started (the coordinator reads no clock:
    /// the transport tells it before each event). It dates attempts, to spot stragglers.
    pub fn set_clock(&mut self, now_micros: u64) {
        self.now = self.now.max(now_micros);
    }

    /// The time is now `now_micros` (since the job started) and nothing else happened: gives
    /// the tasks of attempts past their deadline to the queue again, and wakes idle workers
    /// when an attempt has run long enough to be worth copying. Call it at
    /// [`Coordinator::poll_timeout`].
    pub fn tick(&mut self, now_micros: u64) {
        self.set_clock(now_micros);
        self.reissue_overdue();
        if self.now >= self.next_straggler {
            // Idle workers look again (a scan for copies then finds the new stragglers and
            // says when the next one is due).
            self.next_straggler = u64::MAX;
            self.wake(Wake::All);
        }
    }

    /// When the coordinator next needs [`Coordinator::tick`] if no other input comes, in
    /// microseconds since the job started: the soonest deadline of a running attempt, or
    /// the moment a running attempt may become a straggler an idle worker should copy.
    /// `None`: nothing will happen until some other input.
    pub fn poll_timeout(&self) -> Option<u64> {
        let deadline = self
            .deadlines
            .first()
            .map(|&(deadline, _)| deadline.saturating_add(1));
        let straggler = (self.speculate && self.next_straggler != u64::MAX)
            .then(|| self.next_straggler.max(self.next_copy_scan));
        match (deadline, straggler) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// How long an attempt of a `stage` task on `worker` may take before it is overdue: the
    /// stage's deadline if it sets one, else the task's wall-clock limit, or four times what
    /// its fuel budget takes at the worker's measured speed if that is sooner, plus
    /// [`DEADLINE_GRACE`] for the network.
    pub(super) fn allowance(&self, stage: usize, worker: WorkerId) -> u64 {
        let plan = &self.stages[stage].plan;
        let base = plan.deadline.unwrap_or_else(|| {
            let by_fuel = self
                .fleet
                .record(worker)
                .and_then(|record| record.measured)
                .map_or(u64::MAX, |speed| (plan.fuel as f64 / speed * 4.0) as u64);
            plan.timeout.min(by_fuel)
        });
        base.saturating_add(DEADLINE_GRACE)
    }

    /// Gives every task whose running attempts are all overdue to the queue again (a replica
    /// too: another one is asked for); the late attempts may still answer, and the first
    /// answer wins. A task two stallers hold is reissued like a task one holds.
    pub(super) fn reissue_overdue(&mut self) {
        let now = self.now;
        let mut overdue: Vec<(AttemptId, TaskRef)> = Vec::new();
        while let Some(&(deadline, id)) = self.deadlines.first() {
            if deadline >= now {
                break;
            }
            self.deadlines.pop_first();
            if let Some(attempt) = self.attempts.get_mut(&id) {
                attempt.expired = true;
                overdue.push((id, attempt.task));
            }
        }
        if overdue.is_empty() {
            return;
        }
        overdue.sort_unstable();
        // Tasks some attempt still runs in time for, and tasks already waiting.
        let timely: HashSet<TaskRef> = self
            .attempts
            .values()
            .filter(|attempt| !attempt.expired)
            .map(|attempt| attempt.task)
            .collect();
        let mut queued: HashSet<TaskRef> = self.retries.iter().copied().collect();
        let mut judged = false;
        for (attempt, task) in overdue {
            if timely.contains(&task) || !queued.insert(task) {
                continue;
            }
            self.event(Event::Overdue { attempt, task });
            self.counts.expired += 1;
            self.reissued.insert(task);
            if !self.votes.contains_key(&task)
                && self
                    .history
                    .get(&task)
                    .is_some_and(|history| !history.failures.is_empty())
            {
                // Failures reported while this attempt ran waited for its answer: they
                // decide now.
                self.judge_failures(task);
                judged = true;
            } else {
                self.retries.push_front(task);
            }
            self.wake(Wake::All);
        }
        if judged {
            // Results became final: what they complete follows.
            self.settle();
        }
    }
}
