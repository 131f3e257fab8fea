//! How final results flow: an item feeds the stages reading it once every part exists, a
//! replicated stage's results are released once it is complete, a reader done with a result
//! lets it go, and [`Coordinator::settle`] shapes the reduce trees that waited.

use dipla_protocol::{FailureKind, TaskFailure};

use super::Coordinator;
use super::results::Proof;
use crate::plan::{Feed, Keep};
use crate::tree::Tree;
use crate::types::TaskRef;

impl Coordinator {
    /// Item `index` of `stage`'s source `from` exists: run task `index` once every source's
    /// does. An item another source will never have (it stopped early) is let go at once.
    pub(super) fn feed_item(&mut self, stage: usize, sources: &[usize], index: u64, from: usize) {
        if self.never_fed(stage, index) {
            self.release(from, index);
            return;
        }
        if sources.len() > 1 {
            // One call per source's item: the task is fed at the last, once.
            let arrivals = &mut self.stages[stage].arrivals;
            let arrived = arrivals.entry(index).or_insert(0);
            *arrived += 1;
            if *arrived < sources.len() {
                return;
            }
            arrivals.remove(&index);
        }
        let mut failures = Vec::new();
        for &source in sources {
            match self.stages[source].results.get(&index).map(|e| &e.outcome) {
                None => return,
                Some(Ok(_)) => {}
                Some(Err(failure)) => failures.push((source, failure.clone())),
            }
        }
        let task = TaskRef { stage, index };
        if self.stages[stage].stopped.is_some() {
            self.counts.stopped += 1;
            self.release_inputs(task);
            return;
        }
        self.stages[stage].plan.tasks = self.stages[stage].plan.tasks.max(index + 1);
        self.stages[stage].fed += 1;
        match failures.into_iter().next() {
            None => self.ready.push_back(task),
            Some((source, failure)) => {
                let failure = upstream(&self.stages[source].plan.name, index, &failure);
                self.result(task, Err(failure), 0, Proof::NONE);
            }
        }
    }

    /// Whether some stage `stage` reads will never have item `index` (it, or a stage it
    /// reads, stopped early without it), so its task `index` will never run.
    fn never_fed(&self, stage: usize, index: u64) -> bool {
        match &self.stages[stage].plan.feed {
            Feed::Items(sources) => sources
                .iter()
                .any(|&source| self.never_produces(source, index)),
            _ => false,
        }
    }

    /// Whether `stage` will never have result `index`.
    fn never_produces(&self, stage: usize, index: u64) -> bool {
        let state = &self.stages[stage];
        if state.results.contains_key(&index) {
            return false;
        }
        state.stopped.is_some() || self.never_fed(stage, index)
    }

    /// A stage stopped early: the items other sources hold for tasks that now never run
    /// are let go.
    pub(super) fn let_go_unfed(&mut self) {
        for stage in 0..self.stages.len() {
            let Feed::Items(sources) = self.stages[stage].plan.feed.clone() else {
                continue;
            };
            let mut unfed: Vec<u64> = self.stages[stage]
                .arrivals
                .keys()
                .copied()
                .filter(|&index| self.never_fed(stage, index))
                .collect();
            unfed.sort_unstable();
            for index in unfed {
                self.stages[stage].arrivals.remove(&index);
                for &source in &sources {
                    // A held source's item has not arrived: it is let go when it does.
                    if !self.stages[source].held() {
                        self.release(source, index);
                    }
                }
            }
        }
    }

