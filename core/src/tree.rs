//! The shape of a reduce: a tree of fixed shape over a stage's outputs, so the folded result
//! never depends on the order tasks complete in.

use std::collections::HashMap;

use crate::fleet::IdentityId;
use crate::types::Outcome;

/// A reduce tree: level 0 holds the folded stage's items, each higher level one node per group
/// of `fan_in` consecutive nodes below, up to a single root.
#[derive(Debug)]
pub(crate) struct Tree {
    pub(crate) fan_in: u64,
    /// Nodes per level; `sizes[0]` is the number of items.
    pub(crate) sizes: Vec<u64>,
    /// Task index of the first node of each level (level 0 has none).
    pub(crate) offsets: Vec<u64>,
    /// The folded stage's index of each item, when some indexes have no output (a stage that
    /// stopped early); `None` when item `i` is index `i`.
    indexes: Option<Vec<u64>>,
    /// Known values, by (level, position).
    pub(crate) values: HashMap<(usize, u64), Outcome>,
    /// The identity each value accepted unchecked came from (it is revoked, with every value
    /// folded from it, if the identity is caught lying before the reduce completes).
    pub(crate) by: HashMap<(usize, u64), IdentityId>,
}

impl Tree {
    /// A tree over `items` consecutive items.
    pub(crate) fn new(items: u64, fan_in: u64) -> Self {
        let mut sizes = vec![items];
        while *sizes.last().expect("never empty") > 1 {
            let below = *sizes.last().expect("never empty");
            sizes.push(below.div_ceil(fan_in));
        }
        let mut offsets = vec![0; sizes.len()];
        for level in 2..sizes.len() {
            offsets[level] = offsets[level - 1] + sizes[level - 1];
        }
        Self {
            fan_in,
            sizes,
            offsets,
            indexes: None,
            values: HashMap::new(),
            by: HashMap::new(),
        }
    }

    /// A tree over the items at these (increasing) indexes of the folded stage.
    pub(crate) fn sparse(indexes: Vec<u64>, fan_in: u64) -> Self {
        let mut tree = Self::new(indexes.len() as u64, fan_in);
        tree.indexes = Some(indexes);
        tree
    }

    /// The folded stage's index of item `position`.
    pub(crate) fn item_index(&self, position: u64) -> u64 {
        self.indexes
            .as_ref()
            .map_or(position, |indexes| indexes[position as usize])
    }

    /// The (level, position) of a task index.
    pub(crate) fn node(&self, index: u64) -> (usize, u64) {
        let level = (1..self.sizes.len())
            .rev()
            .find(|&level| index >= self.offsets[level])
            .expect("index within the tree");
        (level, index - self.offsets[level])
    }

    /// The children of node (level, position): positions at `level - 1`.
    pub(crate) fn children(&self, level: usize, position: u64) -> std::ops::Range<u64> {
        let start = position * self.fan_in;
        start..(start + self.fan_in).min(self.sizes[level - 1])
    }

    /// The task index of node (level, position), `level` at least 1.
    pub(crate) fn task_index(&self, level: usize, position: u64) -> u64 {
        self.offsets[level] + position
    }

    /// The root's level.
    pub(crate) fn top(&self) -> usize {
        self.sizes.len() - 1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shape_of_seven_items_by_two() {
        // 7 items, fan-in 2: level 1 has 4 nodes (the last passes item 6 through), level 2
        // has 2, level 3 is the root.
        let tree = Tree::new(7, 2);
        assert_eq!(tree.sizes, [7, 4, 2, 1]);
        assert_eq!(tree.offsets, [0, 0, 4, 6]);
        assert_eq!(tree.node(5), (2, 1));
        assert_eq!(tree.children(1, 3), 6..7);
        assert_eq!(tree.top(), 3);
    }

    #[test]
    fn a_sparse_tree_maps_positions_to_indexes() {
        let tree = Tree::sparse(vec![0, 4, 9], 2);
        assert_eq!(tree.sizes, [3, 2, 1]);
        assert_eq!(tree.item_index(2), 9);
        assert_eq!(Tree::new(3, 2).item_index(2), 2);
    }
}
