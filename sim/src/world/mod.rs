//! One simulated run: a job, its fleet and a server, in virtual time. The server's part does
//! what `dipla-server`'s transport does — turn messages into the core's inputs and carry out
//! its effects — and the volunteers' part plays the workers, honest or not. Every message
//! takes its time (connections keep their order; different connections do not), machines
//! crash, and the server itself crashes and is restored from the journal records emitted so
//! far. After every step the invariants are checked.

use std::collections::{BTreeMap, HashMap, HashSet};

use dipla_core::{AttemptId, Coordinator, Departure, Record, TaskRef, WorkerId};
use dipla_protocol::RawJson;

use crate::fleet::{self, Behaviour, Volunteer};
use crate::ledger::Ledger;
use crate::rng::Rng;
use crate::shape::{Computed, Input, Job, Kind};

mod invariants;
mod machines;
mod transport;

/// The most events one run may take before it is called a livelock.
const MAX_EVENTS: u64 = 3_000_000;
/// How long a server takes to notice a machine that vanished (its heartbeat timeout).
const HEARTBEAT: u64 = 30_000_000;

/// What a run did, for the summary.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Report {
    /// Events it took (two runs of one seed take the same).
    pub events: u64,
    /// Journal records the core emitted.
    pub records: u64,
    /// Result lines the job had.
    pub tasks: u64,
    /// Volunteers in the fleet.
    pub workers: usize,
    /// Machines that crashed with work.
    pub crashes: u64,
    /// Server restarts restored from the journal.
    pub restores: u64,
    /// Liars the core caught.
    pub liars_caught: u64,
    /// Times a worker paused (its tasks given back at once), resuming later.
    pub pauses: u64,
    /// Virtual time the job took, in µs.
    pub virtual_micros: u64,
}

/// A broken invariant: what and when.
#[derive(Debug)]
pub struct Failure {
    /// The virtual time it was seen at.
    pub at: u64,
    /// What went wrong.
    pub what: String,
}

/// A message to a worker.
#[derive(Debug, Clone)]
enum Down {
    Tasks(Vec<(AttemptId, TaskRef, Input)>),
    Cancel(Vec<AttemptId>),
}

/// A message to the server.
#[derive(Debug, Clone)]
enum Up {
    Result {
        attempt: AttemptId,
        answer: Computed,
        micros: u64,
    },
    /// A result for an attempt the worker was never given.
    Bogus,
    /// The worker paused: it stopped its tasks and takes none until it resumes.
    Pause,
    /// The worker runs again.
    Resume,
}

#[derive(Debug, Clone)]
enum Ev {
    Join(usize),
    ToWorker(WorkerId, Down),
    Finished(WorkerId, AttemptId),
    ToServer(WorkerId, Up),
    Gone(WorkerId, Departure),
    Crash(usize),
    Leave(usize),
    Pause(usize),
    Resume(usize),
    Ask(WorkerId),
    Tick,
    ServerCrash,
}

/// A connection, on both ends.
#[derive(Debug)]
struct Conn {
    vol: usize,
    /// When the last message each way arrives (a connection keeps its order).
    down_at: u64,
    up_at: u64,
    /// Whether an `Ask` is queued for it.
    asked: bool,
    /// The worker's cores: when each is next free.
    cores: Vec<u64>,
    /// What the worker is running: the attempt, its task and the answer it will give.
    running: HashMap<AttemptId, (TaskRef, Computed)>,
    /// Attempts the server gave it that it has not answered (the server's view).
    held: HashSet<AttemptId>,
    /// Whether the server still counts it connected.
    open: bool,
    /// Whether the worker is paused (it drops the tasks that cross its pause).
    paused: bool,
}

/// One run.
pub struct World {
    seed: u64,
    rng: Rng,
    job: Job,
    core: Coordinator,
    now: u64,
    seq: u64,
    queue: BTreeMap<(u64, u64), Ev>,
    tick_at: Option<(u64, u64)>,
    vols: Vec<Volunteer>,
    /// The volunteer's live connection, if any.
    conn_of: Vec<Option<WorkerId>>,
    conns: BTreeMap<WorkerId, Conn>,
    next_conn: WorkerId,
    attempt_task: HashMap<AttemptId, TaskRef>,
    journal: Vec<Record>,
    ledger: Ledger,
    liars: HashSet<String>,
    caught: HashSet<String>,
    /// Distinct identities lost holding each task, since the server last started.
    lost_by: HashMap<TaskRef, HashSet<usize>>,
    /// What the writer took since the server last started.
    written: BTreeMap<TaskRef, Result<u64, dipla_protocol::FailureKind>>,
    delay: u64,
    report: Report,
    server_crashes: Vec<u64>,
    done: bool,
    events: u64,
    bound: u64,
    /// A task handed out whose input the core no longer held.
    missing: Option<TaskRef>,
    /// Ticks in a row at one instant (a `poll_timeout` that does not move on).
    stuck_ticks: u32,
    /// The instant of the last step.
    core_clock: u64,
    /// Liars caught in this step, to check once its effects are read.
    newly_caught: Vec<String>,
    /// Whether to print every event (`DIPLA_SIM_TRACE=1`).
    trace: bool,
}

