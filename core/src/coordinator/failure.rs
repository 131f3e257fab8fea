//! Failures: what a task's earlier attempts went through, and when a reported failure is
//! final (confirmed by enough identities, out of attempts, or from the server's own worker).

use dipla_protocol::{FailureKind, TaskFailure};

use super::Coordinator;
use super::results::Proof;
use crate::fleet::{Fleet, IdentityId};
use crate::plan::Replicate;
use crate::types::{Check, TaskRef, WorkerId};

#[derive(Debug, Default)]
pub(super) struct History {
    /// Attempts that ended in a failure or a rejected output.
    pub(super) tries: u32,
    /// The failures reported, in order.
    pub(super) failures: Vec<Failed>,
    /// Identities lost while running it, and their addresses where known.
    pub(super) lost_by: Vec<IdentityId>,
    pub(super) lost_from: Vec<String>,
    /// Identities whose attempt failed or whose output was rejected: a retry goes to another
    /// identity (the server's own may try again).
    pub(super) failed_on: Vec<IdentityId>,
    /// Workers whose output the verifier rejected: if another worker's output passes, they
    /// lied.
    pub(super) rejected_on: Vec<WorkerId>,
}

impl History {
    /// How many attempts count towards the task's `max_attempts`: one per identity, but
    /// every attempt of the server's own.
    pub(super) fn counted(&self, fleet: &Fleet) -> u32 {
        let mut seen: Vec<IdentityId> = Vec::new();
        let mut counted = 0;
        for &identity in &self.failed_on {
            if fleet.is_own(identity) || !seen.contains(&identity) {
                seen.push(identity);
                counted += 1;
            }
        }
        counted
    }
}

/// A failure a worker reported.
#[derive(Debug)]
pub(super) struct Failed {
    pub(super) identity: IdentityId,
    pub(super) failure: TaskFailure,
    pub(super) fuel: u64,
    pub(super) evidence: Evidence,
}

impl Failed {
    /// Whether this failure, reported by one of the server's own workers, is final at once:
    /// a deterministic one, or a stack overflow (which depends only on the machine and the
    /// sandbox's build, and the server's own workers share both). Timeouts and worker errors
    /// depend on the moment, and a failure under capped limits says nothing of the task.
    pub(super) fn final_on_own(&self) -> bool {
        match self.evidence {
            Evidence::Exact => true,
            Evidence::Kind => self.failure.kind == FailureKind::StackOverflow,
            Evidence::None => false,
        }
    }

    /// Whether this failure confirms `other`.
    pub(super) fn confirms(&self, other: &Self) -> bool {
        self.failure.kind == other.failure.kind
            && self.evidence == other.evidence
            && match self.evidence {
                Evidence::Exact => {
                    self.failure.message == other.failure.message && self.fuel == other.fuel
                }
                Evidence::Kind => true,
                Evidence::None => false,
            }
    }
}

/// What a reported failure says of its task.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Evidence {
    /// Every honest worker fails the same way, message and fuel included.
    Exact,
    /// Honest workers fail the same way in kind only (a timeout, a stack overflow, a worker
    /// error).
    Kind,
    /// Nothing: the worker's own caps were below the task's limits.
    None,
}

impl Evidence {
    pub(super) fn of(failure: &TaskFailure, capped: bool) -> Self {
        let limit = matches!(
            failure.kind,
            FailureKind::OutOfFuel | FailureKind::MemoryLimit
        );
        if capped && limit {
            Self::None
        } else if failure.kind.is_deterministic() {
            Self::Exact
        } else {
            Self::Kind
        }
    }
}

