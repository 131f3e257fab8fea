//! A queue of tasks waiting for a worker that remembers whether it grew, so that the
//! coordinator wakes the connections exactly when there is new work to look at.

use std::collections::VecDeque;
use std::ops::Deref;

use crate::types::TaskRef;

/// Tasks in order, and whether any was added since [`TaskQueue::take_grew`].
#[derive(Debug, Default)]
pub(crate) struct TaskQueue {
    tasks: VecDeque<TaskRef>,
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
        self.grew = true;
    }

    /// Adds `task` at the front (it goes first).
    pub(crate) fn push_front(&mut self, task: TaskRef) {
        self.tasks.push_front(task);
        self.grew = true;
    }

    /// Puts back at the front tasks just taken and passed over, in their order: the queue
    /// did not grow, so nobody is woken for them.
    pub(crate) fn put_back(&mut self, tasks: Vec<TaskRef>) {
        for task in tasks.into_iter().rev() {
            self.tasks.push_front(task);
        }
    }

    /// Takes the first task.
    pub(crate) fn pop_front(&mut self) -> Option<TaskRef> {
        self.tasks.pop_front()
    }

    /// Keeps the tasks `keep` says to.
    pub(crate) fn retain(&mut self, keep: impl FnMut(&TaskRef) -> bool) {
        self.tasks.retain(keep);
    }

    /// Removes the task at `at`.
    pub(crate) fn remove(&mut self, at: usize) -> Option<TaskRef> {
        self.tasks.remove(at)
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