impl World {
    /// The run seed `seed` makes.
    pub fn new(seed: u64) -> Self {
        let mut rng = Rng::new(seed);
        let big = rng.chance(0.05);
        let job = Job::random(&mut rng.fork(), big);
        let workers = if big {
            rng.range(200, 1000) as usize
        } else if rng.chance(0.5) {
            rng.range(1, 6) as usize
        } else {
            rng.range(2, 40) as usize
        };
        let least_attempts = job
            .stages
            .iter()
            .map(|s| s.plan.max_attempts)
            .min()
            .unwrap_or(3);
        let quorum = job.stages.iter().map(|s| s.plan.quorum).min().unwrap_or(2);
        // Enough honest identities always there to make any quorum, replicas or confirmed
        // failures.
        let anchors = job
            .stages
            .iter()
            .map(|s| if s.replicated() { s.plan.quorum } else { 2 })
            .max()
            .unwrap_or(2) as usize;
        // The trust model's bound: fewer hostile identities than it takes to fail a task
        // (max_attempts distinct identities, MAX_LOST lost) or to outvote on one (colluders
        // fewer than a quorum; the others each lie their own way).
        let hostile_bound = (least_attempts.min(dipla_core::MAX_LOST) - 1) as usize;
        let mut vols = fleet::random(&mut rng.fork(), workers, anchors, hostile_bound, quorum);
        // Honest volunteers beyond the anchors may pause now and then (drawn apart, so
        // that the rest of a seed's run is drawn as before).
        let mut pauses = Rng::new(crate::rng::hash(&[seed, 0x9a05e]));
        for vol in vols.iter_mut().skip(anchors) {
            vol.pausy = vol.behaviour == Behaviour::Honest && pauses.chance(0.2);
        }
        let liars = vols
            .iter()
            .filter(|v| matches!(v.behaviour, Behaviour::Liar { .. }))
            .map(|v| v.key.clone())
            .collect();
        let delay = [100, 2_000, 50_000][rng.below(3) as usize];
        let crashes = if rng.chance(0.3) { rng.range(1, 3) } else { 0 };
        let server_crashes = (0..crashes).map(|_| rng.range(1_000, 20_000_000)).collect();
        let mut core = Self::coordinator(&job, seed);
        core.set_journaling(true);
        let bound = Self::time_bound(&job, &vols, delay);
        let mut world = Self {
            seed,
            rng,
            job,
            core,
            now: 0,
            seq: 0,
            queue: BTreeMap::new(),
            tick_at: None,
            conn_of: vec![None; vols.len()],
            vols,
            conns: BTreeMap::new(),
            next_conn: 1,
            attempt_task: HashMap::new(),
            journal: Vec::new(),
            ledger: Ledger::default(),
            liars,
            caught: HashSet::new(),
            lost_by: HashMap::new(),
            written: BTreeMap::new(),
            delay,
            report: Report::default(),
            server_crashes,
            done: false,
            events: 0,
            bound,
            missing: None,
            stuck_ticks: 0,
            core_clock: 0,
            newly_caught: Vec::new(),
            trace: std::env::var_os("DIPLA_SIM_TRACE").is_some(),
        };
        world.report.workers = world.vols.len();
        world
    }

    fn coordinator(job: &Job, seed: u64) -> Coordinator {
        let mut core = Coordinator::seeded(job.plans(), seed);
        core.set_speculation(job.speculate);
        for (number, stage) in job.stages.iter().enumerate() {
            if let Kind::Explore { seeds, .. } = &stage.kind {
                core.seed(number, seeds.iter().map(u64::to_string));
            }
        }
        core
    }

    /// The virtual time within which the job must finish: everything run, with every
    /// replica and retry, by the one volunteer that is always there, with a deadline's wait
    /// per stage and restart.
    fn time_bound(job: &Job, vols: &[Volunteer], delay: u64) -> u64 {
        let anchor = &vols[0];
        let mut work = 0.0;
        for stage in &job.stages {
            let tasks = match &stage.kind {
                Kind::Explore { .. } => stage.plan.explore.unwrap_or(1),
                _ => stage.plan.tasks * 2,
            };
            let runs = f64::from(stage.plan.quorum * 2 + 1 + stage.plan.max_attempts);
            work += tasks as f64 * runs * (stage.cost * 2) as f64 / anchor.speed;
        }
        let waits = job.stages.len() as u64 + 8;
        (work as u64) + waits * (HEARTBEAT + 40_000_000 + 100 * delay) + 60_000_000
    }