impl Coordinator {
    /// `worker` reported that `task` failed. A failure is a result, checked like one: it is
    /// final when enough distinct identities confirm it ([`Coordinator::failure_quorum`]:
    /// the same failure, message and fuel included, or the same kind for failures that
    /// depend on the machine), when `max_attempts` distinct identities have failed it
    /// whatever the failures, or at once from the server's own workers. Until then the task
    /// runs again on another identity.
    pub(super) fn failed(
        &mut self,
        task: TaskRef,
        worker: WorkerId,
        failure: TaskFailure,
        fuel: u64,
        capped: bool,
        copies: u32,
    ) {
        let Some(identity) = self.fleet.identity(worker) else {
            return;
        };
        let report = Failed {
            identity,
            evidence: Evidence::of(&failure, capped),
            failure,
            fuel,
        };
        let own = self.fleet.is_own(identity) && report.final_on_own();
        let history = self.history.entry(task).or_default();
        history.tries += 1;
        history.failed_on.push(identity);
        let mut confirmed_by: Vec<IdentityId> = Vec::new();
        for earlier in &history.failures {
            if earlier.confirms(&report) && !confirmed_by.contains(&earlier.identity) {
                confirmed_by.push(earlier.identity);
            }
        }
        if !confirmed_by.contains(&identity) {
            confirmed_by.push(identity);
        }
        let failure = report.failure.clone();
        history.failures.push(report);
        if copies > 0 && !self.votes.contains_key(&task) && self.running_in_time(task) {
            // Another attempt is still running in time: its answer decides.
            return;
        }
        if own && confirmed_by.len() == 1 {
            self.votes.remove(&task);
            let proof = Proof {
                by: Some(identity),
                check: Check::Unchecked,
            };
            self.finish(task, Err(failure), proof);
        } else {
            self.judge_failures(task);
        }
    }

    /// Decides `task` from the failures reported so far (no attempt of it runs in time):
    /// final when enough distinct identities confirm one failure, or when `max_attempts`
    /// identities failed it (the failure most of them reported stands, the first of those on
    /// a tie, never merely the last, which a hostile identity may have made up); otherwise
    /// it runs again on another identity.
    pub(super) fn judge_failures(&mut self, task: TaskRef) {
        let quorum = self.failure_quorum(task.stage);
        let max = self.stages[task.stage].plan.max_attempts;
        let Some(history) = self.history.get(&task) else {
            return;
        };
        let tried = history.counted(&self.fleet);
        // The failure most identities reported; on a tie, the one whose reporters have the
        // most accepted answers between them (a new identity's word weighs least), then the
        // first.
        let mut best: Option<((usize, u64), Vec<IdentityId>, TaskFailure)> = None;
        for candidate in &history.failures {
            let mut confirming: Vec<IdentityId> = Vec::new();
            for other in &history.failures {
                if other.confirms(candidate) && !confirming.contains(&other.identity) {
                    confirming.push(other.identity);
                }
            }
            let weight = confirming
                .iter()
                .map(|&identity| self.fleet.credibility(identity).accepted)
                .sum::<u64>();
            let rank = (confirming.len(), weight);
            if best.as_ref().is_none_or(|(most, _, _)| rank > *most) {
                best = Some((rank, confirming, candidate.failure.clone()));
            }
        }
        let Some((_, confirmed_by, failure)) = best else {
            return;
        };
        if confirmed_by.len() >= quorum {
            for &confirmer in &confirmed_by {
                self.fleet.accepted(confirmer);
            }
            self.votes.remove(&task);
            let proof = Proof {
                by: None,
                check: Check::Replicated(confirmed_by.len() as u32),
            };
            self.finish(task, Err(failure), proof);
        } else if tried >= max {
            self.votes.remove(&task);
            self.finish(task, Err(failure), Proof::NONE);
        } else if !self.retries.holds(task) {
            self.counts.retried += 1;
            self.retries.push_back(task);
        }
    }

    /// How many distinct identities must report the same failure for it to be final: two,
    /// or a replicated stage's quorum if that is more.
    fn failure_quorum(&self, stage: usize) -> usize {
        let plan = &self.stages[stage].plan;
        match plan.replicate {
            Replicate::Off => 2,
            _ => plan.quorum.max(2) as usize,
        }
    }
}
