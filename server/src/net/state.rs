use std::collections::{BTreeMap, HashMap};
use std::ops::{Deref, DerefMut};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Instant;

use tokio::sync::{Notify, watch};

use crate::net::gate::Gate;
use crate::net::stats::{Stats, StatsSnapshot};
use crate::store::journal::{Backlog, Sink};
use crate::store::task_logs::TaskLogs;
use crate::store::trust::TrustStore;
use crate::{Job, Module, Source, Stage};
use dipla_core::WorkerRecord;
use dipla_core::{AttemptId, Coordinator, Counts, Effect, Event, Keep, Record, Wake, WorkerId};
use dipla_protocol::Agent;

pub use crate::net::gate::DEFAULT_HEARTBEAT;

/// Everything the connections, the result writer and the driver share. Cheap to clone.
#[derive(Clone)]
pub struct Handle {
    pub(crate) shared: Arc<Shared>,
}

pub(crate) struct Shared {
    // A std mutex: it is never held across an await, and every critical section is short.
    core: Mutex<Core>,
    pub(crate) stats: Stats,
    /// Bumped when tasks go back on the queue or new ones exist, so idle connections look
    /// for work.
    pub(crate) wake: watch::Sender<u64>,
    /// Set when the server shuts down: connections say goodbye.
    pub(crate) done: watch::Sender<bool>,
    /// Bumped when results may be ready, or a stage may be complete.
    pub(crate) progress: watch::Sender<u64>,
    /// Signalled when a connection ends.
    pub(crate) disconnected: Notify,
    pub(crate) connections: AtomicUsize,
    /// Whether the job's timer runs.
    timer: AtomicBool,
    next_worker: AtomicU64,
    /// Connected workers' names and agents, for logs, the API and tests.
    names: Mutex<BTreeMap<u64, (String, Agent)>>,
    /// When the server started: the coordinator's clock counts from here.
    started: Instant,
    /// Set when the operator cancels the job.
    pub(crate) cancelled: watch::Sender<bool>,
    /// The job's id in receipts (its fingerprint, for a manifest's job).
    job_id: Mutex<String>,
    /// Who may come in, shared by every job of the server.
    pub(crate) gate: Arc<Gate>,
}

/// The job and its scheduling state, changed together under one lock.
pub struct Core {
    /// The modules and stages.
    pub job: Job,
    /// Who runs what.
    pub coordinator: Coordinator,
    /// What failed tasks logged, until their result lines are written.
    pub logs: TaskLogs,
    /// Where the coordinator's journal records go, if the job is journaled (or mirrored to
    /// a driver).
    journal: Option<Sink>,
    /// The server's trust records, shared by its jobs (`serve`): identities take theirs from
    /// it when they join, and every change to one goes back to it.
    pub(crate) trust: Option<Arc<TrustStore>>,
    /// Attempts the coordinator cancelled, until each worker's connection sends them.
    cancels: HashMap<WorkerId, Vec<AttemptId>>,
}

/// The core, locked: carries out what the coordinator asked for when it is let go.
pub struct Locked<'a> {
    core: MutexGuard<'a, Core>,
    shared: &'a Shared,
}

impl Deref for Locked<'_> {
    type Target = Core;

    fn deref(&self) -> &Core {
        &self.core
    }
}

impl DerefMut for Locked<'_> {
    fn deref_mut(&mut self) -> &mut Core {
        &mut self.core
    }
}

impl Drop for Locked<'_> {
    fn drop(&mut self) {
        if self.core.coordinator.has_effects() {
            let effects = self.core.coordinator.take_effects();
            self.core.apply(effects, self.shared);
        }
    }
}

impl Core {
    /// Sends the coordinator's journal records to `journal` from now on (none: stops
    /// journaling; the writer then ends with its channel).
    pub(crate) fn set_journal(&mut self, journal: Option<Sink>) {
        self.coordinator.set_journaling(journal.is_some());
        self.journal = journal;
    }

    /// How far the journal's writer has got, if there is a journal.
    pub(crate) fn journal_backlog(&self) -> Option<Backlog> {
        self.journal.as_ref().map(Sink::backlog)
    }

    /// The attempts `worker` should stop running, to send in a `cancel` message.
    pub(crate) fn take_cancels(&mut self, worker: WorkerId) -> Vec<AttemptId> {
        self.cancels.remove(&worker).unwrap_or_default()
    }

