//! What the core needs to know of a stage: where its inputs come from, who keeps its results,
//! how it is replicated, and its limits.

/// Where a stage's task inputs come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Feed {
    /// Known up front: every task can run at once.
    Inputs,
    /// Task `i` needs output `i` of each of these (distinct) stages.
    Items(Vec<usize>),
    /// One result: the outputs of `stage` folded as a tree of groups of `fan_in`.
    Reduce {
        /// The stage whose outputs are folded.
        stage: usize,
        /// Items per group (at least 2).
        fan_in: u64,
    },
}

/// Who keeps a stage's results once they are final, besides the stages reading them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Keep {
    /// Nobody: a result is dropped once the stages reading it are done with it.
    Nothing,
    /// A writer takes them in input order ([`Coordinator::take_ready`]).
    ///
    /// [`Coordinator::take_ready`]: crate::Coordinator::take_ready
    Ordered,
    /// A promise holds them all until [`Coordinator::release_stage`]; they can be read in
    /// index order ([`Coordinator::results`]) or completion order ([`Coordinator::log`]).
    ///
    /// [`Coordinator::release_stage`]: crate::Coordinator::release_stage
    /// [`Coordinator::results`]: crate::Coordinator::results
    /// [`Coordinator::log`]: crate::Coordinator::log
    All,
}

/// How a stage replicates tasks to check their results.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Replicate {
    /// Every result is taken from one worker.
    Off,
    /// This fraction of tasks, chosen at random once answered, run on `quorum` workers.
    Fraction(f64),
    /// Each answer is replicated with a probability that falls as its worker's agreeing
    /// replicated results grow, never below [`ADAPTIVE_FLOOR`].
    Adaptive,
}

/// The least probability with which [`Replicate::Adaptive`] replicates an answer.
pub const ADAPTIVE_FLOOR: f64 = 0.05;
/// Agreeing replicated results after which [`Replicate::Adaptive`] replicates half of a
/// worker's answers (a worker with `k` agreements is replicated with probability
/// `max(ADAPTIVE_FLOOR, 1 / (1 + k / ADAPTIVE_HALF))`).
pub const ADAPTIVE_HALF: f64 = 4.0;

/// What the coordinator needs to know of a stage.
#[derive(Debug, Clone, PartialEq)]
pub struct StagePlan {
    /// The stage's name, for messages.
    pub name: String,
    /// How many tasks (for a reduce stage: how many items it folds; for a stage reading a
    /// stage that is not dense: at most how many).
    pub tasks: u64,
    /// Failures before a task is reported as failed.
    pub max_attempts: u32,
    /// Where its inputs come from.
    pub feed: Feed,
    /// How many outputs that meet the goal (`Flow::Stop`) end the stage early.
    pub stop_after: u64,
    /// Whether its task may meet the goal; a stop from any other stage is ignored.
    pub stoppable: bool,
    /// For an explore stage, the most tasks it may grow to.
    pub explore: Option<u64>,
    /// Who keeps its results.
    pub keep: Keep,
    /// How its tasks are replicated to check them.
    pub replicate: Replicate,
    /// Agreeing answers a replicated task needs.
    pub quorum: u32,
    /// How long an attempt may run before the task is given to another worker too, in
    /// microseconds; `None`: from the task's limits and the worker's speed.
    pub deadline: Option<u64>,
    /// A task's fuel budget (with the worker's speed, it bounds how long a task can take).
    pub fuel: u64,
    /// A task's wall-clock limit on the worker, in microseconds.
    pub timeout: u64,
}
