//! Replication: which answers are checked by replicas on other workers (at random, from the
//! coordinator's seed), and deciding a replicated task by its quorum.

use dipla_protocol::{FailureKind, TaskFailure};

use super::Coordinator;
use super::results::Proof;
use crate::plan::{ADAPTIVE_FLOOR, ADAPTIVE_HALF, Replicate};
use crate::types::{Check, TaskRef, WorkerId};
use crate::votes::Decision;

impl Coordinator {
    /// Whether to check the first answer to a task of `stage`, given by `worker`, with
    /// replicas.
    pub(super) fn replicate_now(&mut self, stage: usize, worker: WorkerId) -> bool {
        let probability = match self.stages[stage].plan.replicate {
            Replicate::Off => return false,
            Replicate::Fraction(fraction) => fraction,
            Replicate::Adaptive => {
                let agreed = self.fleet.agreements(worker) as f64;
                (1.0 / (1.0 + agreed / ADAPTIVE_HALF)).max(ADAPTIVE_FLOOR)
            }
        };
        self.random() < probability
    }

    /// A uniform number in [0, 1).
    fn random(&mut self) -> f64 {
        // xorshift64*
        self.rng ^= self.rng >> 12;
        self.rng ^= self.rng << 25;
        self.rng ^= self.rng >> 27;
        (self.rng.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11) as f64 / (1u64 << 53) as f64
    }

    /// A replicated task has a new answer: accept the quorum's, untrust dissenters, or ask
    /// for more.
    pub(super) fn decide(&mut self, task: TaskRef) {
        let quorum = self.stages[task.stage].plan.quorum;
        let max = (2 * quorum + 1) as usize;
        let decision = self.votes[&task].decide(quorum, max);
        match decision {
            Decision::Agreed {
                output,
                stop,
                agree,
                disagree,
            } => {
                self.votes.remove(&task);
                self.cancel_copies(task);
                for &worker in &agree {
                    self.fleet.agreed(worker);
                    if let Some(identity) = self.fleet.identity(worker) {
                        self.fleet.accepted(identity);
                    }
                    if let Some(identity) = self.fleet.identity(worker) {
                        self.journal_identity(identity);
                    }
                }
                // Accepted first: untrusting a dissenter may revoke what this result was
                // folded from (a reduce's group), which must then withdraw it too.
                let check = Check::Replicated(agree.len() as u32);
                let agreed = agree.len();
                self.accept(task, output, None, check);
                self.met_goal(task, stop);
                let name = self.stages[task.stage].plan.name.clone();
                for worker in disagree {
                    let why = format!(
                        "its result for task {} of stage {name:?} disagreed with {agreed} other workers",
                        task.index,
                    );
                    self.untrust(worker, why);
                }
            }
            Decision::Undecided { missing } => {
                let outstanding = self.outstanding(task);
                for _ in outstanding..missing as usize {
                    self.retries.push_back(task);
                    self.counts.replicas += 1;
                }
            }
            Decision::Split { answers, groups } => {
                if self.outstanding(task) == 0 {
                    self.votes.remove(&task);
                    let failure = TaskFailure {
                        kind: FailureKind::Unverified,
                        message: format!(
                            "{answers} workers gave {groups} different answers and no {quorum} agreed"
                        ),
                    };
                    self.finish(task, Err(failure), Proof::NONE);
                }
            }
        }
    }

    /// Attempts of `task` running in time (an overdue one may never answer: nothing waits
    /// on it) or waiting in the queues.
    fn outstanding(&self, task: TaskRef) -> usize {
        self.in_time(task) + self.retries.iter().filter(|&&t| t == task).count()
    }
}
