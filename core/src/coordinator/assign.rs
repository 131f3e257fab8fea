//! Handing out work: which tasks a worker gets (retries, ready tasks, fresh inputs), its fair
//! share when work is scarce, which tasks it may not take, and holding work until enough
//! workers have joined.

use super::Coordinator;
use super::attempts::Attempt;
use crate::effect::{Event, Wake};
use crate::plan::Feed;
use crate::types::{Assignment, TaskRef, WorkerId};

impl Coordinator {
    /// Picks tasks for `worker` up to its in-flight window: retries first, then tasks whose
    /// inputs just became available, then fresh tasks in stage order. When there is less
    /// work than room for it, each worker gets its share in proportion to its speed, so the
    /// faster ones get more; when there is none, an idle worker much faster than another
    /// takes a copy of a task that one is running.
    pub fn assign(&mut self, worker: WorkerId) -> Vec<Assignment> {
        if !self.fleet.trusted(worker) || self.fleet.paused(worker) || self.holding() {
            return Vec::new();
        }
        self.reissue_overdue();
        let Some(state) = self.fleet.get(worker) else {
            return Vec::new();
        };
        let idle = state.cores.saturating_sub(state.in_flight);
        let mut room = self.fleet.room(worker);
        let idle = idle.min(room);
        let unassigned = self.unassigned();
        let mut shared = false;
        if room > 0 && unassigned > 0 {
            let total_room: u64 = self.fleet.ids().map(|id| self.fleet.room(id) as u64).sum();
            if unassigned < total_room {
                let total = self.fleet.total_capacity();
                let mine = self.fleet.capacity(worker);
                let share = if total > 0.0 {
                    (unassigned as f64 * mine / total).ceil() as u64
                } else {
                    unassigned
                };
                let share = share.max(1);
                if share < room as u64 {
                    room = share as usize;
                }
                // This worker takes its share; the rest waits for the others (woken below
                // once it did take it).
                shared = unassigned > room as u64;
            }
        }
        let share = room;
        let mut picked: Vec<TaskRef> = Vec::new();

        let mut passed_over = Vec::new();
        while room > 0 {
            let Some(task) = self.retries.pop_front() else {
                break;
            };
            if self.eligible(task, worker) {
                picked.push(task);
                room -= 1;
            } else {
                passed_over.push(task);
            }
        }
        self.retries.put_back(passed_over);
        while room > 0 {
            let Some(task) = self.ready.pop_front() else {
                break;
            };
            picked.push(task);
            room -= 1;
        }
        for (stage, state) in self.stages.iter_mut().enumerate() {
            if room == 0 {
                break;
            }
            if state.plan.feed != Feed::Inputs {
                continue;
            }
            let take = (state.plan.tasks - state.fresh).min(room as u64);
            for index in state.fresh..state.fresh + take {
                picked.push(TaskRef { stage, index });
            }
            state.fresh += take;
            room -= take as usize;
        }
        if shared && picked.len() == share && self.unassigned() > 0 {
            // It took its share and left the rest to the others. (Had it found less, what is
            // left is nothing it may run: waking the others for it again would only spin.)
            self.wake(Wake::All);
        }
        if picked.is_empty() && unassigned == 0 && self.speculate && idle > 0 {
            picked = self.copies_for(worker, idle);
            self.counts.speculated += picked.len() as u64;
        }

        let mut assignments: Vec<Assignment> = Vec::new();
        for task in picked {
            let id = self.next_attempt;
            self.next_attempt += 1;
            let started = self.now;
            let deadline = started.saturating_add(self.allowance(task.stage, worker));
            self.attempts.insert(
                id,
                Attempt {
                    task,
                    worker,
                    started,
                    deadline,
                    expired: false,
                },
            );
            self.deadlines.insert((deadline, id));
            *self.live.entry(task).or_default() += 1;
            if let Some(votes) = self.votes.get_mut(&task) {
                votes.asked.push(worker);
            }
            match assignments.last_mut() {
                Some(last) if last.stage == task.stage => last.tasks.push((id, task.index)),
                _ => assignments.push(Assignment {
                    stage: task.stage,
                    tasks: vec![(id, task.index)],
                }),
            }
        }
        let sent = assignments.iter().map(|a| a.tasks.len()).sum::<usize>();
        self.fleet.sent(worker, sent, self.now);
        assignments
    }

    /// Whether tasks are held until more workers join ([`Coordinator::wait_for_workers`]);
    /// it stops holding them once enough have.
    fn holding(&mut self) -> bool {
        if self.waiting_for == 0 {
            return false;
        }
        let joined = self
            .fleet
            .ids()
            .filter(|&id| self.fleet.trusted(id))
            .count();
        if joined < self.waiting_for {
            return true;
        }
        self.event(Event::Started { joined });
        self.waiting_for = 0;
        // The others waited too.
        self.wake(Wake::All);
        false
    }

    /// Tasks waiting for a worker: retries, ready ones and fresh inputs.
    fn unassigned(&self) -> u64 {
        let fresh: u64 = self
            .stages
            .iter()
            .filter(|state| state.plan.feed == Feed::Inputs)
            .map(|state| state.plan.tasks - state.fresh)
            .sum();
        fresh + self.queued() as u64
    }

    /// A task may go to `worker` unless it failed there and some other connected worker has
    /// not tried it yet.
    pub(super) fn eligible(&self, task: TaskRef, worker: WorkerId) -> bool {
        if self.live.contains_key(&task)
            && self
                .attempts
                .values()
                .any(|attempt| attempt.task == task && attempt.worker == worker)
        {
            // It is running there already (an overdue task given out again).
            return false;
        }
        if let Some(votes) = self.votes.get(&task) {
            // A replica never goes to a worker that was given the task.
            let identity = self.fleet.identity(worker);
            return !votes
                .asked
                .iter()
                .any(|&asked| self.fleet.identity(asked) == identity);
        }
        let Some(history) = self.history.get(&task) else {
            return true;
        };
        // Trying again where it failed proves nothing (bar the server's own workers): it
        // waits for another identity.
        self.fleet.identity(worker).is_none_or(|identity| {
            self.fleet.is_own(identity) || !history.failed_on.contains(&identity)
        })
    }
}
