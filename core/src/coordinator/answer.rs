//! Answers: a worker's result for an attempt, a verifier's rejection of one, and accepting a
//! task's output as final (which proves liars wrong).

use dipla_protocol::{FailureKind, RawJson, TaskFailure};

use super::Coordinator;
use super::failure::Evidence;
use super::results::Proof;
use crate::fleet::IdentityId;
use crate::record::Record;
use crate::types::{Answer, AttemptId, Check, TaskRef, Violation, WorkerId};
use crate::votes::{Vote, Votes};

impl Coordinator {
    /// A worker answered attempt `id` after `micros` of work.
    ///
    /// # Errors
    /// When the worker was not running that attempt.
    #[cfg(test)]
    pub(crate) fn complete(
        &mut self,
        worker: WorkerId,
        id: AttemptId,
        micros: u64,
        outcome: crate::types::Outcome,
    ) -> Result<(), Violation> {
        self.complete_with(worker, id, 0, micros, outcome, false)
    }

    /// Like [`Coordinator::complete`], with the `fuel` the task burnt (its worker's speed is
    /// measured by it), for a result that may meet its stage's goal (`stop`; ignored unless
    /// the stage is stoppable).
    ///
    /// # Errors
    /// When the worker was not running that attempt.
    #[cfg(test)]
    pub(crate) fn complete_with(
        &mut self,
        worker: WorkerId,
        id: AttemptId,
        fuel: u64,
        micros: u64,
        outcome: crate::types::Outcome,
        stop: bool,
    ) -> Result<(), Violation> {
        let answer = Answer {
            fuel,
            micros,
            outcome,
            stop,
            verified: false,
            capped: false,
        };
        self.answer(worker, id, answer)
    }

    /// Worker `worker` answered attempt `id`.
    ///
    /// A successful answer of a task that another attempt also runs (a speculative copy)
    /// cancels that one. In a replicated stage, an answer may be chosen (at random, after the
    /// fact, so no worker can tell) to be checked by replicas on other workers; the task's
    /// result is then the answer a quorum agrees on, and whoever disagreed is untrusted.
    ///
    /// # Errors
    /// When the worker was not running that attempt.
    pub fn answer(
        &mut self,
        worker: WorkerId,
        id: AttemptId,
        answer: Answer,
    ) -> Result<(), Violation> {
        let Some(task) = self.end_attempt(worker, id, answer.fuel, answer.micros)? else {
            return Ok(());
        };
        let copies = self.live.get(&task).copied().unwrap_or(0);
        let outcome = match (answer.outcome, self.stages[task.stage].plan.explore) {
            (Ok(output), Some(_)) => super::explore::checked(output),
            (outcome, _) => outcome,
        };
        match outcome {
            Ok(output) => {
                let stage = &mut self.stages[task.stage];
                let sample = answer.micros as f64;
                stage.task_micros = Some(
                    stage
                        .task_micros
                        .map_or(sample, |average| 0.8 * average + 0.2 * sample),
                );
                let vote = Vote {
                    worker,
                    fuel: answer.fuel,
                    output,
                    stop: answer.stop,
                };
                if self.votes.contains_key(&task) {
                    self.votes
                        .get_mut(&task)
                        .expect("checked")
                        .answers
                        .push(vote);
                    self.decide(task);
                } else if self.replicate_now(task.stage, worker) {
                    if copies > 0 {
                        self.cancel_copies(task);
                    }
                    let quorum = self.stages[task.stage].plan.quorum;
                    let votes = Votes {
                        answers: vec![vote],
                        asked: vec![worker],
                    };
                    self.votes.insert(task, votes);
                    self.reissued.insert(task);
                    for _ in 1..quorum {
                        self.retries.push_back(task);
                    }
                    self.counts.replicas += u64::from(quorum.saturating_sub(1));
                } else {
                    if copies > 0 {
                        self.cancel_copies(task);
                    }
                    let check = if answer.verified {
                        Check::Verified
                    } else {
                        Check::Unchecked
                    };
                    self.accept(task, vote.output, Some(worker), check);
                    self.met_goal(task, answer.stop);
                }
            }
            Err(failure) => self.failed(task, worker, failure, answer.fuel, answer.capped, copies),
        }
        self.settle();
        Ok(())
    }

