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

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};

use dipla_protocol::{FailureKind, RawJson, TaskFailure};

use crate::effect::{Effect, Event, Wake};
use crate::fleet::{Credibility, Fleet, IdentityId, WorkerRecord};
#[cfg(test)]
use crate::fleet::{MAX_PER_CORE, MIN_PER_CORE};
use crate::plan::{ADAPTIVE_FLOOR, ADAPTIVE_HALF, Feed, Keep, Replicate, StagePlan};
use crate::queue::TaskQueue;
use crate::record::Record;
use crate::tree::Tree;
use crate::types::{
    Answer, Assignment, AttemptId, Check, Counts, Departure, Finished, Outcome, StageProgress,
    TaskRef, Violation, WorkerId,
};
use crate::votes::{Decision, Vote, Votes};

/// How much faster (per core) an idle worker must be than another to copy its tasks.
pub const SPECULATE_FASTER: f64 = 1.5;

/// How often the attempts are scanned for tasks to copy: this many microseconds per attempt
/// running (a scan costs well under one per attempt).
const COPY_SCAN_MICROS_PER_ATTEMPT: u64 = 4;
/// Candidates a worker looks at for copies, beyond four per copy it wants.
const COPY_LOOKAHEAD: usize = 64;

/// A task running this many times as long as its stage's tasks take is a straggler, which
/// an idle worker may copy.
pub const STRAGGLER: f64 = 2.0;
/// ...but only once it has run this long (a task of a millisecond is not worth copying).
const MIN_STRAGGLER_MICROS: f64 = 50_000.0;

/// Time added to every deadline for the network and queueing, in microseconds.
pub const DEADLINE_GRACE: u64 = 2_000_000;

/// How many times a task may be lost with its worker before it is failed (it may be what
/// kills workers), unless [`Coordinator::set_max_lost`] says otherwise.
pub const MAX_LOST: u32 = 3;

/// Who produced a final result and how it was checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Proof {
    by: Option<IdentityId>,
    check: Check,
}

impl Proof {
    const NONE: Self = Self {
        by: None,
        check: Check::Unchecked,
    };
}

#[derive(Debug, Default)]
struct History {
    /// Attempts that ended in a failure or a rejected output.
    tries: u32,
    /// The failures reported, in order.
    failures: Vec<Failed>,
    /// Identities lost while running it, and their addresses where known.
    lost_by: Vec<IdentityId>,
    lost_from: Vec<String>,
    /// Identities whose attempt failed or whose output was rejected: a retry goes to another
    /// identity (the server's own may try again).
    failed_on: Vec<IdentityId>,
    /// Workers whose output the verifier rejected: if another worker's output passes, they
    /// lied.
    rejected_on: Vec<WorkerId>,
}

/// A failure a worker reported.
#[derive(Debug)]
struct Failed {
    identity: IdentityId,
    failure: TaskFailure,
    fuel: u64,
    evidence: Evidence,
}

/// What a reported failure says of its task.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Evidence {
    /// Every honest worker fails the same way, message and fuel included.
    Exact,
    /// Honest workers fail the same way in kind only (a timeout, a stack overflow, a worker
    /// error).
    Kind,
    /// Nothing: the worker's own caps were below the task's limits.
    None,
}

