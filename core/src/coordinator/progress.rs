//! Progress and counters: how many tasks and result lines a stage has, how many are done,
//! queued or running, how many results are kept, and an estimate of the time left.

use super::Coordinator;
use crate::plan::Feed;
use crate::types::{Counts, StageProgress, WorkerId};

impl Coordinator {
    /// Stage `stage`'s progress now.
    pub fn progress(&self, stage: usize) -> StageProgress {
        let state = &self.stages[stage];
        let running = self
            .attempts
            .values()
            .filter(|attempt| attempt.task.stage == stage)
            .count() as u64;
        let waiting = self
            .ready
            .iter()
            .chain(self.retries.iter())
            .filter(|task| task.stage == stage)
            .count() as u64;
        let fresh = if state.plan.feed == Feed::Inputs && state.stopped.is_none() {
            state.plan.tasks.saturating_sub(state.fresh)
        } else {
            0
        };
        StageProgress {
            tasks: self.lines(stage),
            done: state.done,
            queued: waiting + fresh,
            running,
            ..state.progress
        }
    }

    /// How many result lines stage `stage` has (one for a reduce stage; for a stage that
    /// stopped early or read one, those of the tasks that finished; for an incomplete stage
    /// that is not dense, at most how many).
    pub fn lines(&self, stage: usize) -> u64 {
        let state = &self.stages[stage];
        if state.stopped.is_some() || self.is_stage_complete(stage) {
            return state.done;
        }
        match state.plan.feed {
            Feed::Reduce { .. } => 1,
            _ => state.plan.tasks,
        }
    }

    /// How many result lines the job has now (explore stages grow).
    pub fn total_lines(&self) -> u64 {
        (0..self.stages.len()).map(|stage| self.lines(stage)).sum()
    }

    /// How many tasks `stage` has now (for a reduce stage, how many items it folds).
    pub fn tasks(&self, stage: usize) -> u64 {
        self.stages[stage].plan.tasks
    }

    /// How many of `stage`'s results are final.
    pub fn done(&self, stage: usize) -> u64 {
        self.stages[stage].done
    }

    /// How many tasks wait in the retry and ready queues.
    pub fn queued(&self) -> usize {
        self.retries.len() + self.ready.len()
    }

    /// How many tasks could run now or are running: what the job has work for.
    pub fn demand(&self) -> usize {
        let fresh: u64 = self
            .stages
            .iter()
            .filter(|state| state.plan.feed == Feed::Inputs && state.stopped.is_none())
            .map(|state| state.plan.tasks.saturating_sub(state.fresh))
            .sum();
        self.queued() + self.running() + usize::try_from(fresh).unwrap_or(usize::MAX)
    }

    /// How many tasks are running now.
    pub fn running(&self) -> usize {
        self.attempts.len()
    }

    /// How many tasks `worker` is running now.
    pub fn running_on(&self, worker: WorkerId) -> usize {
        self.fleet.get(worker).map_or(0, |w| w.in_flight)
    }

    /// How many results are kept in memory now, over all stages.
    pub fn kept(&self) -> usize {
        self.stages.iter().map(|state| state.results.len()).sum()
    }

    /// What happened so far.
    pub fn counts(&self) -> Counts {
        self.counts
    }

    /// Estimated microseconds until every known task is done, at the workers' measured pace.
    pub fn eta_micros(&self) -> Option<u64> {
        let left: u64 = (0..self.stages.len())
            .filter(|&stage| !self.is_stage_complete(stage))
            .map(|stage| self.lines(stage).saturating_sub(self.stages[stage].done))
            .sum();
        if left == 0 {
            return Some(0);
        }
        self.fleet.eta_micros(left)
    }
}
