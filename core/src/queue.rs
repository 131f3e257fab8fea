//! A queue of tasks waiting for a worker that remembers whether it grew, so that the
//! coordinator wakes the connections exactly when there is new work to look at, and knows
//! at once whether a task is in it.

use std::collections::{HashMap, VecDeque};
use std::ops::Deref;

use crate::types::TaskRef;

/// Tasks in order, and whether any was added since [`TaskQueue::take_grew`].
#[derive(Debug, Default)]
pub(crate) struct TaskQueue {
    tasks: VecDeque<TaskRef>,
    /// How many times each task is in the queue (a replicated task may be, once per replica
    /// asked for).
    counts: HashMap<TaskRef, usize>,
    grew: bool,
}

impl Deref for TaskQueue {
    type Target = VecDeque<TaskRef>;

    fn deref(&self) -> &VecDeque<TaskRef> {
        &self.tasks
    }
}

impl TaskQueue {
    /// Adds `task` at the back.
    pub(crate) fn push_back(&mut self, task: TaskRef) {
        self.tasks.push_back(task);
        *self.counts.entry(task).or_default() += 1;
        self.grew = true;
    }

    /// Adds `task` at the front (it goes first).
    pub(crate) fn push_front(&mut self, task: TaskRef) {
        self.tasks.push_front(task);
        *self.counts.entry(task).or_default() += 1;
        self.grew = true;
    }

    /// Puts back at the front tasks just taken and passed over, in their order: the queue
    /// did not grow, so nobody is woken for them.
    pub(crate) fn put_back(&mut self, tasks: Vec<TaskRef>) {
        for task in tasks.into_iter().rev() {
            self.tasks.push_front(task);
            *self.counts.entry(task).or_default() += 1;
        }
    }

    /// Takes the first task.
    pub(crate) fn pop_front(&mut self) -> Option<TaskRef> {
        let task = self.tasks.pop_front()?;
        self.uncount(task);
        Some(task)
    }

    /// Whether `task` is in the queue.
    pub(crate) fn holds(&self, task: TaskRef) -> bool {
        self.counts.contains_key(&task)
    }

    /// Removes every entry of `task`.
    pub(crate) fn discard(&mut self, task: TaskRef) {
        if self.counts.remove(&task).is_some() {
            self.tasks.retain(|&t| t != task);
        }
    }

    /// Keeps the tasks `keep` says to.
    pub(crate) fn retain(&mut self, mut keep: impl FnMut(&TaskRef) -> bool) {
        let counts = &mut self.counts;
        self.tasks.retain(|task| {
            let kept = keep(task);
            if !kept && let Some(count) = counts.get_mut(task) {
                *count -= 1;
                if *count == 0 {
                    counts.remove(task);
                }
            }
            kept
        });
    }

    /// Removes the task at `at`.
    pub(crate) fn remove(&mut self, at: usize) -> Option<TaskRef> {
        let task = self.tasks.remove(at)?;
        self.uncount(task);
        Some(task)
    }

    fn uncount(&mut self, task: TaskRef) {
        if let Some(count) = self.counts.get_mut(&task) {
            *count -= 1;
            if *count == 0 {
                self.counts.remove(&task);
            }
        }
    }

    /// Whether a task was added since the last call.
    pub(crate) fn take_grew(&mut self) -> bool {
        std::mem::take(&mut self.grew)
    }

    /// Whether a task was added since [`TaskQueue::take_grew`].
    pub(crate) fn grew(&self) -> bool {
        self.grew
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn task(index: u64) -> TaskRef {
        TaskRef { stage: 0, index }
    }

    #[test]
    fn tasks_put_back_are_not_new_work() {
        let mut queue = TaskQueue::default();
        queue.push_back(task(0));
        queue.push_back(task(1));
        assert!(queue.take_grew());
        let taken = vec![queue.pop_front().unwrap(), queue.pop_front().unwrap()];
        queue.put_back(taken);
        assert!(!queue.grew(), "nobody needs waking for them");
        assert_eq!(
            queue.iter().copied().collect::<Vec<_>>(),
            [task(0), task(1)]
        );
        assert!(queue.holds(task(0)) && queue.holds(task(1)));
    }

    #[test]
    fn it_knows_what_it_holds_however_tasks_leave() {
        let mut queue = TaskQueue::default();
        // A replicated task may be queued once per replica asked for.
        for index in [0, 0, 1, 2, 3] {
            queue.push_back(task(index));
        }
        assert_eq!(queue.pop_front(), Some(task(0)));
        assert!(queue.holds(task(0)), "one entry of two left");
        queue.discard(task(0));
        assert!(!queue.holds(task(0)));
        queue.retain(|&t| t != task(1));
        assert!(!queue.holds(task(1)));
        assert_eq!(queue.remove(0), Some(task(2)));
        assert!(!queue.holds(task(2)));
        assert!(queue.holds(task(3)));
        assert_eq!(queue.len(), 1);
    }
}