    /// Shapes the trees of reduce stages whose (not dense) source has completed, and feeds
    /// them what it produced.
    pub(super) fn settle(&mut self) {
        loop {
            let complete_held = (0..self.stages.len())
                .find(|&stage| self.stages[stage].held() && self.is_stage_complete(stage));
            if let Some(stage) = complete_held {
                self.release_held(stage);
                continue;
            }
            let waiting = (0..self.stages.len()).find(|&stage| {
                let state = &self.stages[stage];
                matches!(state.plan.feed, Feed::Reduce { stage: source, .. }
                    if state.tree.is_none() && state.done == 0 && self.is_stage_complete(source))
            });
            let Some(stage) = waiting else {
                return;
            };
            let Feed::Reduce {
                stage: source,
                fan_in,
            } = self.stages[stage].plan.feed
            else {
                unreachable!("found above")
            };
            let indexes: Vec<u64> = self.stages[source].results.keys().copied().collect();
            if indexes.is_empty() {
                let failure = TaskFailure {
                    kind: FailureKind::Upstream,
                    message: format!(
                        "stage {:?} has no outputs to fold",
                        self.stages[source].plan.name
                    ),
                };
                self.result(TaskRef { stage, index: 0 }, Err(failure), 0, Proof::NONE);
                continue;
            }
            self.stages[stage].plan.tasks = indexes.len() as u64;
            self.stages[stage].tree = Some(Tree::sparse(indexes.clone(), fan_in.max(2)));
            for (position, index) in indexes.into_iter().enumerate() {
                let outcome = self.stages[source].results[&index].outcome.clone();
                self.release(source, index);
                self.tree_value(stage, 0, position as u64, outcome, 0, Proof::NONE);
            }
        }
    }

    /// A replicated stage is complete: its results go to the stages reading it and to the
    /// writer, as they would have one by one.
    fn release_held(&mut self, stage: usize) {
        self.stages[stage].released = true;
        // Its results are the writer's now.
        self.ready();
        let keep = self.stages[stage].plan.keep;
        let dependents = self.stages[stage].dependents.clone();
        let indexes: Vec<u64> = self.stages[stage].results.keys().copied().collect();
        if keep == Keep::All {
            self.stages[stage].log.extend(&indexes);
        }
        for index in indexes {
            let task = TaskRef { stage, index };
            for &dependent in &dependents {
                let shaped = self.stages[dependent].tree.is_some();
                if matches!(self.stages[dependent].plan.feed, Feed::Reduce { .. }) && shaped {
                    let outcome = self.stages[stage].results[&index].outcome.clone();
                    self.release(stage, index);
                    self.tree_value(dependent, 0, index, outcome, 0, Proof::NONE);
                }
            }
            for &dependent in &dependents {
                if let Feed::Items(sources) = self.stages[dependent].plan.feed.clone() {
                    self.feed_item(dependent, &sources, index, stage);
                }
            }
            if keep != Keep::Ordered {
                self.release_inputs(task);
            }
            // Kept only for readers: drop it if nobody needs it.
            let state = &mut self.stages[stage];
            if let Some(entry) = state.results.get(&index)
                && entry.readers == 0
                && state.plan.keep != Keep::All
            {
                state.results.remove(&index);
            }
        }
    }

    /// Task `task` no longer needs its inputs: the stages it read may drop them.
    pub(super) fn release_inputs(&mut self, task: TaskRef) {
        if let Feed::Items(sources) = &self.stages[task.stage].plan.feed {
            for source in sources.clone() {
                self.release(source, task.index);
            }
        }
    }

    /// One reader is done with result `index` of `stage`: drop it once nobody needs it.
    pub(super) fn release(&mut self, stage: usize, index: u64) {
        let state = &mut self.stages[stage];
        let Some(entry) = state.results.get_mut(&index) else {
            return;
        };
        entry.readers = entry.readers.saturating_sub(1);
        if entry.readers == 0 && state.plan.keep != Keep::All {
            state.results.remove(&index);
        }
    }

    /// Nobody holds `stage`'s results any more: drop those no stage still reads, and keep
    /// no more.
    pub fn release_stage(&mut self, stage: usize) {
        let state = &mut self.stages[stage];
        state.plan.keep = Keep::Nothing;
        state.log = Vec::new();
        state.results.retain(|_, entry| entry.readers > 0);
    }
}

/// The failure of a task whose input `index` of stage `source` failed.
pub(super) fn upstream(source: &str, index: u64, failure: &TaskFailure) -> TaskFailure {
    let message = format!("its input, task {index} of stage {source:?}, failed ({failure})");
    TaskFailure {
        kind: FailureKind::Upstream,
        message,
    }
}
