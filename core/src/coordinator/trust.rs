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
            if others == 0 || !self.running_in_time(task) || self.votes.contains_key(&task) {
                self.retries.push_front(task);
            }
        }
        for stage in 0..self.stages.len() {
            if !revoke || !self.stages[stage].held() {
                continue;
            }
            let mut revoked: Vec<u64> = self.stages[stage]
                .results
                .iter()
                .filter(|(_, entry)| {
                    entry.proof.by == Some(identity) && entry.proof.check == Check::Unchecked
                })
                .map(|(&index, _)| index)
                .collect();
            // And a reduce's groups it folded.
            if let Some(tree) = &self.stages[stage].tree {
                let mut nodes: Vec<u64> = tree
                    .by
                    .iter()
                    .filter(|&(_, &by)| by == identity)
                    .map(|(&(level, position), _)| tree.task_index(level, position))
                    .collect();
                nodes.sort_unstable();
                revoked.extend(nodes);
            }
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
        let mut pending: Vec<TaskRef> = self
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
        pending.sort_unstable();
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
        let mut index = task.index;
        if let Some(tree) = &self.stages[task.stage].tree {
            let (level, position) = tree.node(task.index);
            if level < tree.top() {
                self.revoke_group(task, level, position);
                return;
            }
            // A reduce's root: its result is the stage's one, number 0.
            index = 0;
        }
        if self.withdraw(task.stage, index) {
            self.counts.revoked += 1;
            self.retries.push_back(task);
        }
    }

    /// Takes back final result `index` of `stage`, with what it counted. Returns whether
    /// there was one.
    fn withdraw(&mut self, stage: usize, index: u64) -> bool {
        let state = &mut self.stages[stage];
        let Some(entry) = state.results.remove(&index) else {
            return false;
        };
        state.done -= 1;
        let counter = match (&entry.outcome, entry.proof.check) {
            (Err(_), _) => &mut state.progress.failed,
            (Ok(_), Check::Unchecked) => &mut state.progress.unchecked,
            (Ok(_), Check::Verified) => &mut state.progress.verified,
            (Ok(_), Check::Replicated(_)) => &mut state.progress.replicated,
        };
        *counter = counter.saturating_sub(1);
        match entry.outcome {
            Ok(_) => self.counts.succeeded -= 1,
            Err(_) => self.counts.failed -= 1,
        }
        true
    }

    /// A reduce's group value `task`, at (level, position), is withdrawn: it runs again, and
    /// every value folded from it (its ancestors) is dropped, their tasks unqueued or
    /// cancelled, to be folded again once it is known.
    fn revoke_group(&mut self, task: TaskRef, level: usize, position: u64) {
        let stage = task.stage;
        let state = &mut self.stages[stage];
        let has_root = state.results.contains_key(&0);
        let tree = state.tree.as_mut().expect("a reduce stage");
        tree.by.remove(&(level, position));
        if tree.values.remove(&(level, position)).is_none() {
            // Already withdrawn with a group it was folded from.
            return;
        }
        let mut stale: Vec<(TaskRef, bool)> = Vec::new();
        let (mut at, mut node) = (level, position);
        let top = tree.top();
        let mut root_final = false;
        while at < top {
            node /= tree.fan_in;
            at += 1;
            tree.by.remove(&(at, node));
            let had = if at == top {
                // The root's value is the stage's result.
                root_final = has_root;
                root_final
            } else {
                tree.values.remove(&(at, node)).is_some()
            };
            stale.push((
                TaskRef {
                    stage,
                    index: tree.task_index(at, node),
                },
                had,
            ));
        }
        for (ancestor, had) in stale {
            self.retries.retain(|&t| t != ancestor);
            self.ready.retain(|&t| t != ancestor);
            self.votes.remove(&ancestor);
            self.reissued.remove(&ancestor);
            self.history.remove(&ancestor);
            self.cancel_copies(ancestor);
            if had {
                self.journal(|| Record::Revoked(ancestor));
            }
        }
        if root_final {
            self.withdraw(stage, 0);
        }
        self.counts.revoked += 1;
        self.retries.push_back(task);
    }
}
