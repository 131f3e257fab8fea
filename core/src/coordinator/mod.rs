//! The scheduling core: which task runs where, what happens when it fails or its worker
//! vanishes, which tasks a finished one makes ready, and which results are ready to write. It
//! does no I/O and reads no clock: the transport feeds it events (a worker joined, results
//! arrived, a worker left) and sends what it decides, so it can be tested deterministically.
//!
//! Stages form a graph, which may grow while it runs ([`Coordinator::add_stage`]: the driver
//! API adds a stage each time a task is applied to a promise). A stage fed by inputs known up
//! front ([`Feed::Inputs`]) hands out tasks from a cursor. A stage fed by other stages' outputs
//! ([`Feed::Items`]: a map over a promise, or a zip) gets task `i` as soon as item `i` of every
//! stage it reads exists, so downstream work starts while upstream work is still running
//! (pipelining). A reduce stage ([`Feed::Reduce`]) folds another stage's outputs as a tree of
//! fixed shape: groups of `fan_in` consecutive items, level by level, so the result never
//! depends on completion order. A failed item fails whatever needed it, naming it.
//!
//! A stage is *dense* when its tasks are known up front: every index up to its task count
//! will have a result. A stage that may stop early or explores is not, and neither is a stage
//! reading one: a map over it has one task per result it ends up with, and a reduce of it
//! waits for it to complete before shaping its tree.
//!
//! Memory is proportional to the work in flight plus the outputs someone still reads: each
//! result is kept while stages reading it have not finished with it, while a writer has not
//! taken it ([`Keep::Ordered`]), or while a driver's promise holds its stage ([`Keep::All`]).
//!
//! The coordinator is one type, [`Coordinator`]; its methods are grouped by concern, one file
//! each: this one holds its state, construction, configuration and the effects it leaves;
//! `stage` the stage graph; `workers` joins, identities and departures; `pause` volunteers pausing and resuming; `assign` handing out
//! work; `attempts` an attempt's life; `deadline` time, deadlines and `tick`; `speculate`
//! copies of slow tasks; `answer`, `failure` and `replicate` what an answer makes final;
//! `trust` strikes, liars and revocations; `stop` and `explore` stages that end early or
//! grow; `feed` and `reduce` how results flow to the stages reading them; `results` final
//! results and the writer; `progress` counters; `restore` the journal.
//!
//! [`Feed::Inputs`]: crate::Feed::Inputs
//! [`Feed::Items`]: crate::Feed::Items
//! [`Feed::Reduce`]: crate::Feed::Reduce
//! [`Keep::Ordered`]: crate::Keep::Ordered
//! [`Keep::All`]: crate::Keep::All

mod answer;
mod assign;
mod attempts;
mod deadline;
mod explore;
mod failure;
mod feed;
mod pause;
mod progress;
mod reduce;
mod replicate;
mod restore;
mod results;
mod speculate;
mod stage;
mod stop;
mod trust;
mod workers;

pub use deadline::DEADLINE_GRACE;
pub use speculate::{SPECULATE_FASTER, STRAGGLER};
pub use workers::MAX_LOST;

use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};

use self::attempts::Attempt;
use self::failure::History;
use self::speculate::Copyable;
use self::stage::StageState;
use crate::effect::{Effect, Event, Wake};
use crate::fleet::Fleet;
use crate::plan::StagePlan;
use crate::queue::TaskQueue;
use crate::record::Record;
use crate::types::{AttemptId, Counts, TaskRef};
use crate::votes::Votes;

/// Effects already waiting that need not be repeated.
#[derive(Debug, Default)]
struct Pending {
    woke_all: bool,
    ready: bool,
}

/// The scheduling state of one job.
#[derive(Debug)]
pub struct Coordinator {
    stages: Vec<StageState>,
    /// Tasks whose inputs have just become available, oldest first.
    ready: TaskQueue,
    /// Tasks to run again, oldest first.
    retries: TaskQueue,
    attempts: HashMap<AttemptId, Attempt>,
    next_attempt: AttemptId,
    history: HashMap<TaskRef, History>,
    fleet: Fleet,
    /// Live attempts of each running task (more than one for a speculative copy).
    live: HashMap<TaskRef, u32>,
    /// Whether idle faster workers may copy tasks running on slower ones.
    speculate: bool,
    /// How many trusted workers must have joined before the first task is given out; zero
    /// once they have (workers leaving later do not stop the job).
    waiting_for: usize,
    /// Microseconds since the job started, as the transport last said.
    now: u64,
    /// The answers so far to replicated tasks.
    votes: HashMap<TaskRef, Votes>,
    /// Picks which answers to replicate (xorshift, from the seed it was made with).
    rng: u64,
    /// Tasks queued again while an attempt may still answer (replicas, overdue tasks): when
    /// such a task is final, its other attempts and queue entries are dropped, so no task is
    /// ever counted twice.
    reissued: HashSet<TaskRef>,
    /// How many distinct identities may be lost running a task before it is failed.
    max_lost: u32,
    /// Whether those must also be on distinct addresses (`--max-identities-per-ip`).
    count_addresses: bool,
    /// Attempts an idle worker might copy, slowest worker first, then oldest, as of the last
    /// scan (see [`Coordinator::copies_for`]).
    copyable: VecDeque<Copyable>,
    /// When to scan the attempts for copies again.
    next_copy_scan: u64,
    /// Attempts cancelled by a stop or a pause: their late results are ignored.
    cancelled: HashSet<AttemptId>,
    counts: Counts,
    /// Whether final results, goals, discoveries, revocations and trust records are
    /// journaled ([`Effect::Journal`]).
    journaling: bool,
    /// What the world around should do, in order, until it takes them.
    effects: Vec<Effect>,
    /// Which once-per-batch effects are among them.
    pending: Pending,
    /// The deadlines of attempts not yet overdue, soonest first (for
    /// [`Coordinator::poll_timeout`]).
    deadlines: BTreeSet<(u64, AttemptId)>,
    /// When an attempt running now may first become a straggler worth copying, as of the last
    /// scan for copies (`u64::MAX`: none, or no scan since it passed).
    next_straggler: u64,
}

