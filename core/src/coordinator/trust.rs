//! Trust: strikes against an identity that lets work down, untrusting one caught lying or
//! unreliable (its running tasks go to others), revoking its unchecked results in a stage
//! not yet released, and journaling its record.

use super::Coordinator;
use crate::effect::{Event, Wake};
use crate::fleet::IdentityId;
use crate::record::Record;
use crate::types::{AttemptId, Check, TaskRef, WorkerId};

impl Coordinator {
    /// Journals identity `identity`'s record (the server also gives it to the trust records
    /// its jobs share).
    pub(super) fn journal_identity(&mut self, identity: IdentityId) {
        if !self.journaling {
            return;
        }
        let key = self.fleet.key(identity).to_owned();
        let credibility = self.fleet.credibility(identity);
        self.journal(|| Record::Identity { key, credibility });
    }

    /// `identity` let work down (`why` names how): a strike, and once its strikes outweigh
    /// its accepted answers it is marked unreliable and gets no more work.
    pub(super) fn strike(&mut self, identity: IdentityId, why: &str) {
        if self.fleet.strike(identity) && !self.fleet.untrusted_identity(identity) {
            let record = self.fleet.credibility(identity);
            let why = format!(
                "unreliable: {} strikes ({why} or failures no other identity confirmed) against {} accepted answers",
                record.strikes, record.accepted
            );
            self.distrust(identity, why, false);
        }
    }

    /// `worker` was caught returning a wrong result: it gets no more work, its running tasks
    /// go to others, and every result it gave that was accepted unchecked in a stage not yet
    /// released runs again on other workers.
    pub(super) fn untrust(&mut self, worker: WorkerId, why: String) {
        if let Some(identity) = self.fleet.identity(worker) {
            self.distrust(identity, why, true);
        }
    }

    /// Identity `identity` gets no more work, for `why`: its running tasks go to others, and
    /// (when `revoke`: it was caught returning a wrong result) every result it gave that was
    /// accepted unchecked in a stage not yet released runs again on other workers.
    fn distrust(&mut self, identity: IdentityId, why: String, revoke: bool) {
        if self.fleet.untrusted_identity(identity) {
            return;
        }
        self.event(Event::Untrusted {
            identity: self.fleet.key(identity).to_owned(),
            why: why.clone(),
        });
        self.fleet.untrust(identity, &why);
        self.wake(Wake::All);
        self.journal_identity(identity);
        self.counts.untrusted += 1;
        let connections = self.fleet.connections_of(identity);
        let mut running: Vec<AttemptId> = self
            .attempts
            .iter()
            .filter(|(_, attempt)| connections.contains(&attempt.worker))
            .map(|(&id, _)| id)
            .collect();
        running.sort_unstable();
        for id in running {
            let Some((task, others)) = self.cancel_attempt(id) else {
                continue;
            };
            if others == 0 || self.votes.contains_key(&task) {
                self.retries.push_front(task);
            }
        }
        for stage in 0..self.stages.len() {
            if !revoke || !self.stages[stage].held() {
                continue;
            }
            let revoked: Vec<u64> = self.stages[stage]
                .results
                .iter()
                .filter(|(_, entry)| {
                    entry.proof.by == Some(identity) && entry.proof.check == Check::Unchecked
                })
                .map(|(&index, _)| index)
                .collect();
            for index in revoked {
                let task = TaskRef { stage, index };
                self.journal(|| Record::Revoked(task));
                self.revoke(task);
                self.history
                    .entry(task)
                    .or_default()
                    .failed_on
                    .push(identity);
            }
        }
        // Its answers to tasks still being voted on no longer count.
        let pending: Vec<TaskRef> = self
            .votes
            .iter()
            .filter(|(_, votes)| {
                votes
                    .answers
                    .iter()
                    .any(|vote| self.fleet.identity(vote.worker) == Some(identity))
            })
            .map(|(&task, _)| task)
            .collect();
        for task in pending {
            let fleet = &self.fleet;
            if let Some(votes) = self.votes.get_mut(&task) {
                votes
                    .answers
                    .retain(|vote| fleet.identity(vote.worker) != Some(identity));
            }
            self.decide(task);
        }
    }

    /// `task`'s accepted result is withdrawn (its worker was caught lying): it runs again.
    pub(super) fn revoke(&mut self, task: TaskRef) {
        let state = &mut self.stages[task.stage];
        if state.results.remove(&task.index).is_none() {
            return;
        }
        state.done -= 1;
        state.progress.unchecked = state.progress.unchecked.saturating_sub(1);
        self.counts.succeeded -= 1;
        self.counts.revoked += 1;
        self.retries.push_back(task);
    }
}