    /// Carries out the coordinator's effects, in order: journal records (and trust records
    /// to the server's store), cancellations for connections to send, wakes, the writer's
    /// signal and log lines. Only channel sends and counters: it runs under the lock.
    fn apply(&mut self, effects: Vec<Effect>, shared: &Shared) {
        let mut wake = false;
        let mut ready = false;
        for effect in effects {
            match effect {
                Effect::Journal(record) => {
                    if let (Record::Identity { key, credibility }, Some(trust)) =
                        (&record, &self.trust)
                    {
                        trust.update(key, credibility);
                    }
                    if let Some(journal) = &self.journal {
                        journal.send(record);
                    }
                }
                Effect::Cancel { worker, attempts } => {
                    self.cancels.entry(worker).or_default().extend(attempts);
                }
                // Connections share one wake signal: each woken one asks the coordinator
                // what it has for it, which is cheap when the answer is nothing.
                Effect::Wake(Wake::All | Wake::Worker(_)) => wake = true,
                Effect::Ready => ready = true,
                Effect::Event(event) => log(&event),
            }
        }
        if wake {
            shared.wake.send_modify(|generation| *generation += 1);
        }
        if ready {
            shared.progress.send_modify(|generation| *generation += 1);
        }
    }

    /// Adds a module unless the job has it already (by content).
    pub fn add_module(&mut self, module: Module) {
        if self.job.module_bytes(&module.hash).is_none() {
            self.job.modules.push(module);
        }
    }

    /// Adds a stage, whose results `keep` says who keeps, and returns its number.
    pub fn add_stage(&mut self, stage: Stage, keep: Keep) -> usize {
        let number = self.coordinator.add_stage(stage.plan(keep));
        seed_explore(&mut self.coordinator, number, &stage);
        self.job.stages.push(stage);
        number
    }
}

/// Writes what the coordinator reported to the operator's log.
fn log(event: &Event) {
    match event {
        Event::Started { joined } => {
            tracing::info!(joined, "enough workers have joined: giving out tasks");
        }
        Event::Overdue { attempt, task } => {
            tracing::info!(attempt, ?task, "task overdue; giving it to another worker");
        }
        Event::Untrusted { identity, why } => {
            tracing::warn!(identity, %why, "identity untrusted");
        }
    }
}

/// Records the inputs an explore stage starts with.
fn seed_explore(coordinator: &mut Coordinator, number: usize, stage: &Stage) {
    if let (Some(_), Source::List(inputs)) = (stage.explore, &stage.source) {
        coordinator.seed(
            number,
            (0..inputs.len()).map(|n| inputs.get(n).get().to_owned()),
        );
    }
}

/// A connected worker.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct WorkerSummary {
    /// The server's id for the connection.
    pub id: u64,
    /// The name the worker gave.
    pub name: String,
    /// What kind of program it is: `"native"` (`dipla-worker`) or `"browser"` (the
    /// `/volunteer` page).
    pub agent: &'static str,
    /// How many tasks it is running.
    pub running: usize,
    /// What the scheduler knows of it (`None` while it is still joining).
    pub record: Option<WorkerRecord>,
}

impl Handle {
    /// A handle for `job`, whose stage `i`'s results `keep(i)` says who keeps, behind `gate`.
    pub(crate) fn new(job: Job, keep: impl Fn(usize) -> Keep, gate: Arc<Gate>) -> Self {
        let plans = (0..job.stages.len())
            .map(|i| job.stages[i].plan(keep(i)))
            .collect();
        let job_id = crate::store::journal::fingerprint(&job);
        let mut coordinator = Coordinator::seeded(plans, seed());
        for (i, stage) in job.stages.iter().enumerate() {
            seed_explore(&mut coordinator, i, stage);
        }
        let shared = Shared {
            core: Mutex::new(Core {
                job,
                coordinator,
                logs: TaskLogs::default(),
                journal: None,
                trust: None,
                cancels: HashMap::new(),
            }),
            stats: Stats::default(),
            wake: watch::channel(0).0,
            done: watch::channel(false).0,
            progress: watch::channel(0).0,
            disconnected: Notify::new(),
            connections: AtomicUsize::new(0),
            timer: AtomicBool::new(false),
            next_worker: AtomicU64::new(1),
            names: Mutex::default(),
            started: Instant::now(),
            cancelled: watch::channel(false).0,
            job_id: Mutex::new(job_id),
            gate,
        };
        Self {
            shared: Arc::new(shared),
        }
    }

    /// Who may come in.
    pub(crate) fn gate(&self) -> &Gate {
        &self.shared.gate
    }