impl Default for Coordinator {
    fn default() -> Self {
        Self::new(Vec::new())
    }
}

impl Coordinator {
    /// A coordinator for stages with these plans. Plans must only refer to other stages
    /// (and not form a cycle), as the manifest guarantees; a stage may read a later one.
    pub fn new(plans: Vec<StagePlan>) -> Self {
        Self::seeded(plans, 0x2545_F491_4F6C_DD1D)
    }

    /// A coordinator for stages with these plans, whose random choices (which answers to
    /// replicate) follow from `seed`: two coordinators with one seed fed the same inputs
    /// decide the same. The server seeds each job from the system's randomness, so a worker
    /// cannot predict which of its answers are checked.
    pub fn seeded(plans: Vec<StagePlan>, seed: u64) -> Self {
        let mut coordinator = Self {
            stages: plans.into_iter().map(StageState::new).collect(),
            ready: TaskQueue::default(),
            retries: TaskQueue::default(),
            attempts: HashMap::new(),
            next_attempt: 1,
            history: HashMap::new(),
            fleet: Fleet::default(),
            live: HashMap::new(),
            speculate: true,
            waiting_for: 0,
            now: 0,
            votes: HashMap::new(),
            rng: seed | 1,
            reissued: HashSet::new(),
            max_lost: MAX_LOST,
            count_addresses: false,
            copyable: VecDeque::new(),
            next_copy_scan: 0,
            cancelled: HashSet::new(),
            counts: Counts::default(),
            journaling: false,
            effects: Vec::new(),
            pending: Pending::default(),
            deadlines: BTreeSet::new(),
            next_straggler: u64::MAX,
        };
        for stage in 0..coordinator.stages.len() {
            coordinator.wire(stage);
        }
        // What needs no worker at all is final now (a reduce of a stage with no tasks).
        coordinator.settle();
        coordinator
    }

    /// Makes a task fail for killing workers only when the identities lost running it were
    /// also on distinct addresses (set where identities per address are capped).
    pub fn count_addresses(&mut self, count: bool) {
        self.count_addresses = count;
    }

    /// Marks `key` as the server's own identity (a local worker's): its deterministic
    /// failures are final at once, and its allowance is not limited.
    pub fn own_identity(&mut self, key: &str) {
        self.fleet.own(key);
    }

    /// How many distinct identities may be lost running a task before it is failed (default
    /// [`MAX_LOST`]).
    pub fn set_max_lost(&mut self, times: u32) {
        self.max_lost = times.max(1);
    }

    /// Whether idle faster workers may run copies of tasks running on slower ones (default
    /// yes).
    pub fn set_speculation(&mut self, speculate: bool) {
        self.speculate = speculate;
    }

    /// Gives out no task until `workers` trusted workers have joined (default: none to wait
    /// for), so that the first to join does not take work a fleet starting together would
    /// share, and every worker is measured on the job. Once they have, the job runs on
    /// whoever is connected.
    pub fn wait_for_workers(&mut self, workers: usize) {
        self.waiting_for = workers;
    }

    /// Makes the coordinator emit [`Effect::Journal`] records (a job with a journal, or a
    /// driver's mirror of one) or stop emitting them: every final result, goal met, input
    /// discovered, result revoked and trust record, in the order they happen. Replayed with
    /// [`Coordinator::restore`], they bring a new coordinator of the same job back to this
    /// one's results.
    pub fn set_journaling(&mut self, journaling: bool) {
        self.journaling = journaling;
    }

    /// Takes what the world around should do, in the order it should be done.
    pub fn take_effects(&mut self) -> Vec<Effect> {
        if self.retries.take_grew() | self.ready.take_grew() {
            // New work: connections look for it.
            self.wake(Wake::All);
        }
        self.pending = Pending::default();
        std::mem::take(&mut self.effects)
    }

    /// Whether effects wait to be taken.
    pub fn has_effects(&self) -> bool {
        !self.effects.is_empty() || self.retries.grew() || self.ready.grew()
    }

    /// Asks for connections to be woken ([`Wake::All`] once per batch of effects).
    fn wake(&mut self, whom: Wake) {
        if self.pending.woke_all {
            return;
        }
        self.pending.woke_all = whom == Wake::All;
        self.effects.push(Effect::Wake(whom));
    }

    /// Tells the writer results may be ready (once per batch of effects).
    fn ready(&mut self) {
        if !std::mem::replace(&mut self.pending.ready, true) {
            self.effects.push(Effect::Ready);
        }
    }

    /// Reports `event` for the operator's log.
    fn event(&mut self, event: Event) {
        self.effects.push(Effect::Event(event));
    }

    /// Journals what `record` makes, if the job is journaled.
    fn journal(&mut self, record: impl FnOnce() -> Record) {
        if self.journaling {
            self.effects.push(Effect::Journal(record()));
        }
    }
}

#[cfg(test)]
mod tests;
