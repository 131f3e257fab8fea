//! One simulated run: a job, its fleet and a server, in virtual time. The server's part does
//! what `dipla-server`'s transport does — turn messages into the core's inputs and carry out
//! its effects — and the volunteers' part plays the workers, honest or not. Every message
//! takes its time (connections keep their order; different connections do not), machines
//! crash, and the server itself crashes and is restored from the journal records emitted so
//! far. After every step the invariants are checked.

use std::collections::{BTreeMap, HashMap, HashSet};

use dipla_core::{
    Answer, AttemptId, Coordinator, Departure, Effect, Event, Feed, Keep, Record, TaskRef, Wake,
    WorkerId,
};
use dipla_protocol::RawJson;

use crate::fleet::{self, Behaviour, Volunteer};
use crate::ledger::{Ledger, number};
use crate::rng::Rng;
use crate::shape::{Computed, Input, Job, Kind};

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
        let vols = fleet::random(&mut rng.fork(), workers, anchors, hostile_bound, quorum);
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
            Ev::ToWorker(conn, down) => self.to_worker(conn, down),
            Ev::Finished(conn, attempt) => self.finished(conn, attempt),
            Ev::ToServer(conn, up) => self.to_server(conn, up)?,
            Ev::Gone(conn, departure) => self.gone(conn, departure),
            Ev::Crash(vol) => self.crash(vol, true),
            Ev::Leave(vol) => {
                self.vols[vol].leaves = Some(0);
                self.crash(vol, false);
            }
            Ev::Ask(conn) => self.ask(conn),
            Ev::Tick => {
                self.tick_at = None;
                self.core.tick(self.now);
                self.stuck_ticks += 1;
                if self.stuck_ticks > 1_000 {
                    return Err("poll_timeout asks for a tick at the same instant, again and again".into());
                }
            }
            Ev::ServerCrash => self.restart()?,
        }
        self.effects()?;
        self.check()?;
        self.schedule_tick()
    }

    // The volunteers' side.

    fn join(&mut self, vol: usize) {
        if self.conn_of[vol].is_some() || self.vols[vol].leaves == Some(0) {
            return;
        }
        let id = self.next_conn;
        self.next_conn += 1;
        self.conn_of[vol] = Some(id);
        let cores = self.vols[vol].cores;
        self.conns.insert(
            id,
            Conn {
                vol,
                down_at: self.now,
                up_at: self.now,
                asked: false,
                cores: vec![self.now; cores],
                running: HashMap::new(),
                held: HashSet::new(),
                open: true,
            },
        );
        // The server's side of the hello.
        let v = &self.vols[vol];
        self.core.join(id, v.claimed_cores);
        self.core.place(id, &v.address);
        self.core.identify(id, &v.key, None);
        self.core.claim(id, v.claimed);
        self.ask(id);
    }

    fn to_worker(&mut self, id: WorkerId, down: Down) {
        let now = self.now;
        let Some(conn) = self.conns.get_mut(&id) else {
            return;
        };
        if self.conn_of[conn.vol] != Some(id) {
            return;
        }
        match down {
            Down::Cancel(attempts) => {
                for attempt in attempts {
                    conn.running.remove(&attempt);
                }
            }
            Down::Tasks(tasks) => {
                let vol = conn.vol;
                for (attempt, task, input) in tasks {
                    let honest = self.job.compute(task.stage, &input);
                    let answer = self.vols[vol].answer(&honest, vol as u64, &mut self.rng);
                    let conn = self.conns.get_mut(&id).expect("checked");
                    conn.running.insert(attempt, (task, answer.clone()));
                    if self.vols[vol].behaviour == Behaviour::Silent {
                        continue;
                    }
                    let core = (0..conn.cores.len())
                        .min_by_key(|&c| conn.cores[c])
                        .expect("a core");
                    let start = conn.cores[core].max(now);
                    let takes = (answer.fuel as f64 / self.vols[vol].speed) as u64 + 1;
                    conn.cores[core] = start + takes;
                    self.at(start + takes, Ev::Finished(id, attempt));
                }
                if self.vols[vol].behaviour == Behaviour::Violator && self.rng.chance(0.3) {
                    self.up(id, Up::Bogus);
                }
            }
        }
    }

    fn finished(&mut self, id: WorkerId, attempt: AttemptId) {
        let Some(conn) = self.conns.get_mut(&id) else {
            return;
        };
        let Some((_, answer)) = conn.running.remove(&attempt) else {
            return;
        };
        let micros = (answer.fuel as f64 / self.vols[conn.vol].speed) as u64 + 1;
        self.up(
            id,
            Up::Result {
                attempt,
                answer,
                micros,
            },
        );
    }

    /// Sends a message to the server, after the connection's earlier ones.
    fn up(&mut self, id: WorkerId, up: Up) {
        let delay = self.rng.range(1, self.delay);
        let conn = self.conns.get_mut(&id).expect("live");
        conn.up_at = conn.up_at.max(self.now + delay);
        let when = conn.up_at;
        self.at(when, Ev::ToServer(id, up));
    }

    /// Sends a message to a worker, after the connection's earlier ones.
    fn down(&mut self, id: WorkerId, down: Down) {
        let delay = self.rng.range(1, self.delay);
        let conn = self.conns.get_mut(&id).expect("live");
        conn.down_at = conn.down_at.max(self.now + delay);
        let when = conn.down_at;
        self.at(when, Ev::ToWorker(id, down));
    }

    /// A machine crashes (`crash`) or its volunteer closes the worker: either way the
    /// connection ends with whatever it was running.
    fn crash(&mut self, vol: usize, crash: bool) {
        let Some(id) = self.conn_of[vol].take() else {
            return;
        };
        let conn = self.conns.get_mut(&id).expect("live");
        if !conn.held.is_empty() {
            self.vols[vol].let_down = true;
            if crash {
                self.report.crashes += 1;
            }
        }
        conn.running.clear();
        // A crash is noticed when the heartbeat goes unanswered; a closed connection at once.
        let notice = if crash {
            self.rng.range(1, HEARTBEAT)
        } else {
            self.rng.range(1, self.delay)
        };
        self.at(self.now + notice, Ev::Gone(id, Departure::Lost));
        if crash && self.vols[vol].leaves.is_none() {
            let back = self.now + self.rng.range(1_000, 5_000_000);
            self.at(back, Ev::Join(vol));
        }
    }

    // The server's side.

    fn to_server(&mut self, id: WorkerId, up: Up) -> Result<(), String> {
        if !self.conns.get(&id).is_some_and(|c| c.open) {
            return Ok(());
        }
        match up {
            Up::Bogus => {
                let bogus = self.core.running() as u64 + 1_000_000_000;
                let answer = Answer {
                    fuel: 1,
                    micros: 1,
                    outcome: Ok(raw("1")),
                    stop: false,
                    verified: false,
                    capped: false,
                };
                if self.core.answer(id, bogus, answer).is_ok() {
                    return Err(format!("the core took a result for attempt {bogus}, never given"));
                }
                self.expel(id);
            }
            Up::Result {
                attempt,
                answer,
                micros,
            } => {
                let conn = self.conns.get_mut(&id).expect("checked");
                conn.held.remove(&attempt);
                let task = self.attempt_task[&attempt];
                let explore = self.job.stages[task.stage].plan.explore.is_some();
                let outcome = match answer.json(explore) {
                    Some(json) => Ok(raw(&json)),
                    None => Err(answer.value.clone().expect_err("no output")),
                };
                let verifier = self.job.stages[task.stage].verifier && outcome.is_ok();
                let verified = verifier && self.verify(task, &answer);
                let answered = if verifier && !verified {
                    self.core
                        .reject(id, attempt, micros, "the verifier said no".into())
                } else {
                    self.core.answer(
                        id,
                        attempt,
                        Answer {
                            fuel: answer.fuel,
                            micros,
                            outcome,
                            stop: answer.stop,
                            verified,
                            capped: false,
                        },
                    )
                };
                if answered.is_err() {
                    // A worker answering a cancelled attempt twice is impossible here: the
                    // core rejecting an answer to an attempt it gave is a bug.
                    return Err(format!(
                        "the core refused worker {id}'s answer to attempt {attempt} ({task:?})"
                    ));
                }
                self.ask(id);
            }
        }
        Ok(())
    }

    /// What the stage's verifier says of an answer: whether it is what the task computes on
    /// the input it was given.
    fn verify(&self, task: TaskRef, answer: &Computed) -> bool {
        match self.ledger.expected(&self.job, task) {
            Some(expected) => expected.value == answer.value,
            None => true,
        }
    }

    fn expel(&mut self, id: WorkerId) {
        let Some(conn) = self.conns.get_mut(&id) else {
            return;
        };
        conn.open = false;
        let vol = conn.vol;
        self.core.expel(id);
        if self.conn_of[vol] == Some(id) {
            self.conn_of[vol] = None;
            let back = self.now + self.rng.range(1_000, 2_000_000);
            self.at(back, Ev::Join(vol));
        }
    }

    fn gone(&mut self, id: WorkerId, departure: Departure) {
        let Some(conn) = self.conns.get_mut(&id) else {
            return;
        };
        if !conn.open {
            self.conns.remove(&id);
            return;
        }
        if departure == Departure::Lost {
            let vol = conn.vol;
            for attempt in conn.held.clone() {
                let task = self.attempt_task[&attempt];
                self.lost_by.entry(task).or_default().insert(vol);
            }
        }
        self.core.journal_worker(id, &format!("w{id}"));
        self.core.depart(id, departure);
        self.conns.remove(&id);
    }

    fn ask(&mut self, id: WorkerId) {
        let Some(conn) = self.conns.get_mut(&id) else {
            return;
        };
        conn.asked = false;
        if !conn.open || self.done {
            return;
        }
        let assignments = self.core.assign(id);
        for assignment in assignments {
            let mut tasks = Vec::new();
            for (attempt, index) in assignment.tasks {
                let task = TaskRef {
                    stage: assignment.stage,
                    index,
                };
                self.attempt_task.insert(attempt, task);
                let input = self.task_input(task).ok_or(task);
                let Ok(input) = input else {
                    // Reported by `check` through `missing`.
                    self.missing.get_or_insert(task);
                    continue;
                };
                tasks.push((attempt, task, input));
                self.conns
                    .get_mut(&id)
                    .expect("live")
                    .held
                    .insert(attempt);
            }
            self.down(id, Down::Tasks(tasks));
        }
    }

    /// A task's input, as the server builds it from what the core holds.
    fn task_input(&self, task: TaskRef) -> Option<Input> {
        let core = &self.core;
        match &self.job.stages[task.stage].kind {
            Kind::Map => Some(Input::Value(self.job.input(task.stage, task.index))),
            Kind::Explore { seeds, .. } => {
                let n = task.index as usize;
                match seeds.get(n) {
                    Some(&seed) => Some(Input::Value(seed)),
                    None => core
                        .discovered(task.stage, (n - seeds.len()) as u64)
                        .and_then(|raw| number(raw).ok())
                        .map(Input::Value),
                }
            }
            Kind::Zip(sources) => sources
                .iter()
                .map(|&source| {
                    core.item(source, task.index)
                        .and_then(|raw| number(raw).ok())
                })
                .collect::<Option<Vec<u64>>>()
                .map(Input::Items),
            Kind::Reduce(_) => core
                .group(task)
                .into_iter()
                .map(|raw| number(raw).ok())
                .collect::<Option<Vec<u64>>>()
                .map(Input::Group),
        }
    }

    /// Carries out the core's effects.
    fn effects(&mut self) -> Result<(), String> {
        while self.core.has_effects() {
            for effect in self.core.take_effects() {
                if self.trace && !matches!(effect, Effect::Journal(_) | Effect::Wake(_)) {
                    eprintln!("{:>12}   effect {effect:?}", self.now);
                }
                match effect {
                    Effect::Journal(record) => {
                        if self.trace {
                            eprintln!("{:>12}   journal {record:?}", self.now);
                        }
                        self.ledger
                            .read(&self.job, &record, &self.liars, &self.caught)?;
                        self.journal.push(record);
                    }
                    Effect::Wake(Wake::All) => {
                        let ids: Vec<WorkerId> = self.conns.keys().copied().collect();
                        for id in ids {
                            self.wake(id);
                        }
                    }
                    Effect::Wake(Wake::Worker(id)) => self.wake(id),
                    Effect::Cancel { worker, attempts } => {
                        if let Some(conn) = self.conns.get_mut(&worker)
                            && conn.open
                        {
                            for attempt in &attempts {
                                conn.held.remove(attempt);
                            }
                            self.down(worker, Down::Cancel(attempts));
                        }
                    }
                    Effect::Ready => self.write()?,
                    Effect::Event(Event::Untrusted { identity, why }) => {
                        self.untrusted(identity, &why)?;
                    }
                    Effect::Event(Event::Started { .. } | Event::Overdue { .. }) => {}
                }
            }
        }
        // Nothing a liar caught now gave unchecked may stand in a stage that can still take
        // it back
        // (checked once the effects of its catching, revocations included, are read).
        for identity in std::mem::take(&mut self.newly_caught) {
            for (task, result) in &self.ledger.finals {
                let stage = &self.job.stages[task.stage];
                if result.by.as_deref() == Some(&identity)
                    && result.check == dipla_core::Check::Unchecked
                    && stage.replicated()
                    && !self.core.is_stage_complete(task.stage)
                {
                    return Err(format!(
                        "{identity} was caught, and its output for {task:?} stands"
                    ));
                }
            }
        }
        if self.core.is_complete() && !self.done {
            self.finish()?;
        }
        Ok(())
    }

    fn wake(&mut self, id: WorkerId) {
        if let Some(conn) = self.conns.get_mut(&id)
            && conn.open
            && !conn.asked
        {
            conn.asked = true;
            self.at(self.now, Ev::Ask(id));
        }
    }

    fn untrusted(&mut self, identity: String, why: &str) -> Result<(), String> {
        let Some(vol) = self.vols.iter().position(|v| v.key == identity) else {
            return Err(format!("untrusted {identity}, which never joined"));
        };
        let v = &self.vols[vol];
        if !v.behaviour.hostile() && !v.let_down && v.behaviour != Behaviour::Silent {
            return Err(format!("honest {identity} was untrusted: {why}"));
        }
        if self.liars.contains(&identity) && self.caught.insert(identity.clone()) {
            self.report.liars_caught += 1;
            self.newly_caught.push(identity);
        }
        Ok(())
    }

    /// The writer takes what is ready, in order.
    fn write(&mut self) -> Result<(), String> {
        for finished in self.core.take_ready() {
            let task = finished.task;
            let value = match &finished.outcome {
                Ok(raw) => Ok(number(raw)?),
                Err(failure) => Err(failure.kind),
            };
            if let Some((&last, _)) = self
                .written
                .range(TaskRef {
                    stage: task.stage,
                    index: 0,
                }..)
                .next_back()
                .filter(|(t, _)| t.stage == task.stage)
                && last.index >= task.index
            {
                return Err(format!("the writer took {task:?} after {last:?}"));
            }
            if self.trace {
                eprintln!("{:>12}   write {task:?} {value:?}", self.now);
            }
            self.written.insert(task, value);
        }
        Ok(())
    }

    /// The job is complete: every worker is let go, and the results are checked whole.
    fn finish(&mut self) -> Result<(), String> {
        self.done = true;
        let ids: Vec<WorkerId> = self.conns.keys().copied().collect();
        for id in ids {
            if self.conns[&id].open {
                self.core.depart(id, Departure::Released);
            }
        }
        self.conns.clear();
        let _ = self.core.take_effects();
        if self.core.running() != 0 || self.core.queued() != 0 {
            return Err(format!(
                "complete with {} running and {} queued",
                self.core.running(),
                self.core.queued()
            ));
        }
        if self.core.kept() != 0 {
            return Err(format!("complete, and {} results still kept", self.core.kept()));
        }
        crate::check::results(&self.job, &self.core, &self.ledger, &self.written, &self.lost_by)
    }

    /// The server crashes: every connection ends, and a new server restores the job from
    /// the journal records emitted so far.
    fn restart(&mut self) -> Result<(), String> {
        if self.done {
            return Ok(());
        }
        self.report.restores += 1;
        let before: Vec<u64> = (0..self.job.stages.len())
            .map(|stage| self.core.done(stage))
            .collect();
        let mut core = Self::coordinator(&self.job, self.seed ^ self.report.restores);
        for record in self.journal.clone() {
            core.restore(record);
        }
        core.set_journaling(true);
        self.core = core;
        self.core.set_clock(self.now);
        let after: Vec<u64> = (0..self.job.stages.len())
            .map(|stage| self.core.done(stage))
            .collect();
        if before != after {
            return Err(format!(
                "results lost across a restore: done per stage {before:?} before, {after:?} after"
            ));
        }
        // Every connection is gone; the volunteers reconnect.
        for (vol, slot) in self.conn_of.iter_mut().enumerate() {
            if slot.take().is_some() {
                let back = self.now + self.rng.range(1_000, 3_000_000);
                self.queue.insert((back, self.seq + 1 + vol as u64), Ev::Join(vol));
            }
        }
        self.seq += self.vols.len() as u64 + 1;
        self.conns.clear();
        self.lost_by.clear();
        self.written.clear();
        self.tick_at = None;
        Ok(())
    }

    /// Checks what must hold after every step.
    fn check(&mut self) -> Result<(), String> {
        if let Some(task) = self.missing.take() {
            return Err(format!("task {task:?} was handed out without its input"));
        }
        // Memory: results kept are bounded by the work they wait for.
        let mut bound = self.core.demand() as u64;
        for (stage, spec) in self.job.stages.iter().enumerate() {
            let done = self.core.done(stage);
            if spec.plan.keep == Keep::Ordered {
                let taken = self
                    .written
                    .range(TaskRef { stage, index: 0 }..TaskRef {
                        stage: stage + 1,
                        index: 0,
                    })
                    .count() as u64;
                bound += done.saturating_sub(taken);
            }
            if spec.replicated() || matches!(spec.plan.feed, Feed::Reduce { .. }) {
                bound += done;
            }
            if let Kind::Reduce(source) = spec.kind {
                bound += self.core.done(source);
            }
        }
        let kept = self.core.kept() as u64;
        if kept > bound * self.job.stages.len() as u64 + 1 {
            return Err(format!(
                "{kept} results kept, more than the work in flight and results retained allow ({bound})"
            ));
        }
        Ok(())
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
