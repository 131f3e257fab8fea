//! Speculation (MapReduce's backup tasks): an idle worker much faster than another, or any
//! idle worker when a task straggles, runs a copy; the first answer wins and the other
//! attempts are cancelled.

use std::collections::HashMap;

use super::Coordinator;
use super::attempts::Attempt;
use crate::types::{AttemptId, TaskRef, WorkerId};

/// How much faster (per core) an idle worker must be than another to copy its tasks.
pub const SPECULATE_FASTER: f64 = 1.5;

/// How often the attempts are scanned for tasks to copy: this many microseconds per attempt
/// running (a scan costs well under one per attempt).
const COPY_SCAN_MICROS_PER_ATTEMPT: u64 = 4;

/// Candidates a worker looks at for copies, beyond four per copy it wants.
const COPY_LOOKAHEAD: usize = 64;

/// A task running this many times as long as its stage's tasks take is a straggler, which
/// an idle worker may copy.
pub const STRAGGLER: f64 = 2.0;

/// ...but only once it has run this long (a task of a millisecond is not worth copying).
const MIN_STRAGGLER_MICROS: f64 = 50_000.0;

/// An attempt a faster or idle worker may copy: its worker's speed, whether it straggles.
#[derive(Debug, Clone, Copy)]
pub(super) struct Copyable {
    pub(super) speed: f64,
    pub(super) straggling: bool,
    pub(super) attempt: AttemptId,
    pub(super) task: TaskRef,
}

impl Coordinator {
    /// Up to `count` tasks for `worker` to run a copy of (MapReduce's backup tasks: the first
    /// answer wins, the other attempt is cancelled): tasks running alone either on a worker
    /// [`SPECULATE_FASTER`] times slower than `worker`, or for [`STRAGGLER`] times as long as
    /// the stage's tasks take, on a worker no faster than `worker`. Slowest worker first, then
    /// oldest attempt.
    ///
    /// Looking at every attempt costs time in proportion to how many run (hundreds of
    /// thousands with thousands of workers), and every idle worker asks, so the candidates are
    /// gathered by a scan at most once per [`COPY_SCAN_MICROS_PER_ATTEMPT`] per attempt (200
    /// ms for 50,000) and taken from that list until the next.
    pub(super) fn copies_for(&mut self, worker: WorkerId, count: usize) -> Vec<TaskRef> {
        if self.now >= self.next_copy_scan {
            self.scan_for_copies();
        }
        let mine = self.fleet.speed(worker);
        // Candidates no longer running alone (copied, finished) are gone for good.
        while let Some(front) = self.copyable.front() {
            if self.copyable_now(front) {
                break;
            }
            self.copyable.pop_front();
        }
        let mut picked = Vec::new();
        // Slowest worker first: a worker that cannot copy the first few cannot copy the rest
        // (bar its own attempts and tasks that failed on it), so looking further is waste.
        for candidate in self.copyable.iter().take(COPY_LOOKAHEAD + 4 * count) {
            if picked.len() == count {
                break;
            }
            let Some(attempt) = self.attempts.get(&candidate.attempt) else {
                continue;
            };
            let slower = candidate.speed * SPECULATE_FASTER <= mine;
            let late = candidate.speed <= mine && candidate.straggling;
            // Never to a worker the task may not go to: one it failed on, or, for a replica,
            // one of an identity already asked (it would agree with itself).
            if attempt.worker != worker
                && (slower || late)
                && self.copyable_now(candidate)
                && self.eligible(candidate.task, worker)
            {
                picked.push(candidate.task);
            }
        }
        picked
    }

    /// Whether a candidate still runs alone, in a stage still running.
    fn copyable_now(&self, candidate: &Copyable) -> bool {
        self.attempts.contains_key(&candidate.attempt)
            && self.live.get(&candidate.task) == Some(&1)
            && self.stages[candidate.task.stage].stopped.is_none()
    }

    /// Gathers the attempts some worker might copy: those on a worker slower than the fastest
    /// by [`SPECULATE_FASTER`], and stragglers.
    fn scan_for_copies(&mut self) {
        self.next_copy_scan = self.now + COPY_SCAN_MICROS_PER_ATTEMPT * self.attempts.len() as u64;
        let speeds: HashMap<WorkerId, f64> = self
            .fleet
            .ids()
            .map(|id| (id, self.fleet.speed(id)))
            .collect();
        let fastest = speeds.values().copied().fold(0.0, f64::max);
        let straggling = |attempt: &Attempt| {
            self.stages[attempt.task.stage]
                .task_micros
                .is_some_and(|typical| {
                    let running = self.now.saturating_sub(attempt.started) as f64;
                    running > STRAGGLER * typical && running > MIN_STRAGGLER_MICROS
                })
        };
        let mut candidates: Vec<Copyable> = self
            .attempts
            .iter()
            .filter_map(|(&id, attempt)| {
                let speed = *speeds.get(&attempt.worker)?;
                let candidate = Copyable {
                    speed,
                    straggling: straggling(attempt),
                    attempt: id,
                    task: attempt.task,
                };
                ((speed * SPECULATE_FASTER <= fastest || candidate.straggling)
                    && self.copyable_now(&candidate))
                .then_some(candidate)
            })
            .collect();
        candidates.sort_by(|a, b| a.speed.total_cmp(&b.speed).then(a.attempt.cmp(&b.attempt)));
        self.copyable = candidates.into();
        // When the next attempt running alone becomes a straggler, for `poll_timeout`.
        self.next_straggler = self
            .attempts
            .values()
            .filter(|attempt| self.live.get(&attempt.task) == Some(&1))
            .filter_map(|attempt| {
                let typical = self.stages[attempt.task.stage].task_micros?;
                let after = (STRAGGLER * typical).max(MIN_STRAGGLER_MICROS) as u64;
                let at = attempt.started.saturating_add(after).saturating_add(1);
                (at > self.now).then_some(at)
            })
            .min()
            .unwrap_or(u64::MAX);
    }

    /// Cancels every attempt of `task` still running (another attempt answered).
    pub(super) fn cancel_copies(&mut self, task: TaskRef) {
        let mut copies: Vec<AttemptId> = self
            .attempts
            .iter()
            .filter(|(_, attempt)| attempt.task == task)
            .map(|(&id, _)| id)
            .collect();
        copies.sort_unstable();
        for id in copies {
            self.cancel_attempt(id);
        }
    }
}
