//! The words the core speaks: workers, attempts, tasks, outcomes, answers and what the core
//! reports back (assignments, finished results, counters).

use dipla_protocol::{RawJson, TaskFailure};

/// A connected worker, as the coordinator knows it.
pub type WorkerId = u64;

/// One attempt at running a task; the id that travels in the protocol.
pub type AttemptId = u64;

/// A task's final outcome: its output, or the failure that ended its last attempt.
pub type Outcome = Result<Box<RawJson>, TaskFailure>;

/// A task: its stage and its index in the stage (for a reduce stage, its node in the tree).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TaskRef {
    /// The stage, in the order stages were added.
    pub stage: usize,
    /// The task's index in the stage.
    pub index: u64,
}

/// How a final result was checked (the `"check"` of its result line).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Check {
    /// Taken from one worker.
    Unchecked,
    /// The stage's verifier accepted it.
    Verified,
    /// This many workers gave it.
    Replicated(u32),
}

impl std::str::FromStr for Check {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "unchecked" => Ok(Self::Unchecked),
            "verified" => Ok(Self::Verified),
            _ => text
                .strip_prefix("replicated:")
                .and_then(|k| k.parse().ok())
                .map(Self::Replicated)
                .ok_or_else(|| {
                    format!("{text:?} is not a check (unchecked, verified, replicated:K)")
                }),
        }
    }
}

impl std::fmt::Display for Check {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Unchecked => f.write_str("unchecked"),
            Self::Verified => f.write_str("verified"),
            Self::Replicated(k) => write!(f, "replicated:{k}"),
        }
    }
}

/// A worker's answer to an attempt.
#[derive(Debug)]
pub struct Answer {
    /// Fuel the task burnt.
    pub fuel: u64,
    /// Time it took on the worker.
    pub micros: u64,
    /// Its output or failure.
    pub outcome: Outcome,
    /// Whether the output meets its stage's goal (`Flow::Stop`).
    pub stop: bool,
    /// Whether the stage's verifier accepted the output.
    pub verified: bool,
    /// Whether the worker's own caps were below the task's fuel or memory limit, so that its
    /// `out_of_fuel` or `memory_limit` failure says nothing of the task.
    pub capped: bool,
}

/// How a worker left, which decides what its unanswered tasks say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Departure {
    /// Its connection ended (closed, dropped, silent): its tasks were lost with it, which
    /// counts against them only once distinct identities died running them, and against the
    /// identity if it held any.
    Lost,
    /// The server closed it for breaking the protocol: a strike against the identity, never
    /// against its tasks.
    Expelled,
    /// It left because the server asked it to (the job ended, or it moved to another job).
    Released,
}

/// A finished task, taken by the writer.
#[derive(Debug)]
pub struct Finished {
    /// Which task (a reduce stage's one result has index 0).
    pub task: TaskRef,
    /// Its output, or the failure that ended its last attempt.
    pub outcome: Outcome,
    /// How many attempts ran to an answer (successful or not).
    pub attempts: u32,
    /// For a stage reading other stages, the outputs it read, one per stage in its
    /// [`Feed::Items`] order (`None` for one that failed).
    ///
    /// [`Feed::Items`]: crate::Feed::Items
    pub items: Vec<Option<Box<RawJson>>>,
    /// How its output was checked.
    pub check: Check,
}

/// Tasks to send to one worker, all from one stage.
#[derive(Debug, PartialEq, Eq)]
pub struct Assignment {
    /// The stage (decides module, export and limits).
    pub stage: usize,
    /// Attempt ids and task indexes.
    pub tasks: Vec<(AttemptId, u64)>,
}

/// A worker broke the protocol with a result.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Violation {
    /// The result names an attempt this worker was not running.
    #[error("result for task {0}, which this worker was not given or already answered")]
    UnknownAttempt(AttemptId),
}

/// One stage's progress, for operators.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct StageProgress {
    /// Results it will have (at most, for a stage that may stop early or grows).
    pub tasks: u64,
    /// Final results.
    pub done: u64,
    /// Tasks waiting for a worker.
    pub queued: u64,
    /// Attempts running now.
    pub running: u64,
    /// Final results that are failures.
    pub failed: u64,
    /// Outputs accepted from one worker.
    pub unchecked: u64,
    /// Outputs its verifier accepted.
    pub verified: u64,
    /// Outputs replicas agreed on.
    pub replicated: u64,
}

/// Counters of what happened, for the summary.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Counts {
    /// Results finished with an output.
    pub succeeded: u64,
    /// Results finished with a failure.
    pub failed: u64,
    /// Attempts that failed and were retried.
    pub retried: u64,
    /// Attempts lost with their worker and run again.
    pub requeued: u64,
    /// Tasks never run, or cancelled, because their stage met its goal.
    pub stopped: u64,
    /// Speculative copies of tasks running on slower workers, started by idle faster ones.
    pub speculated: u64,
    /// Replicas issued to check results.
    pub replicas: u64,
    /// Outputs a verifier rejected.
    pub rejected: u64,
    /// Workers caught returning a wrong result.
    pub untrusted: u64,
    /// Accepted unchecked results of untrusted workers, run again.
    pub revoked: u64,
    /// Attempts past their deadline whose task was given to another worker too.
    pub expired: u64,
    /// Results taken from the journal of an earlier run rather than computed again.
    pub restored: u64,
}