    /// The accepted output of `task` says whether it meets the stage's goal (`stop`): count
    /// it. Only an accepted output counts: a replicated answer's claim waits for the quorum,
    /// so no single worker can end a stage early by saying so.
    pub(super) fn met_goal(&mut self, task: TaskRef, stop: bool) {
        let state = &self.stages[task.stage];
        if stop && state.plan.stoppable && state.stopped.is_none() {
            self.journal(|| Record::Goal(task));
            self.goal(task);
        }
    }

    /// The stage's verifier rejected `worker`'s output for attempt `id`: the task runs again
    /// on another worker, and if one of those passes, `worker` lied and is untrusted.
    ///
    /// # Errors
    /// When the worker was not running that attempt.
    pub fn reject(
        &mut self,
        worker: WorkerId,
        id: AttemptId,
        micros: u64,
        why: String,
    ) -> Result<(), Violation> {
        let Some(task) = self.end_attempt(worker, id, 0, micros)? else {
            return Ok(());
        };
        self.fleet.rejected(worker);
        if let Some(identity) = self.fleet.identity(worker) {
            self.journal_identity(identity);
        }
        self.counts.rejected += 1;
        let max = self.stages[task.stage].plan.max_attempts;
        let identity = self.fleet.identity(worker);
        let history = self.history.entry(task).or_default();
        history.tries += 1;
        history.failed_on.extend(identity);
        history.rejected_on.push(worker);
        if history.counted(&self.fleet) >= max {
            let failure = TaskFailure {
                kind: FailureKind::Unverified,
                message: format!("the verifier rejected the output {max} times; the last: {why}"),
            };
            self.votes.remove(&task);
            self.finish(task, Err(failure), Proof::NONE);
        } else if !self.running_in_time(task) {
            self.counts.retried += 1;
            self.retries.push_back(task);
        }
        self.settle();
        Ok(())
    }

    /// Ends attempt `id` of `worker`: the task it was for, or `None` for a cancelled attempt.
    fn end_attempt(
        &mut self,
        worker: WorkerId,
        id: AttemptId,
        fuel: u64,
        micros: u64,
    ) -> Result<Option<TaskRef>, Violation> {
        if self.cancelled.remove(&id) {
            return Ok(None);
        }
        let task = match self.attempts.get(&id) {
            Some(attempt) if attempt.worker == worker => attempt.task,
            _ => return Err(Violation::UnknownAttempt(id)),
        };
        self.forget_attempt(id);
        self.drop_live(task);
        self.fleet.finished(worker, fuel, micros, self.now);
        Ok(Some(task))
    }

    /// `task`'s output is final: record it, and untrust whoever a verifier caught lying
    /// about this task (this output shows a right answer exists).
    pub(super) fn accept(
        &mut self,
        task: TaskRef,
        output: Box<RawJson>,
        by: Option<WorkerId>,
        check: Check,
    ) {
        let output = match self.stages[task.stage].plan.explore {
            Some(max) => self.explored(task.stage, output, max),
            None => output,
        };
        let (liars, refuted) = self
            .history
            .get(&task)
            .map(|history| {
                let mut refuted: Vec<IdentityId> = Vec::new();
                for failed in &history.failures {
                    if failed.evidence != Evidence::None && !refuted.contains(&failed.identity) {
                        refuted.push(failed.identity);
                    }
                }
                (history.rejected_on.clone(), refuted)
            })
            .unwrap_or_default();
        let identity = by.and_then(|worker| self.fleet.identity(worker));
        if let Some(identity) = identity {
            self.fleet.accepted(identity);
        }
        // A right answer exists: whoever said the task fails let it down.
        for failed in refuted {
            if Some(failed) != identity {
                self.strike(failed, "failures another identity's output refuted");
            }
        }
        self.finish(
            task,
            Ok(output),
            Proof {
                by: identity,
                check,
            },
        );
        if check == Check::Unchecked && by.is_none() {
            return;
        }
        let name = self.stages[task.stage].plan.name.clone();
        for liar in liars {
            let why = format!(
                "the verifier rejected its output for task {} of stage {name:?}, which another worker then answered correctly",
                task.index
            );
            self.untrust(liar, why);
        }
    }
}
