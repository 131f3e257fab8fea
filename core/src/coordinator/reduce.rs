//! Reduce trees: a value known at one level passes up to the group above, which runs as a
//! task once complete, and the values a reduce task folds.

use dipla_protocol::RawJson;

use super::Coordinator;
use super::feed::upstream;
use super::results::Proof;
use crate::plan::Feed;
use crate::types::{Outcome, TaskRef};

impl Coordinator {
    /// A value of a reduce tree is known: pass it up, run the group above once complete.
    pub(super) fn tree_value(
        &mut self,
        stage: usize,
        level: usize,
        position: u64,
        outcome: Outcome,
        attempts: u32,
        proof: Proof,
    ) {
        let source = match self.stages[stage].plan.feed {
            Feed::Reduce { stage: source, .. } => source,
            _ => unreachable!("only reduce stages have trees"),
        };
        let tree = self.stages[stage]
            .tree
            .as_mut()
            .expect("a reduce stage has a tree");
        if level == tree.top() {
            // A tree of one item: the item is the result, and its failure fails the reduce
            // as any failed item does.
            let outcome = match outcome {
                Err(failure) if level == 0 => {
                    let index = tree.item_index(position);
                    Err(upstream(&self.stages[source].plan.name, index, &failure))
                }
                outcome => outcome,
            };
            self.result(TaskRef { stage, index: 0 }, outcome, attempts, proof);
            return;
        }
        tree.values.insert((level, position), outcome);
        let parent = position / tree.fan_in;
        let children = tree.children(level + 1, parent);
        let mut values = Vec::new();
        for child in children.clone() {
            match tree.values.get(&(level, child)) {
                None => return,
                Some(value) => values.push((child, value)),
            }
        }
        let failed = values
            .iter()
            .find_map(|(child, value)| value.as_ref().err().map(|f| (*child, f.clone())));
        if let Some((child, failure)) = failed {
            let item = (level == 0).then(|| tree.item_index(child));
            let failure = match item {
                Some(index) => upstream(&self.stages[source].plan.name, index, &failure),
                None => failure,
            };
            self.tree_value(stage, level + 1, parent, Err(failure), 0, Proof::NONE);
        } else if children.end - children.start == 1 {
            let value = values[0].1.clone();
            self.tree_value(stage, level + 1, parent, value, 0, Proof::NONE);
        } else {
            let index = tree.offsets[level + 1] + parent;
            self.ready.push_back(TaskRef { stage, index });
        }
    }

    /// The values a reduce task folds, in order.
    ///
    /// # Panics
    /// When `task` is not a ready reduce task (a bug in the caller).
    pub fn group(&self, task: TaskRef) -> Vec<&RawJson> {
        let tree = self.stages[task.stage]
            .tree
            .as_ref()
            .expect("a reduce stage");
        let (level, position) = tree.node(task.index);
        tree.children(level, position)
            .map(|child| match &tree.values[&(level - 1, child)] {
                Ok(value) => &**value,
                Err(_) => unreachable!("a group with a failure is never run"),
            })
            .collect()
    }
}