impl Evidence {
    fn of(failure: &TaskFailure, capped: bool) -> Self {
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

impl Failed {
    /// Whether this failure, reported by one of the server's own workers, is final at once:
    /// a deterministic one, or a stack overflow (which depends only on the machine and the
    /// sandbox's build, and the server's own workers share both). Timeouts and worker errors
    /// depend on the moment, and a failure under capped limits says nothing of the task.
    fn final_on_own(&self) -> bool {
        match self.evidence {
            Evidence::Exact => true,
            Evidence::Kind => self.failure.kind == FailureKind::StackOverflow,
            Evidence::None => false,
        }
    }

    /// Whether this failure confirms `other`.
    fn confirms(&self, other: &Self) -> bool {
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

impl History {
    /// How many attempts count towards the task's `max_attempts`: one per identity, but
    /// every attempt of the server's own.
    fn counted(&self, fleet: &Fleet) -> u32 {
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

/// An attempt a faster or idle worker may copy: its worker's speed, whether it straggles.
#[derive(Debug, Clone, Copy)]
struct Copyable {
    speed: f64,
    straggling: bool,
    attempt: AttemptId,
    task: TaskRef,
}

#[derive(Debug)]
struct Attempt {
    task: TaskRef,
    worker: WorkerId,
    /// When it was handed out ([`Coordinator::set_clock`]).
    started: u64,
    /// When it is overdue: the task is then given to another worker as well.
    deadline: u64,
    /// Whether it is overdue and was reissued.
    expired: bool,
}

/// A final result, kept while someone still reads it.
#[derive(Debug)]
struct Entry {
    outcome: Outcome,
    attempts: u32,
    /// Readers not done with it: stages reading it, and the writer.
    readers: u32,
    /// Who produced it and how it was checked.
    proof: Proof,
}

/// Everything the coordinator knows of one stage.
#[derive(Debug)]
struct StageState {
    plan: StagePlan,
    /// The next never-dispatched index of a [`Feed::Inputs`] stage.
    fresh: u64,
    /// The stages reading its outputs.
    dependents: Vec<usize>,
    /// Final results still kept, by index.
    results: BTreeMap<u64, Entry>,
    /// Indexes in completion order, while a promise holds the stage.
    log: Vec<u64>,
    /// The writer has taken every result below this index.
    cursor: u64,
    /// How many results the writer has taken.
    taken: u64,
    /// How many results are final.
    done: u64,
    /// Outputs that met the goal.
    goals: u64,
    /// Why the stage stopped early, if it did.
    stopped: Option<String>,
    /// A reduce stage's tree, once its shape is known.
    tree: Option<Tree>,
    /// Inputs an explore stage discovered, after its initial ones.
    discovered: Vec<Box<RawJson>>,
    /// Every input an explore stage has had, as JSON text.
    seen: HashSet<String>,
    /// Inputs an explore stage dropped at its `max_tasks`.
    dropped: u64,
    /// Moving average of how long its successful tasks took, in microseconds.
    task_micros: Option<f64>,
    /// Its results by how they ended and were checked.
    progress: StageProgress,
    /// For a replicated stage: whether its results have been released to the stages
    /// reading them and the writer (once it is complete, so that a worker caught lying in
    /// it has its unchecked results re-run first).
    released: bool,
}

impl StageState {
    fn new(plan: StagePlan) -> Self {
        Self {
            plan,
            fresh: 0,
            dependents: Vec::new(),
            results: BTreeMap::new(),
            log: Vec::new(),
            cursor: 0,
            taken: 0,
            done: 0,
            goals: 0,
            stopped: None,
            tree: None,
            discovered: Vec::new(),
            seen: HashSet::new(),
            dropped: 0,
            task_micros: None,
            progress: StageProgress::default(),
            released: false,
        }
    }

    /// Whether its results wait for the stage to complete before anyone reads them.
    fn held(&self) -> bool {
        self.plan.replicate != Replicate::Off && !self.released
    }
}

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
    /// When to look for overdue attempts next.
    /// Attempts an idle worker might copy, slowest worker first, then oldest, as of the last
    /// scan (see [`Coordinator::copies_for`]).
    copyable: VecDeque<Copyable>,
    /// When to scan the attempts for copies again.
    next_copy_scan: u64,
    /// Attempts cancelled by a stop: their late results are ignored.
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
        coordinator
    }

    /// Adds a stage while the job runs and returns its number. The stages it reads must exist
    /// and still keep their results (they are held by a promise, [`Keep::All`]): what they
    /// already finished feeds it at once.
    ///
    /// # Panics
    /// When the plan reads a stage that does not exist (a bug in the caller).
    pub fn add_stage(&mut self, plan: StagePlan) -> usize {
        let stage = self.stages.len();
        let sources = match &plan.feed {
            Feed::Inputs => Vec::new(),
            Feed::Items(sources) => sources.clone(),
            Feed::Reduce { stage, .. } => vec![*stage],
        };
        assert!(
            sources.iter().all(|&source| source < stage),
            "a new stage reads existing stages"
        );
        self.stages.push(StageState::new(plan));
        self.wire(stage);
        self.wake(Wake::All);
        // What the stages it reads already have: count the new reader, then feed it.
        for &source in &sources {
            for entry in self.stages[source].results.values_mut() {
                entry.readers += 1;
            }
        }
        match self.stages[stage].plan.feed.clone() {
            Feed::Items(sources) => {
                let indexes: Vec<u64> = self.stages[sources[0]].results.keys().copied().collect();
                for index in indexes {
                    self.feed_item(stage, &sources, index);
                }
            }
            Feed::Reduce { stage: source, .. } if self.stages[stage].tree.is_some() => {
                let indexes: Vec<u64> = self.stages[source].results.keys().copied().collect();
                for index in indexes {
                    let outcome = self.stages[source].results[&index].outcome.clone();
                    self.release(source, index);
                    self.tree_value(stage, 0, index, outcome, 0, Proof::NONE);
                }
            }
            Feed::Reduce { .. } | Feed::Inputs => {}
        }
        self.settle();
        stage
    }

    /// Registers `stage` with the stages it reads, and shapes its tree if it reduces a dense
    /// stage.
    fn wire(&mut self, stage: usize) {
        match self.stages[stage].plan.feed.clone() {
            Feed::Inputs => {}
            Feed::Items(sources) => {
                for source in sources {
                    if !self.stages[source].dependents.contains(&stage) {
                        self.stages[source].dependents.push(stage);
                    }
                }
            }
            Feed::Reduce {
                stage: source,
                fan_in,
            } => {
                self.stages[source].dependents.push(stage);
                if self.is_dense(source) {
                    let items = self.stages[stage].plan.tasks;
                    self.stages[stage].tree = Some(Tree::new(items, fan_in.max(2)));
                }
            }
        }
    }

    /// Whether every index below a stage's task count will have a result.
    pub fn is_dense(&self, stage: usize) -> bool {
        let plan = &self.stages[stage].plan;
        match &plan.feed {
            Feed::Inputs => plan.explore.is_none() && !plan.stoppable,
            Feed::Items(sources) => {
                !plan.stoppable && sources.iter().all(|&source| self.is_dense(source))
            }
            Feed::Reduce { .. } => true,
        }
    }

    /// How many stages there are.
    pub fn stage_count(&self) -> usize {
        self.stages.len()
    }

    /// Whether every result of `stage` is final.
    pub fn is_stage_complete(&self, stage: usize) -> bool {
        let state = &self.stages[stage];
        if state.stopped.is_some() {
            return true;
        }
        match &state.plan.feed {
            Feed::Inputs => state.done == state.plan.tasks,
            Feed::Reduce { .. } => state.done == 1,
            Feed::Items(_) if self.is_dense(stage) => state.done == state.plan.tasks,
            Feed::Items(sources) => {
                sources.iter().all(|&source| self.is_stage_complete(source))
                    && state.done == self.stages[sources[0]].done
            }
        }
    }

    /// How many result lines stage `stage` has (one for a reduce stage; for a stage that
    /// stopped early or read one, those of the tasks that finished; for an incomplete stage
    /// that is not dense, at most how many).
    pub fn lines(&self, stage: usize) -> u64 {
        let state = &self.stages[stage];
        if state.stopped.is_some() || self.is_stage_complete(stage) {
            return state.done;
        }
        match state.plan.feed {
            Feed::Reduce { .. } => 1,
            _ => state.plan.tasks,
        }
    }

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

    /// Whether `worker` is connected and its identity trusted (it may get work).
    pub fn is_trusted(&self, worker: WorkerId) -> bool {
        self.fleet.trusted(worker)
    }

    /// Journals a worker's receipt.
    pub fn journal_receipt(&mut self, receipt: Record) {
        self.journal(|| receipt);
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

    /// Journals identity `identity`'s record (the server also gives it to the trust records
    /// its jobs share).
    fn journal_identity(&mut self, identity: IdentityId) {
        if !self.journaling {
            return;
        }
        let key = self.fleet.key(identity).to_owned();
        let credibility = self.fleet.credibility(identity);
        self.journal(|| Record::Identity { key, credibility });
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

    /// The time now, in microseconds since the job started (the coordinator reads no clock:
    /// the transport tells it before each event). It dates attempts, to spot stragglers.
    pub fn set_clock(&mut self, now_micros: u64) {
        self.now = self.now.max(now_micros);
    }

    /// The time is now `now_micros` (since the job started) and nothing else happened: gives
    /// the tasks of attempts past their deadline to the queue again, and wakes idle workers
    /// when an attempt has run long enough to be worth copying. Call it at
    /// [`Coordinator::poll_timeout`].
    pub fn tick(&mut self, now_micros: u64) {
        self.set_clock(now_micros);
        self.reissue_overdue();
        if self.now >= self.next_straggler {
            // Idle workers look again (a scan for copies then finds the new stragglers and
            // says when the next one is due).
            self.next_straggler = u64::MAX;
            self.wake(Wake::All);
        }
    }

    /// When the coordinator next needs [`Coordinator::tick`] if no other input comes, in
    /// microseconds since the job started: the soonest deadline of a running attempt, or
    /// the moment a running attempt may become a straggler an idle worker should copy.
    /// `None`: nothing will happen until some other input.
    pub fn poll_timeout(&self) -> Option<u64> {
        let deadline = self
            .deadlines
            .first()
            .map(|&(deadline, _)| deadline.saturating_add(1));
        let straggler = (self.speculate && self.next_straggler != u64::MAX)
            .then(|| self.next_straggler.max(self.next_copy_scan));
        match (deadline, straggler) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
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

    /// Makes the coordinator emit [`Effect::Journal`] records (a job with a journal, or a
    /// driver's mirror of one) or stop emitting them.
    pub fn set_journaling(&mut self, journaling: bool) {
        self.journaling = journaling;
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

    /// Estimated microseconds until every known task is done, at the workers' measured pace.
    pub fn eta_micros(&self) -> Option<u64> {
        let left: u64 = (0..self.stages.len())
            .filter(|&stage| !self.is_stage_complete(stage))
            .map(|stage| self.lines(stage).saturating_sub(self.stages[stage].done))
            .sum();
        if left == 0 {
            return Some(0);
        }
        self.fleet.eta_micros(left)
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
            if self.drop_live(task) > 0 && !self.votes.contains_key(&task) {
                // A copy runs elsewhere: it carries on.
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
                if departure != Departure::Released {
                    self.counts.requeued += 1;
                }
                self.retries.push_front(task);
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

    /// `identity` let work down (`why` names how): a strike, and once its strikes outweigh
    /// its accepted answers it is marked unreliable and gets no more work.
    fn strike(&mut self, identity: IdentityId, why: &str) {
        if self.fleet.strike(identity) && !self.fleet.untrusted_identity(identity) {
            let record = self.fleet.credibility(identity);
            let why = format!(
                "unreliable: {} strikes ({why} or failures no other identity confirmed) against {} accepted answers",
                record.strikes, record.accepted
            );
            self.distrust(identity, why, false);
        }
    }

    /// Picks tasks for `worker` up to its in-flight window: retries first, then tasks whose
    /// inputs just became available, then fresh tasks in stage order. When there is less
    /// work than room for it, each worker gets its share in proportion to its speed, so the
    /// faster ones get more; when there is none, an idle worker much faster than another
    /// takes a copy of a task that one is running.
    pub fn assign(&mut self, worker: WorkerId) -> Vec<Assignment> {
        if !self.fleet.trusted(worker) || self.holding() {
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
                if unassigned > room as u64 {
                    // This worker takes its share; the rest waits for the others.
                    self.wake(Wake::All);
                }
            }
        }
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
        for task in passed_over.into_iter().rev() {
            self.retries.push_front(task);
        }
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

    /// How long an attempt of a `stage` task on `worker` may take before it is overdue: the
    /// stage's deadline if it sets one, else the task's wall-clock limit, or four times what
    /// its fuel budget takes at the worker's measured speed if that is sooner, plus
    /// [`DEADLINE_GRACE`] for the network.
    fn allowance(&self, stage: usize, worker: WorkerId) -> u64 {
        let plan = &self.stages[stage].plan;
        let base = plan.deadline.unwrap_or_else(|| {
            let by_fuel = self
                .fleet
                .record(worker)
                .and_then(|record| record.measured)
                .map_or(u64::MAX, |speed| (plan.fuel as f64 / speed * 4.0) as u64);
            plan.timeout.min(by_fuel)
        });
        base.saturating_add(DEADLINE_GRACE)
    }

    /// Gives every task whose running attempts are all overdue to the queue again (a replica
    /// too: another one is asked for); the late attempts may still answer, and the first
    /// answer wins. A task two stallers hold is reissued like a task one holds.
    fn reissue_overdue(&mut self) {
        let now = self.now;
        let mut overdue: Vec<(AttemptId, TaskRef)> = Vec::new();
        while let Some(&(deadline, id)) = self.deadlines.first() {
            if deadline >= now {
                break;
            }
            self.deadlines.pop_first();
            if let Some(attempt) = self.attempts.get_mut(&id) {
                attempt.expired = true;
                overdue.push((id, attempt.task));
            }
        }
        if overdue.is_empty() {
            return;
        }
        overdue.sort_unstable();
        // Tasks some attempt still runs in time for, and tasks already waiting.
        let timely: HashSet<TaskRef> = self
            .attempts
            .values()
            .filter(|attempt| !attempt.expired)
            .map(|attempt| attempt.task)
            .collect();
        let mut queued: HashSet<TaskRef> = self.retries.iter().copied().collect();
        for (attempt, task) in overdue {
            if timely.contains(&task) || !queued.insert(task) {
                continue;
            }
            self.event(Event::Overdue { attempt, task });
            self.counts.expired += 1;
            self.reissued.insert(task);
            self.retries.push_front(task);
            self.wake(Wake::All);
        }
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

    /// Up to `count` tasks for `worker` to run a copy of (MapReduce's backup tasks: the first
    /// answer wins, the other attempt is cancelled): tasks running alone either on a worker
    /// [`SPECULATE_FASTER`] times slower than `worker`, or for [`STRAGGLER`] times as long as
    /// the stage's tasks take, on a worker no faster than `worker`. Slowest worker first, then
    /// oldest attempt.
    ///
    /// Looking at every attempt costs time in proportion to how many run (hundreds of
    /// thousands with thousands of workers), and every idle worker asks, so the candidates are
    /// gathered by a scan at most once per [`COPY_SCAN_MICROS_PER_ATTEMPT`] per attempt (200
    /// ms for 50,000) and taken from that list until the next.
    fn copies_for(&mut self, worker: WorkerId, count: usize) -> Vec<TaskRef> {
        if self.now >= self.next_copy_scan {
            self.scan_for_copies();
        }
        let mine = self.fleet.speed(worker);
        let identity = self.fleet.identity(worker);
        // Candidates no longer running alone (copied, finished) are gone for good.
        while let Some(front) = self.copyable.front() {
            if self.copyable_now(front) {
                break;
            }
            self.copyable.pop_front();
        }
        let mut picked = Vec::new();
        // Slowest worker first: a worker that cannot copy the first few cannot copy the rest
        // (bar its own attempts and tasks that failed on it), so looking further is waste.
        for candidate in self.copyable.iter().take(COPY_LOOKAHEAD + 4 * count) {
            if picked.len() == count {
                break;
            }
            let Some(attempt) = self.attempts.get(&candidate.attempt) else {
                continue;
            };
            let slower = candidate.speed * SPECULATE_FASTER <= mine;
            let late = candidate.speed <= mine && candidate.straggling;
            if attempt.worker != worker
                && (slower || late)
                && self.copyable_now(candidate)
                && self.history.get(&candidate.task).is_none_or(|history| {
                    identity.is_none_or(|identity| !history.failed_on.contains(&identity))
                })
            {
                picked.push(candidate.task);
            }
        }
        picked
    }

    /// Whether a candidate still runs alone, in a stage still running.
    fn copyable_now(&self, candidate: &Copyable) -> bool {
        self.attempts.contains_key(&candidate.attempt)
            && self.live.get(&candidate.task) == Some(&1)
            && self.stages[candidate.task.stage].stopped.is_none()
    }

    /// Gathers the attempts some worker might copy: those on a worker slower than the fastest
    /// by [`SPECULATE_FASTER`], and stragglers.
    fn scan_for_copies(&mut self) {
        self.next_copy_scan = self.now + COPY_SCAN_MICROS_PER_ATTEMPT * self.attempts.len() as u64;
        let speeds: HashMap<WorkerId, f64> = self
            .fleet
            .ids()
            .map(|id| (id, self.fleet.speed(id)))
            .collect();
        let fastest = speeds.values().copied().fold(0.0, f64::max);
        let straggling = |attempt: &Attempt| {
            self.stages[attempt.task.stage]
                .task_micros
                .is_some_and(|typical| {
                    let running = self.now.saturating_sub(attempt.started) as f64;
                    running > STRAGGLER * typical && running > MIN_STRAGGLER_MICROS
                })
        };
        let mut candidates: Vec<Copyable> = self
            .attempts
            .iter()
            .filter_map(|(&id, attempt)| {
                let speed = *speeds.get(&attempt.worker)?;
                let candidate = Copyable {
                    speed,
                    straggling: straggling(attempt),
                    attempt: id,
                    task: attempt.task,
                };
                ((speed * SPECULATE_FASTER <= fastest || candidate.straggling)
                    && self.copyable_now(&candidate))
                .then_some(candidate)
            })
            .collect();
        candidates.sort_by(|a, b| a.speed.total_cmp(&b.speed).then(a.attempt.cmp(&b.attempt)));
        self.copyable = candidates.into();
        // When the next attempt running alone becomes a straggler, for `poll_timeout`.
        self.next_straggler = self
            .attempts
            .values()
            .filter(|attempt| self.live.get(&attempt.task) == Some(&1))
            .filter_map(|attempt| {
                let typical = self.stages[attempt.task.stage].task_micros?;
                let after = (STRAGGLER * typical).max(MIN_STRAGGLER_MICROS) as u64;
                let at = attempt.started.saturating_add(after).saturating_add(1);
                (at > self.now).then_some(at)
            })
            .min()
            .unwrap_or(u64::MAX);
    }

    /// One attempt of `task` ended: how many others are still running.
    fn drop_live(&mut self, task: TaskRef) -> u32 {
        let Some(live) = self.live.get_mut(&task) else {
            return 0;
        };
        *live = live.saturating_sub(1);
        let left = *live;
        if left == 0 {
            self.live.remove(&task);
        }
        left
    }

    /// Cancels every attempt of `task` still running (another attempt answered).
    fn cancel_copies(&mut self, task: TaskRef) {
        let mut copies: Vec<AttemptId> = self
            .attempts
            .iter()
            .filter(|(_, attempt)| attempt.task == task)
            .map(|(&id, _)| id)
            .collect();
        copies.sort_unstable();
        for id in copies {
            self.cancel_attempt(id);
        }
    }

    /// Cancels attempt `id`: its worker is told to drop it, its late answer is ignored, and
    /// it no longer counts as running. Returns its task and how many other attempts of the
    /// task are still running.
    fn cancel_attempt(&mut self, id: AttemptId) -> Option<(TaskRef, u32)> {
        let Attempt { task, worker, .. } = self.forget_attempt(id)?;
        let others = self.drop_live(task);
        self.cancelled.insert(id);
        if self.fleet.get(worker).is_some() {
            self.effects.push(Effect::Cancel {
                worker,
                attempts: vec![id],
            });
            self.wake(Wake::Worker(worker));
        }
        self.fleet.cancelled(worker, self.now);
        Some((task, others))
    }

    /// Removes attempt `id` from those running.
    fn forget_attempt(&mut self, id: AttemptId) -> Option<Attempt> {
        let attempt = self.attempts.remove(&id)?;
        if !attempt.expired {
            self.deadlines.remove(&(attempt.deadline, id));
        }
        Some(attempt)
    }

    /// A task may go to `worker` unless it failed there and some other connected worker has
    /// not tried it yet.
    fn eligible(&self, task: TaskRef, worker: WorkerId) -> bool {
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

    /// A worker answered attempt `id` after `micros` of work.
    ///
    /// # Errors
    /// When the worker was not running that attempt.
    pub fn complete(
        &mut self,
        worker: WorkerId,
        id: AttemptId,
        micros: u64,
        outcome: Outcome,
    ) -> Result<(), Violation> {
        self.complete_with(worker, id, 0, micros, outcome, false)
    }

    /// Like [`Coordinator::complete`], with the `fuel` the task burnt (its worker's speed is
    /// measured by it), for a result that may meet its stage's goal (`stop`; ignored unless
    /// the stage is stoppable).
    ///
    /// # Errors
    /// When the worker was not running that attempt.
    pub fn complete_with(
        &mut self,
        worker: WorkerId,
        id: AttemptId,
        fuel: u64,
        micros: u64,
        outcome: Outcome,
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
            (Ok(output), Some(max)) => self.explored(task.stage, &output, max),
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
                }
                let state = &mut self.stages[task.stage];
                if answer.stop && state.plan.stoppable && state.stopped.is_none() {
                    self.journal(|| Record::Goal(task));
                    self.goal(task);
                }
            }
            Err(failure) => self.failed(task, worker, failure, answer.fuel, answer.capped, copies),
        }
        self.settle();
        Ok(())
    }

    /// `worker` reported that `task` failed. A failure is a result, checked like one: it is
    /// final when enough distinct identities confirm it ([`Coordinator::failure_quorum`]:
    /// the same failure, message and fuel included, or the same kind for failures that
    /// depend on the machine), when `max_attempts` distinct identities have failed it
    /// whatever the failures, or at once from the server's own workers. Until then the task
    /// runs again on another identity.
    fn failed(
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
        let quorum = self.failure_quorum(task.stage);
        let max = self.stages[task.stage].plan.max_attempts;
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
        let tried = history.counted(&self.fleet);
        if copies > 0 && !self.votes.contains_key(&task) {
            // Another attempt is still running: its answer decides.
            return;
        }
        if own && confirmed_by.len() == 1 {
            self.votes.remove(&task);
            let proof = Proof {
                by: Some(identity),
                check: Check::Unchecked,
            };
            self.finish(task, Err(failure), proof);
        } else if confirmed_by.len() >= quorum {
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
        } else {
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
        } else if self.live.get(&task).copied().unwrap_or(0) == 0 {
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

    /// Whether to check the first answer to a task of `stage`, given by `worker`, with
    /// replicas.
    fn replicate_now(&mut self, stage: usize, worker: WorkerId) -> bool {
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
    fn decide(&mut self, task: TaskRef) {
        let quorum = self.stages[task.stage].plan.quorum;
        let max = (2 * quorum + 1) as usize;
        let decision = self.votes[&task].decide(quorum, max);
        match decision {
            Decision::Agreed {
                output,
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
                let name = self.stages[task.stage].plan.name.clone();
                for worker in disagree {
                    let why = format!(
                        "its result for task {} of stage {name:?} disagreed with {} other workers",
                        task.index,
                        agree.len()
                    );
                    self.untrust(worker, why);
                }
                let check = Check::Replicated(agree.len() as u32);
                self.accept(task, output, None, check);
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

    /// Attempts of `task` running or waiting in the queues.
    fn outstanding(&self, task: TaskRef) -> usize {
        let live = self.live.get(&task).copied().unwrap_or(0) as usize;
        live + self.retries.iter().filter(|&&t| t == task).count()
    }

    /// `task`'s output is final: record it, and untrust whoever a verifier caught lying
    /// about this task (this output shows a right answer exists).
    fn accept(&mut self, task: TaskRef, output: Box<RawJson>, by: Option<WorkerId>, check: Check) {
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

    /// `worker` was caught returning a wrong result: it gets no more work, its running tasks
    /// go to others, and every result it gave that was accepted unchecked in a stage not yet
    /// released runs again on other workers.
    fn untrust(&mut self, worker: WorkerId, why: String) {
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

    /// An output of `task` met its stage's goal: stop the stage once enough have.
    fn goal(&mut self, task: TaskRef) {
        let state = &mut self.stages[task.stage];
        state.goals += 1;
        if state.goals >= state.plan.stop_after && state.stopped.is_none() {
            self.stop_stage(task);
        }
    }

    /// `task`'s accepted result is withdrawn (its worker was caught lying): it runs again.
    fn revoke(&mut self, task: TaskRef) {
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

    /// Stage `task.stage` met its goal with `task`: hand out none of its tasks any more and
    /// cancel those running. Tasks that never ran get no result.
    fn stop_stage(&mut self, task: TaskRef) {
        let stage = task.stage;
        let state = &mut self.stages[stage];
        state.stopped = Some(format!(
            "stage {:?} met its goal ({} output(s), the last from task {})",
            state.plan.name, state.goals, task.index
        ));
        let mut dropped: Vec<TaskRef> = Vec::new();
        let mut never_run = 0;
        if state.plan.feed == Feed::Inputs {
            never_run += state.plan.tasks - state.fresh;
            state.fresh = state.plan.tasks;
        }
        for queue in [&mut self.retries, &mut self.ready] {
            queue.retain(|t| {
                let keep = t.stage != stage;
                if !keep {
                    dropped.push(*t);
                }
                keep
            });
        }
        let mut running: Vec<AttemptId> = self
            .attempts
            .iter()
            .filter(|(_, attempt)| attempt.task.stage == stage)
            .map(|(&id, _)| id)
            .collect();
        running.sort_unstable();
        for id in running {
            if let Some((task, _)) = self.cancel_attempt(id) {
                dropped.push(task);
            }
        }
        dropped.sort_unstable();
        dropped.dedup();
        for task in dropped {
            self.history.remove(&task);
            self.release_inputs(task);
            never_run += 1;
        }
        self.counts.stopped += never_run;
    }

    /// Splits an explore task's output `{"output": O, "next": [T, ...]}`, queues the new
    /// inputs not seen before (up to `max` tasks in the stage) and returns `O`.
    fn explored(&mut self, stage: usize, output: &RawJson, max: u64) -> Outcome {
        #[derive(serde::Deserialize)]
        struct Explored {
            output: Box<RawJson>,
            next: Vec<Box<RawJson>>,
        }
        let Explored { output, next } =
            serde_json::from_str(output.get()).map_err(|e| TaskFailure {
                kind: FailureKind::BadOutput,
                message: format!(
                    "an explore task must return {{\"output\": .., \"next\": [..]}}: {e}"
                ),
            })?;
        let state = &mut self.stages[stage];
        let mut grew = false;
        if state.stopped.is_none() {
            for input in next {
                if !state.seen.insert(input.get().to_owned()) {
                    continue;
                }
                if state.plan.tasks >= max {
                    state.dropped += 1;
                    continue;
                }
                if self.journaling {
                    self.effects.push(Effect::Journal(Record::Discovered {
                        stage,
                        input: input.clone(),
                    }));
                }
                state.discovered.push(input);
                state.plan.tasks += 1;
                grew = true;
            }
        }
        if grew {
            // New inputs to run.
            self.wake(Wake::All);
        }
        Ok(output)
    }

    /// Records the inputs an explore stage starts with, so they are not run again.
    pub fn seed(&mut self, stage: usize, inputs: impl IntoIterator<Item = String>) {
        self.stages[stage].seen.extend(inputs);
    }

    /// Input `n` (counting from 0) that explore stage `stage` discovered.
    pub fn discovered(&self, stage: usize, n: u64) -> Option<&RawJson> {
        self.stages[stage]
            .discovered
            .get(n as usize)
            .map(|input| &**input)
    }

    /// How many new inputs explore stage `stage` dropped at its `max_tasks`.
    pub fn dropped(&self, stage: usize) -> u64 {
        self.stages[stage].dropped
    }

    /// How many result lines the job has now (explore stages grow).
    pub fn total_lines(&self) -> u64 {
        (0..self.stages.len()).map(|stage| self.lines(stage)).sum()
    }

    /// Why `stage` stopped early, if it did.
    pub fn stopped(&self, stage: usize) -> Option<&str> {
        self.stages[stage].stopped.as_deref()
    }

    /// The task of attempt `id`, if `worker` is running it.
    pub fn attempt_task(&self, worker: WorkerId, id: AttemptId) -> Option<TaskRef> {
        self.attempts
            .get(&id)
            .filter(|attempt| attempt.worker == worker)
            .map(|attempt| attempt.task)
    }

    /// A task has its final outcome: record it and make ready what was waiting for it.
    fn finish(&mut self, task: TaskRef, outcome: Outcome, proof: Proof) {
        if self.journaling {
            let by = proof.by.map(|identity| self.fleet.key(identity).to_owned());
            self.journal(|| Record::Result {
                task,
                outcome: outcome.clone(),
                check: proof.check,
                by,
            });
        }
        self.ready();
        if self.reissued.remove(&task) {
            self.retries.retain(|&t| t != task);
            self.cancel_copies(task);
        }
        let history = self.history.remove(&task).unwrap_or_default();
        let attempts = history.tries + u32::from(outcome.is_ok());
        let node = self.stages[task.stage]
            .tree
            .as_ref()
            .map(|tree| tree.node(task.index));
        match node {
            Some((level, position)) => {
                self.tree_value(task.stage, level, position, outcome, attempts, proof);
            }
            None => self.result(task, outcome, attempts, proof),
        }
    }

    /// A stage's result `task` is final: count it, keep it for those who read it, and feed
    /// the stages reading it.
    fn result(&mut self, task: TaskRef, outcome: Outcome, attempts: u32, proof: Proof) {
        match outcome {
            Ok(_) => self.counts.succeeded += 1,
            Err(_) => self.counts.failed += 1,
        }
        let state = &mut self.stages[task.stage];
        state.done += 1;
        match (&outcome, proof.check) {
            (Err(_), _) => state.progress.failed += 1,
            (Ok(_), Check::Unchecked) => state.progress.unchecked += 1,
            (Ok(_), Check::Verified) => state.progress.verified += 1,
            (Ok(_), Check::Replicated(_)) => state.progress.replicated += 1,
        }
        let keep = state.plan.keep;
        let held = state.held();
        if keep == Keep::All && !held {
            // A held stage's results are logged when it is released: until then they may
            // still be revoked, and nobody may see them.
            state.log.push(task.index);
        }
        let dependents = state.dependents.clone();
        let mut readers = u32::from(keep == Keep::Ordered);
        for &dependent in &dependents {
            let shaped = self.stages[dependent].tree.is_some();
            if matches!(self.stages[dependent].plan.feed, Feed::Reduce { .. }) && shaped && !held {
                // A dense stage's reduce: item `i` is at position `i`.
                self.tree_value(dependent, 0, task.index, outcome.clone(), 0, Proof::NONE);
            } else {
                readers += 1;
            }
        }
        if readers > 0 || keep == Keep::All || held {
            let entry = Entry {
                outcome,
                attempts,
                readers,
                proof,
            };
            self.stages[task.stage].results.insert(task.index, entry);
        }
        if held {
            // Released, with its inputs, when the stage completes.
            return;
        }
        for dependent in dependents {
            if let Feed::Items(sources) = self.stages[dependent].plan.feed.clone() {
                self.feed_item(dependent, &sources, task.index);
            }
        }
        if keep != Keep::Ordered {
            self.release_inputs(task);
        }
    }

    /// A replicated stage is complete: its results go to the stages reading it and to the
    /// writer, as they would have one by one.
    fn release_held(&mut self, stage: usize) {
        self.stages[stage].released = true;
        let keep = self.stages[stage].plan.keep;
        let dependents = self.stages[stage].dependents.clone();
        let indexes: Vec<u64> = self.stages[stage].results.keys().copied().collect();
        if keep == Keep::All {
            self.stages[stage].log.extend(&indexes);
        }
        for index in indexes {
            let task = TaskRef { stage, index };
            for &dependent in &dependents {
                let shaped = self.stages[dependent].tree.is_some();
                if matches!(self.stages[dependent].plan.feed, Feed::Reduce { .. }) && shaped {
                    let outcome = self.stages[stage].results[&index].outcome.clone();
                    self.release(stage, index);
                    self.tree_value(dependent, 0, index, outcome, 0, Proof::NONE);
                }
            }
            for &dependent in &dependents {
                if let Feed::Items(sources) = self.stages[dependent].plan.feed.clone() {
                    self.feed_item(dependent, &sources, index);
                }
            }
            if keep != Keep::Ordered {
                self.release_inputs(task);
            }
            // Kept only for readers: drop it if nobody needs it.
            let state = &mut self.stages[stage];
            if let Some(entry) = state.results.get(&index)
                && entry.readers == 0
                && state.plan.keep != Keep::All
            {
                state.results.remove(&index);
            }
        }
    }

    /// Task `task` no longer needs its inputs: the stages it read may drop them.
    fn release_inputs(&mut self, task: TaskRef) {
        if let Feed::Items(sources) = &self.stages[task.stage].plan.feed {
            for source in sources.clone() {
                self.release(source, task.index);
            }
        }
    }

    /// One reader is done with result `index` of `stage`: drop it once nobody needs it.
    fn release(&mut self, stage: usize, index: u64) {
        let state = &mut self.stages[stage];
        let Some(entry) = state.results.get_mut(&index) else {
            return;
        };
        entry.readers = entry.readers.saturating_sub(1);
        if entry.readers == 0 && state.plan.keep != Keep::All {
            state.results.remove(&index);
        }
    }

    /// Item `index` of one of `stage`'s sources exists: run task `index` once all do.
    fn feed_item(&mut self, stage: usize, sources: &[usize], index: u64) {
        let mut failures = Vec::new();
        for &source in sources {
            match self.stages[source].results.get(&index).map(|e| &e.outcome) {
                None => return,
                Some(Ok(_)) => {}
                Some(Err(failure)) => failures.push((source, failure.clone())),
            }
        }
        let task = TaskRef { stage, index };
        if self.stages[stage].stopped.is_some() {
            self.counts.stopped += 1;
            self.release_inputs(task);
            return;
        }
        self.stages[stage].plan.tasks = self.stages[stage].plan.tasks.max(index + 1);
        match failures.into_iter().next() {
            None => self.ready.push_back(task),
            Some((source, failure)) => {
                let failure = upstream(&self.stages[source].plan.name, index, &failure);
                self.result(task, Err(failure), 0, Proof::NONE);
            }
        }
    }

    /// Shapes the trees of reduce stages whose (not dense) source has completed, and feeds
    /// them what it produced.
    fn settle(&mut self) {
        loop {
            let complete_held = (0..self.stages.len())
                .find(|&stage| self.stages[stage].held() && self.is_stage_complete(stage));
            if let Some(stage) = complete_held {
                self.release_held(stage);
                continue;
            }
            let waiting = (0..self.stages.len()).find(|&stage| {
                let state = &self.stages[stage];
                matches!(state.plan.feed, Feed::Reduce { stage: source, .. }
                    if state.tree.is_none() && state.done == 0 && self.is_stage_complete(source))
            });
            let Some(stage) = waiting else {
                return;
            };
            let Feed::Reduce {
                stage: source,
                fan_in,
            } = self.stages[stage].plan.feed
            else {
                unreachable!("found above")
            };
            let indexes: Vec<u64> = self.stages[source].results.keys().copied().collect();
            if indexes.is_empty() {
                let failure = TaskFailure {
                    kind: FailureKind::Upstream,
                    message: format!(
                        "stage {:?} has no outputs to fold",
                        self.stages[source].plan.name
                    ),
                };
                self.result(TaskRef { stage, index: 0 }, Err(failure), 0, Proof::NONE);
                continue;
            }
            self.stages[stage].plan.tasks = indexes.len() as u64;
            self.stages[stage].tree = Some(Tree::sparse(indexes.clone(), fan_in.max(2)));
            for (position, index) in indexes.into_iter().enumerate() {
                let outcome = self.stages[source].results[&index].outcome.clone();
                self.release(source, index);
                self.tree_value(stage, 0, position as u64, outcome, 0, Proof::NONE);
            }
        }
    }

    /// A value of a reduce tree is known: pass it up, run the group above once complete.
    fn tree_value(
        &mut self,
        stage: usize,
        level: usize,
        position: u64,
        outcome: Outcome,
        attempts: u32,
        proof: Proof,
    ) {
        let source = match self.stages[stage].plan.feed {
            Feed::Reduce { stage: source, .. } => source,
            _ => unreachable!("only reduce stages have trees"),
        };
        let tree = self.stages[stage]
            .tree
            .as_mut()
            .expect("a reduce stage has a tree");
        if level == tree.top() {
            self.result(TaskRef { stage, index: 0 }, outcome, attempts, proof);
            return;
        }
        tree.values.insert((level, position), outcome);
        let parent = position / tree.fan_in;
        let children = tree.children(level + 1, parent);
        let mut values = Vec::new();
        for child in children.clone() {
            match tree.values.get(&(level, child)) {
                None => return,
                Some(value) => values.push((child, value)),
            }
        }
        let failed = values
            .iter()
            .find_map(|(child, value)| value.as_ref().err().map(|f| (*child, f.clone())));
        if let Some((child, failure)) = failed {
            let item = (level == 0).then(|| tree.item_index(child));
            let failure = match item {
                Some(index) => upstream(&self.stages[source].plan.name, index, &failure),
                None => failure,
            };
            self.tree_value(stage, level + 1, parent, Err(failure), 0, Proof::NONE);
        } else if children.end - children.start == 1 {
            let value = values[0].1.clone();
            self.tree_value(stage, level + 1, parent, value, 0, Proof::NONE);
        } else {
            let index = tree.offsets[level + 1] + parent;
            self.ready.push_back(TaskRef { stage, index });
        }
    }

    /// The output of item `index` of `stage`, if it succeeded and is still kept.
    pub fn item(&self, stage: usize, index: u64) -> Option<&RawJson> {
        match self.stages[stage].results.get(&index).map(|e| &e.outcome) {
            Some(Ok(output)) => Some(output),
            _ => None,
        }
    }

    /// The final result `index` of `stage`, if it is kept.
    pub fn result_of(&self, stage: usize, index: u64) -> Option<&Outcome> {
        self.stages[stage].results.get(&index).map(|e| &e.outcome)
    }

    /// The kept results of `stage`, in index order.
    pub fn results(&self, stage: usize) -> impl Iterator<Item = (u64, &Outcome)> {
        self.stages[stage]
            .results
            .iter()
            .map(|(&index, entry)| (index, &entry.outcome))
    }

    /// The indexes of `stage`'s results in the order they became final (for a stage whose
    /// results a promise holds).
    pub fn log(&self, stage: usize) -> &[u64] {
        &self.stages[stage].log
    }

    /// Nobody holds `stage`'s results any more: drop those no stage still reads, and keep
    /// no more.
    pub fn release_stage(&mut self, stage: usize) {
        let state = &mut self.stages[stage];
        state.plan.keep = Keep::Nothing;
        state.log = Vec::new();
        state.results.retain(|_, entry| entry.readers > 0);
    }

    /// The values a reduce task folds, in order.
    ///
    /// # Panics
    /// When `task` is not a ready reduce task (a bug in the caller).
    pub fn group(&self, task: TaskRef) -> Vec<&RawJson> {
        let tree = self.stages[task.stage]
            .tree
            .as_ref()
            .expect("a reduce stage");
        let (level, position) = tree.node(task.index);
        tree.children(level, position)
            .map(|child| match &tree.values[&(level - 1, child)] {
                Ok(value) => &**value,
                Err(_) => unreachable!("a group with a failure is never run"),
            })
            .collect()
    }

    /// Takes the finished results of [`Keep::Ordered`] stages that are next in order: stage
    /// by stage, each stage's in input order, a stage only once every earlier one is
    /// complete. Within a stage that stopped early or read one, indexes without a result are
    /// skipped once the stage is complete.
    pub fn take_ready(&mut self) -> Vec<Finished> {
        let mut ready = Vec::new();
        for stage in 0..self.stages.len() {
            if self.stages[stage].plan.keep != Keep::Ordered {
                continue;
            }
            let gaps = self.is_stage_complete(stage);
            let state = &self.stages[stage];
            if state.held() {
                break;
            }
            let mut next = state.cursor;
            let mut indexes = Vec::new();
            for &index in state.results.range(state.cursor..).map(|(index, _)| index) {
                if index != next && !gaps {
                    break;
                }
                indexes.push(index);
                next = index + 1;
            }
            for index in indexes {
                ready.push(self.take(stage, index));
            }
            let state = &self.stages[stage];
            if !(gaps && state.taken == state.done) {
                break;
            }
        }
        ready
    }

    /// The writer takes result `index` of `stage`.
    fn take(&mut self, stage: usize, index: u64) -> Finished {
        let task = TaskRef { stage, index };
        let items = match &self.stages[stage].plan.feed {
            Feed::Items(sources) => sources
                .iter()
                .map(|&source| self.item(source, index).map(ToOwned::to_owned))
                .collect(),
            _ => Vec::new(),
        };
        let state = &mut self.stages[stage];
        state.cursor = index + 1;
        state.taken += 1;
        let entry = state
            .results
            .get_mut(&index)
            .expect("taken from the results");
        entry.readers -= 1;
        let check = entry.proof.check;
        let (outcome, attempts) = if entry.readers == 0 {
            let entry = state.results.remove(&index).expect("present");
            (entry.outcome, entry.attempts)
        } else {
            (entry.outcome.clone(), entry.attempts)
        };
        self.release_inputs(task);
        Finished {
            task,
            outcome,
            attempts,
            items,
            check,
        }
    }

    /// Whether every result is final and every [`Keep::Ordered`] one has been taken.
    pub fn is_complete(&self) -> bool {
        (0..self.stages.len()).all(|stage| {
            let state = &self.stages[stage];
            self.is_stage_complete(stage)
                && (state.plan.keep != Keep::Ordered || state.taken == state.done)
        })
    }

    /// Stage `stage`'s progress now.
    pub fn progress(&self, stage: usize) -> StageProgress {
        let state = &self.stages[stage];
        let running = self
            .attempts
            .values()
            .filter(|attempt| attempt.task.stage == stage)
            .count() as u64;
        let waiting = self
            .ready
            .iter()
            .chain(self.retries.iter())
            .filter(|task| task.stage == stage)
            .count() as u64;
        let fresh = if state.plan.feed == Feed::Inputs && state.stopped.is_none() {
            state.plan.tasks.saturating_sub(state.fresh)
        } else {
            0
        };
        StageProgress {
            tasks: self.lines(stage),
            done: state.done,
            queued: waiting + fresh,
            running,
            ..state.progress
        }
    }

    /// How many tasks `stage` has now (for a reduce stage, how many items it folds).
    pub fn tasks(&self, stage: usize) -> u64 {
        self.stages[stage].plan.tasks
    }

    /// How many of `stage`'s results are final.
    pub fn done(&self, stage: usize) -> u64 {
        self.stages[stage].done
    }

    /// How many tasks wait in the retry and ready queues.
    pub fn queued(&self) -> usize {
        self.retries.len() + self.ready.len()
    }

    /// How many tasks could run now or are running: what the job has work for.
    pub fn demand(&self) -> usize {
        let fresh: u64 = self
            .stages
            .iter()
            .filter(|state| state.plan.feed == Feed::Inputs && state.stopped.is_none())
            .map(|state| state.plan.tasks.saturating_sub(state.fresh))
            .sum();
        self.queued() + self.running() + usize::try_from(fresh).unwrap_or(usize::MAX)
    }

    /// How many tasks are running now.
    pub fn running(&self) -> usize {
        self.attempts.len()
    }

    /// How many tasks `worker` is running now.
    pub fn running_on(&self, worker: WorkerId) -> usize {
        self.fleet.get(worker).map_or(0, |w| w.in_flight)
    }

    /// How many results are kept in memory now, over all stages.
    pub fn kept(&self) -> usize {
        self.stages.iter().map(|state| state.results.len()).sum()
    }

    /// What happened so far.
    pub fn counts(&self) -> Counts {
        self.counts
    }

    /// Sends every final result, goal met, input discovered and result revoked from now on
    /// to `journal`, in the order they happen: replayed with [`Coordinator::restore`], they
    /// bring a new coordinator of the same job back to this one's results.
    /// Journals what the scheduler knows of `worker`, called `name`, as it leaves.
    pub fn journal_worker(&mut self, worker: WorkerId, name: &str) {
        if let Some(record) = self.fleet.record(worker) {
            self.journal(|| Record::Worker {
                name: name.to_owned(),
                record,
            });
        }
    }

    /// Journals what `record` makes, if the job is journaled.
    fn journal(&mut self, record: impl FnOnce() -> Record) {
        if self.journaling {
            self.effects.push(Effect::Journal(record()));
        }
    }

    /// Replays one record of an earlier run's journal, before any worker joins: a result
    /// becomes final without running its task (which leaves the queues), exactly as it did
    /// then. Replayed in journal order, the records rebuild the same results, the same
    /// discovered inputs and the same stops.
    pub fn restore(&mut self, record: Record) {
        match record {
            Record::Result {
                task,
                outcome,
                check,
                by,
            } => {
                self.unqueue(task);
                let by = by.map(|key| self.fleet.intern(&key));
                self.finish(task, outcome, Proof { by, check });
            }
            Record::Identity { key, credibility } => self.fleet.restore(&key, credibility),
            Record::Goal(task) => {
                if self.stages[task.stage].stopped.is_none() {
                    self.goal(task);
                }
            }
            Record::Discovered { stage, input } => {
                let state = &mut self.stages[stage];
                if state.seen.insert(input.get().to_owned()) {
                    state.discovered.push(input);
                    state.plan.tasks += 1;
                }
            }
            Record::Revoked(task) => self.revoke(task),
            Record::Worker { .. } | Record::Receipt { .. } => {}
        }
        self.settle();
        // Every final result so far came from the journal (no worker has joined): a reduce
        // stage's inner tree values are not results, so records are not counted themselves.
        self.counts.restored = self.counts.succeeded + self.counts.failed;
    }

    /// Takes `task` out of wherever it waits to be handed out: an input stage's tasks before
    /// it that are not done yet go to the retry queue (they were running when the journal
    /// ended, and run first).
    fn unqueue(&mut self, task: TaskRef) {
        let state = &mut self.stages[task.stage];
        if state.plan.feed == Feed::Inputs && task.index >= state.fresh {
            let skipped = state.fresh..task.index;
            state.fresh = task.index + 1;
            for index in skipped {
                self.retries.push_back(TaskRef {
                    stage: task.stage,
                    index,
                });
            }
            return;
        }
        // Usually at or near the front: tasks become ready in about the order they finish.
        for queue in [&mut self.ready, &mut self.retries] {
            if let Some(at) = queue.iter().position(|&t| t == task) {
                queue.remove(at);
                return;
            }
        }
    }
}

/// A seed no worker can predict.
/// The failure of a task whose input `index` of stage `source` failed.
fn upstream(source: &str, index: u64, failure: &TaskFailure) -> TaskFailure {
    let message = format!("its input, task {index} of stage {source:?}, failed ({failure})");
    TaskFailure {
        kind: FailureKind::Upstream,
        message,
    }
}

#[cfg(test)]
mod tests;