    /// The job and its scheduling state, locked.
    pub fn lock(&self) -> Locked<'_> {
        // Every coordinator method leaves it consistent before it could panic.
        let core = self
            .shared
            .core
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        Locked {
            core,
            shared: &self.shared,
        }
    }

    /// The job and its scheduling state, locked, with the coordinator's clock set to now.
    pub(crate) fn lock_now(&self) -> Locked<'_> {
        let now = self.now_micros();
        let mut core = self.lock();
        core.coordinator.set_clock(now);
        core
    }

    /// Microseconds since the job started: the coordinator's clock.
    pub(crate) fn now_micros(&self) -> u64 {
        u64::try_from(self.shared.started.elapsed().as_micros()).unwrap_or(u64::MAX)
    }

    /// Starts the job's timer ([`Handle::run_timer`]) unless it runs already: called as a
    /// worker joins, inside the runtime that serves it.
    pub(crate) fn start_timer(&self) {
        if !self.shared.timer.swap(true, Ordering::Relaxed) {
            tokio::spawn(self.clone().run_timer());
        }
    }

    /// Ticks the coordinator whenever its [`Coordinator::poll_timeout`] comes, until the job
    /// is done: the one timer of a job (deadlines, stragglers), instead of every connection
    /// looking again now and then. Wakes whenever connections are woken, since what they
    /// did may have moved the next deadline.
    async fn run_timer(self) {
        let mut wake = self.shared.wake.subscribe();
        let mut done = self.shared.done.subscribe();
        loop {
            if *done.borrow_and_update() {
                return;
            }
            let next = self.lock().coordinator.poll_timeout();
            let sleep = async {
                match next {
                    Some(at) => {
                        let at = self.shared.started + std::time::Duration::from_micros(at);
                        tokio::time::sleep_until(at.into()).await;
                        true
                    }
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                due = sleep => if due {
                    let now = self.now_micros();
                    self.lock().coordinator.tick(now);
                },
                changed = wake.changed() => if changed.is_err() { return },
                changed = done.changed() => if changed.is_err() { return },
            }
        }
    }

    pub(crate) fn next_worker_id(&self) -> u64 {
        self.shared.next_worker.fetch_add(1, Ordering::Relaxed)
    }

    pub(crate) fn named(&self, id: u64, name: Option<(String, Agent)>) {
        let mut names = self
            .shared
            .names
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        match name {
            Some(name) => names.insert(id, name),
            None => names.remove(&id),
        };
    }

    /// The connected workers.
    pub fn workers(&self) -> Vec<WorkerSummary> {
        let names = self
            .shared
            .names
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        let core = self.lock();
        names
            .into_iter()
            .map(|(id, (name, agent))| WorkerSummary {
                id,
                name,
                agent: agent.name(),
                running: core.coordinator.running_on(id),
                record: core.coordinator.record(id),
            })
            .collect()
    }

    /// The job's id, which receipts name.
    pub fn job_id(&self) -> String {
        self.shared
            .job_id
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Sets the job's id for receipts.
    pub(crate) fn set_job_id(&self, id: String) {
        *self
            .shared
            .job_id
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = id;
    }

    /// Cancels the job: its runner stops, keeping what it has written.
    pub fn cancel(&self) {
        self.shared.cancelled.send_replace(true);
        self.progressed();
    }

    /// Whether the job was cancelled.
    pub fn is_cancelled(&self) -> bool {
        *self.shared.cancelled.borrow()
    }

    /// Wakes connections to look for work (for what the coordinator does not know of: a
    /// driver's new stage, the server shutting down).
    pub(crate) fn wake_all(&self) {
        self.shared.wake.send_modify(|generation| *generation += 1);
    }

    /// Tells whoever waits for results that some may be ready.
    pub(crate) fn progressed(&self) {
        self.shared
            .progress
            .send_modify(|generation| *generation += 1);
    }

    /// Traffic counters.
    pub fn stats(&self) -> StatsSnapshot {
        self.shared.stats.snapshot()
    }

    /// Task counters.
    pub fn counts(&self) -> Counts {
        self.lock().coordinator.counts()
    }

    /// How many results of stage `stage` are final.
    pub fn stage_done(&self, stage: usize) -> u64 {
        self.lock().coordinator.done(stage)
    }

    /// How many tasks are running now.
    pub fn running(&self) -> usize {
        self.lock().coordinator.running()
    }

    /// How many tasks worker `id` is running now.
    pub fn running_on(&self, id: u64) -> usize {
        self.lock().coordinator.running_on(id)
    }

    /// How many final results the server keeps in memory now (for stages still read).
    pub fn kept(&self) -> usize {
        self.lock().coordinator.kept()
    }

    /// Estimated time until every known task is done, at the workers' measured pace (`None`
    /// until some task has finished).
    pub fn eta(&self) -> Option<std::time::Duration> {
        self.lock()
            .coordinator
            .eta_micros()
            .map(std::time::Duration::from_micros)
    }

    /// How many workers are connected now.
    pub fn connected(&self) -> usize {
        self.shared.connections.load(Ordering::Relaxed)
    }
}

/// A seed for a job's coordinator from the system's randomness, so that no worker can tell
/// which of its answers will be checked.
fn seed() -> u64 {
    use std::hash::{BuildHasher, RandomState};
    RandomState::new().hash_one(0x5eed_u64)
}
