//! Early stops: an output that meets its stage's goal, and stopping the stage once enough
//! have (what runs is cancelled, what never ran gets no result).

use super::Coordinator;
use crate::plan::Feed;
use crate::types::{AttemptId, TaskRef};

impl Coordinator {
    /// An output of `task` met its stage's goal: stop the stage once enough have.
    pub(super) fn goal(&mut self, task: TaskRef) {
        let state = &mut self.stages[task.stage];
        state.goals += 1;
        if state.goals >= state.plan.stop_after && state.stopped.is_none() {
            self.stop_stage(task);
        }
    }

    /// Stage `task.stage` met its goal with `task`: hand out none of its tasks any more and
    /// cancel those running. Tasks that never ran get no result.
    fn stop_stage(&mut self, task: TaskRef) {
        let stage = task.stage;
        let state = &mut self.stages[stage];
        state.stopped = Some(format!(
            "stage {:?} met its goal ({} output(s), the last from task {})",
            state.plan.name, state.goals, task.index
        ));
        let mut dropped: Vec<TaskRef> = Vec::new();
        let mut never_run = 0;
        if state.plan.feed == Feed::Inputs {
            never_run += state.plan.tasks - state.fresh;
            state.fresh = state.plan.tasks;
        }
        for queue in [&mut self.retries, &mut self.ready] {
            queue.retain(|t| {
                let keep = t.stage != stage;
                if !keep {
                    dropped.push(*t);
                }
                keep
            });
        }
        let mut running: Vec<AttemptId> = self
            .attempts
            .iter()
            .filter(|(_, attempt)| attempt.task.stage == stage)
            .map(|(&id, _)| id)
            .collect();
        running.sort_unstable();
        for id in running {
            if let Some((task, _)) = self.cancel_attempt(id) {
                dropped.push(task);
            }
        }
        // Replicated tasks waiting for more answers will get none.
        self.votes.retain(|task, _| task.stage != stage);
        self.reissued.retain(|task| task.stage != stage);
        dropped.sort_unstable();
        dropped.dedup();
        for task in dropped {
            self.history.remove(&task);
            self.release_inputs(task);
            never_run += 1;
        }
        self.counts.stopped += never_run;
        self.let_go_unfed();
    }

    /// Why `stage` stopped early, if it did.
    pub fn stopped(&self, stage: usize) -> Option<&str> {
        self.stages[stage].stopped.as_deref()
    }
}
