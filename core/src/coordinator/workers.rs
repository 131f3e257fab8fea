//! The fleet's inputs: a worker joins, proves its identity, says where it connects from and
//! how fast it claims to be, and leaves or is expelled. A departing worker's tasks go back to
//! the queue, or fail once they have been lost with [`MAX_LOST`] identities.

use dipla_protocol::{FailureKind, TaskFailure};

use super::Coordinator;
use super::results::Proof;
use crate::effect::Wake;
use crate::fleet::{Credibility, WorkerRecord};
use crate::types::{AttemptId, Departure, TaskRef, WorkerId};

/// How many times a task may be lost with its worker before it is failed (it may be what
/// kills workers), unless [`Coordinator::set_max_lost`] says otherwise.
pub const MAX_LOST: u32 = 3;

impl Coordinator {
    /// A worker joined, running `cores` tasks at once.
    pub fn join(&mut self, worker: WorkerId, cores: usize) {
        self.fleet.join(worker, cores);
    }

    /// Worker `worker` proved it is identity `key` (its public key): its trust record is that
    /// identity's, from earlier connections and earlier runs. Returns whether it is trusted
    /// (an identity caught lying gets no work, however it reconnects).
    ///
    /// `shared` is the server's record of the identity, if it keeps one across its jobs
    /// (`serve`): the larger of each count and any untrusted mark are taken from it.
    pub fn identify(&mut self, worker: WorkerId, key: &str, shared: Option<&Credibility>) -> bool {
        if let Some(record) = shared {
            self.fleet.adopt(key, record);
        }
        let identity = self.fleet.identify(worker, key);
        !self.fleet.untrusted_identity(identity)
    }

    /// Worker `worker` connected from `address`: tasks lost with workers count distinct
    /// addresses too when [`Coordinator::count_addresses`] says so.
    pub fn place(&mut self, worker: WorkerId, address: &str) {
        self.fleet.place(worker, address);
    }

    /// Whether `worker` is connected and its identity trusted (it may get work).
    pub fn is_trusted(&self, worker: WorkerId) -> bool {
        self.fleet.trusted(worker)
    }

    /// Identity `key` was caught or struck elsewhere (another job of the same server): its
    /// connections here take `record`'s untrusted mark and counts. Returns whether it is
    /// still trusted.
    pub fn adopt(&mut self, key: &str, record: &Credibility) -> bool {
        self.fleet.adopt(key, record);
        let identity = self.fleet.intern(key);
        let trusted = !self.fleet.untrusted_identity(identity);
        if !trusted {
            self.wake(Wake::All);
        }
        trusted
    }

    /// Records a worker's checked benchmark score (fuel per µs per core), by which it is
    /// ranked until its tasks show its real speed.
    pub fn claim(&mut self, worker: WorkerId, score: f64) {
        self.fleet.claim(worker, score);
    }

    /// Notes something about a worker for its record.
    pub fn note(&mut self, worker: WorkerId, note: String) {
        self.fleet.note(worker, note);
    }

    /// What the scheduler knows of a worker.
    pub fn record(&self, worker: WorkerId) -> Option<WorkerRecord> {
        self.fleet.record(worker)
    }

    /// A worker left (or was disconnected): its tasks go back to the front of the queue.
    /// Each counts as lost with its identity: a task lost with [`MAX_LOST`] distinct
    /// identities fails, since it may be what kills workers.
    pub fn leave(&mut self, worker: WorkerId) {
        self.depart(worker, Departure::Lost);
    }

    /// Like [`Coordinator::leave`], for a worker the server disconnected for breaking the
    /// protocol: its tasks go back to the queue without counting as lost (otherwise a
    /// hostile peer could fail any task by misbehaving three times).
    pub fn expel(&mut self, worker: WorkerId) {
        self.depart(worker, Departure::Expelled);
    }

    /// Worker `worker` is gone, as `departure` says: its tasks go back to the front of the
    /// queue (see [`Departure`] for what else that means).
    pub fn depart(&mut self, worker: WorkerId, departure: Departure) {
        let identity = self.fleet.identity(worker);
        let address = self.fleet.address(worker);
        self.fleet.leave(worker);
        let mut lost: Vec<(AttemptId, TaskRef)> = self
            .attempts
            .iter()
            .filter(|(_, attempt)| attempt.worker == worker)
            .map(|(&id, attempt)| (id, attempt.task))
            .collect();
        lost.sort_unstable_by_key(|&(_, task)| std::cmp::Reverse(task));
        let held = !lost.is_empty();
        for (id, task) in lost {
            self.forget_attempt(id);
            if self.carries_on(task) {
                continue;
            }
            let history = self.history.entry(task).or_default();
            if departure == Departure::Lost {
                if let Some(identity) = identity
                    && !history.lost_by.contains(&identity)
                {
                    history.lost_by.push(identity);
                }
                if let Some(address) = &address
                    && !history.lost_from.contains(address)
                {
                    history.lost_from.push(address.clone());
                }
            }
            let by_identities = history.lost_by.len() as u32 >= self.max_lost;
            let by_addresses =
                !self.count_addresses || history.lost_from.len() as u32 >= self.max_lost;
            if departure == Departure::Lost && by_identities && by_addresses {
                let message = format!(
                    "{} workers (distinct identities) were lost while running this task",
                    self.max_lost
                );
                let failure = TaskFailure {
                    kind: FailureKind::Worker,
                    message,
                };
                self.votes.remove(&task);
                self.finish(task, Err(failure), Proof::NONE);
            } else {
                // A released worker left because the job ended (or was cancelled): its tasks
                // were not lost and will not run again.
                self.give_back(task, departure != Departure::Released);
            }
        }
        if let Some(identity) = identity {
            match departure {
                Departure::Lost if held => self.strike(identity, "disconnects with work"),
                Departure::Expelled => self.strike(identity, "protocol violations"),
                _ => {}
            }
            self.journal_identity(identity);
        }
        self.settle();
    }

    /// One attempt of `task` ended unanswered: whether a copy runs elsewhere in time (the
    /// task carries on there).
    pub(super) fn carries_on(&mut self, task: TaskRef) -> bool {
        self.drop_live(task) > 0 && !self.votes.contains_key(&task) && self.running_in_time(task)
    }

    /// `task`'s attempt ended unanswered, through no fault of the task: it goes back to the
    /// front of the queue (counted as requeued if `counted`), unless failures reported while
    /// the attempt ran were waiting for its answer, which will not come: they decide now.
    pub(super) fn give_back(&mut self, task: TaskRef, counted: bool) {
        if counted {
            self.counts.requeued += 1;
        }
        if !self.votes.contains_key(&task)
            && !self.running_in_time(task)
            && self
                .history
                .get(&task)
                .is_some_and(|history| !history.failures.is_empty())
        {
            self.judge_failures(task);
        } else {
            self.retries.push_front(task);
        }
    }
}
