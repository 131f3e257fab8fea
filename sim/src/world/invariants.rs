//! What must hold after every step of a run, besides what the ledger checks of each journal
//! record.

use dipla_core::{Feed, Keep, TaskRef};

use super::World;
use crate::shape::Kind;

impl World {
    /// Checks what must hold after every step.
    pub(super) fn check(&mut self) -> Result<(), String> {
        if let Some(task) = self.missing.take() {
            return Err(format!("task {task:?} was handed out without its input"));
        }
        // A paused worker holds nothing.
        if let Some(id) = self
            .conns
            .keys()
            .find(|&&id| self.core.is_paused(id) && self.core.running_on(id) > 0)
        {
            return Err(format!("worker {id} is paused and holds tasks"));
        }
        // Memory: results kept are bounded by the work they wait for.
        let mut bound = self.core.demand() as u64;
        for (stage, spec) in self.job.stages.iter().enumerate() {
            let done = self.core.done(stage);
            if spec.plan.keep == Keep::Ordered {
                let taken = self
                    .written
                    .range(
                        TaskRef { stage, index: 0 }..TaskRef {
                            stage: stage + 1,
                            index: 0,
                        },
                    )
                    .count() as u64;
                bound += done.saturating_sub(taken);
            }
            if spec.replicated() || matches!(spec.plan.feed, Feed::Reduce { .. }) {
                bound += done;
            }
            if let Kind::Reduce(source) = spec.kind {
                bound += self.core.done(source);
            }
        }
        let kept = self.core.kept() as u64;
        if kept > bound * self.job.stages.len() as u64 + 1 {
            return Err(format!(
                "{kept} results kept, more than the work in flight and results retained allow ({bound})"
            ));
        }
        Ok(())
    }
}