    /// Runs the job to its end.
    ///
    /// # Errors
    /// The first invariant broken.
    pub fn run(mut self) -> Result<Report, Failure> {
        if self.trace {
            for (number, stage) in self.job.stages.iter().enumerate() {
                eprintln!(
                    "stage {number}: {:?}, {} tasks, keep {:?}, replicate {:?} quorum {}, verifier {}, stoppable {} after {}, explore {:?}",
                    stage.kind,
                    stage.plan.tasks,
                    stage.plan.keep,
                    stage.plan.replicate,
                    stage.plan.quorum,
                    stage.verifier,
                    stage.plan.stoppable,
                    stage.plan.stop_after,
                    stage.plan.explore
                );
            }
        }
        for n in 0..self.vols.len() {
            let joins = self.vols[n].joins;
            self.at(joins, Ev::Join(n));
            if self.vols[n].crashy {
                for _ in 0..self.rng.range(1, 3) {
                    let when = joins + self.rng.range(10_000, 20_000_000);
                    self.at(when, Ev::Crash(n));
                }
            }
            if let Some(leaves) = self.vols[n].leaves {
                self.at(joins.max(leaves), Ev::Leave(n));
            }
            if self.vols[n].pausy {
                let mut pauses = Rng::new(crate::rng::hash(&[self.seed, n as u64, 0x9a05e]));
                let mut when = joins;
                for _ in 0..pauses.range(1, 4) {
                    when += pauses.range(10_000, 10_000_000);
                    self.at(when, Ev::Pause(n));
                    when += pauses.range(1_000, 5_000_000);
                    self.at(when, Ev::Resume(n));
                }
            }
        }
        for when in self.server_crashes.clone() {
            self.at(when, Ev::ServerCrash);
        }
        while !self.done {
            let Some(((when, _), event)) = self.queue.pop_first() else {
                let progress: Vec<_> = (0..self.job.stages.len())
                    .map(|stage| {
                        let written = self
                            .written
                            .keys()
                            .filter(|task| task.stage == stage)
                            .count();
                        (
                            self.core.is_stage_complete(stage),
                            written,
                            self.job.stages[stage].kind.clone(),
                            self.job.stages[stage].plan.keep,
                            self.core.progress(stage),
                        )
                    })
                    .collect();
                return self.fail(&format!(
                    "the job hangs: nothing left to happen and it is not complete; {} connected, {} running, {} queued; stages {progress:?}",
                    self.conns.len(),
                    self.core.running(),
                    self.core.queued()
                ));
            };
            self.now = when;
            self.events += 1;
            if self.events > MAX_EVENTS {
                return self.fail("livelock: too many events");
            }
            if self.now > self.bound {
                return self.fail(&format!(
                    "the job took longer than its bound of {} virtual s",
                    self.bound / 1_000_000
                ));
            }
            if let Err(what) = self.step(event) {
                return self.fail(&what);
            }
        }
        self.report.virtual_micros = self.now;
        self.report.tasks = self.core.total_lines();
        self.report.events = self.events;
        self.report.records = self.journal.len() as u64;
        Ok(self.report)
    }

    fn fail<T>(&self, what: &str) -> Result<T, Failure> {
        Err(Failure {
            at: self.now,
            what: format!("{what} (seed {})", self.seed),
        })
    }

    fn at(&mut self, when: u64, event: Ev) {
        self.seq += 1;
        self.queue.insert((when, self.seq), event);
    }

    fn step(&mut self, event: Ev) -> Result<(), String> {
        if self.now > self.core_clock {
            self.stuck_ticks = 0;
            self.core_clock = self.now;
        }
        self.core.set_clock(self.now);
        if self.trace {
            eprintln!("{:>12} {event:?}", self.now);
        }
        match event {
            Ev::Join(vol) => self.join(vol),
            Ev::ToWorker(conn, down) => self.worker_gets(conn, down),
            Ev::Finished(conn, attempt) => self.finished(conn, attempt),
            Ev::ToServer(conn, up) => self.server_gets(conn, up)?,
            Ev::Gone(conn, departure) => self.gone(conn, departure),
            Ev::Crash(vol) => self.crash(vol, true),
            Ev::Leave(vol) => {
                self.vols[vol].leaves = Some(0);
                self.crash(vol, false);
            }
            Ev::Pause(vol) => self.pause(vol, true),
            Ev::Resume(vol) => self.pause(vol, false),
            Ev::Ask(conn) => self.ask(conn),
            Ev::Tick => {
                self.tick_at = None;
                self.core.tick(self.now);
                self.stuck_ticks += 1;
                if self.stuck_ticks > 1_000 {
                    return Err(
                        "poll_timeout asks for a tick at the same instant, again and again".into(),
                    );
                }
            }
            Ev::ServerCrash => self.restart()?,
        }
        self.effects()?;
        self.check()?;
        self.schedule_tick()
    }

    fn schedule_tick(&mut self) -> Result<(), String> {
        let Some(when) = self.core.poll_timeout() else {
            if let Some(key) = self.tick_at.take() {
                self.queue.remove(&key);
            }
            return Ok(());
        };
        let when = when.max(self.now);
        if self.tick_at.is_some_and(|(at, _)| at == when) {
            return Ok(());
        }
        if let Some(key) = self.tick_at.take() {
            self.queue.remove(&key);
        }
        self.seq += 1;
        let key = (when, self.seq);
        self.queue.insert(key, Ev::Tick);
        self.tick_at = Some(key);
        Ok(())
    }
}

fn raw(json: &str) -> Box<RawJson> {
    RawJson::from_string(json.to_owned()).expect("valid JSON")
}
