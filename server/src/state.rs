use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::IpAddr;

use dipla_protocol::PublicKey;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Instant;

use tokio::sync::{Notify, watch};

use crate::coordinator::{Coordinator, Counts, Keep};
use crate::fleet::WorkerRecord;
use crate::stats::{Stats, StatsSnapshot};
use crate::{Job, Module, Source, Stage};

/// How often connections are pinged unless the server is told otherwise.
pub const DEFAULT_HEARTBEAT: std::time::Duration = std::time::Duration::from_secs(5);

/// Everything the connections, the result writer and the driver share. Cheap to clone.
#[derive(Clone)]
pub struct Handle {
    pub(crate) shared: Arc<Shared>,
}

pub(crate) struct Shared {
    // A std mutex: it is never held across an await, and every critical section is short.
    core: Mutex<Core>,
    pub(crate) stats: Stats,
    /// What `/metrics` measures as it happens.
    pub(crate) metrics: crate::metrics::Metrics,
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
    next_worker: AtomicU64,
    /// Connected workers' names, for logs and tests.
    names: Mutex<BTreeMap<u64, String>>,
    /// When the server started: the coordinator's clock counts from here.
    started: Instant,
    /// The tokens workers must present (none: all are admitted).
    pub(crate) tokens: Mutex<crate::Tokens>,
    /// How often connections are pinged; three silent periods end one.
    heartbeat: Mutex<std::time::Duration>,
    /// The most workers connected at once.
    max_workers: AtomicUsize,
    /// The tokens the operator's API accepts (`None`: the API is off).
    admin: Mutex<Option<crate::Tokens>>,
    /// Set when the operator cancels the job.
    pub(crate) cancelled: watch::Sender<bool>,
    /// The job's id in receipts (its fingerprint, for a manifest's job).
    job_id: Mutex<String>,
    /// The most identities accepted from one IP address (`None`: no cap), and those seen.
    identities_per_ip: Mutex<(Option<usize>, IdentitiesByIp)>,
}

/// The identities seen from each IP address.
type IdentitiesByIp = HashMap<IpAddr, HashSet<PublicKey>>;

/// The job and its scheduling state, changed together under one lock.
pub struct Core {
    /// The modules and stages.
    pub job: Job,
    /// Who runs what.
    pub coordinator: Coordinator,
}

impl Core {
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
    /// How many tasks it is running.
    pub running: usize,
    /// What the scheduler knows of it (`None` while it is still joining).
    pub record: Option<WorkerRecord>,
}

impl Handle {
    /// A handle for `job`, whose stage `i`'s results `keep(i)` says who keeps.
    pub(crate) fn new(job: Job, keep: impl Fn(usize) -> Keep) -> Self {
        let plans = (0..job.stages.len())
            .map(|i| job.stages[i].plan(keep(i)))
            .collect();
        let job_id = crate::journal::fingerprint(&job);
        let mut coordinator = Coordinator::new(plans);
        for (i, stage) in job.stages.iter().enumerate() {
            seed_explore(&mut coordinator, i, stage);
        }
        let shared = Shared {
            core: Mutex::new(Core { job, coordinator }),
            stats: Stats::default(),
            metrics: crate::metrics::Metrics::default(),
            wake: watch::channel(0).0,
            done: watch::channel(false).0,
            progress: watch::channel(0).0,
            disconnected: Notify::new(),
            connections: AtomicUsize::new(0),
            next_worker: AtomicU64::new(1),
            names: Mutex::default(),
            started: Instant::now(),
            tokens: Mutex::default(),
            heartbeat: Mutex::new(DEFAULT_HEARTBEAT),
            max_workers: AtomicUsize::new(usize::MAX),
            admin: Mutex::new(None),
            cancelled: watch::channel(false).0,
            job_id: Mutex::new(job_id),
            identities_per_ip: Mutex::default(),
        };
        Self {
            shared: Arc::new(shared),
        }
    }

    /// The job and its scheduling state, locked.
    pub fn lock(&self) -> MutexGuard<'_, Core> {
        // Every coordinator method leaves it consistent before it could panic.
        self.shared
            .core
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// The job and its scheduling state, locked, with the coordinator's clock set to now.
    pub(crate) fn lock_now(&self) -> MutexGuard<'_, Core> {
        let now = u64::try_from(self.shared.started.elapsed().as_micros()).unwrap_or(u64::MAX);
        let mut core = self.lock();
        core.coordinator.set_clock(now);
        core
    }

    pub(crate) fn next_worker_id(&self) -> u64 {
        self.shared.next_worker.fetch_add(1, Ordering::Relaxed)
    }

    pub(crate) fn named(&self, id: u64, name: Option<String>) {
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
            .map(|(id, name)| WorkerSummary {
                id,
                name,
                running: core.coordinator.running_on(id),
                record: core.coordinator.record(id),
            })
            .collect()
    }

    /// Pings connections every `every`; a worker silent for three of them is dropped.
    pub(crate) fn set_heartbeat(&self, every: std::time::Duration) {
        *self
            .shared
            .heartbeat
            .lock()
            .unwrap_or_else(PoisonError::into_inner) =
            every.max(std::time::Duration::from_millis(50));
    }

    /// Accepts at most `count` workers at once.
    pub(crate) fn set_max_workers(&self, count: usize) {
        self.shared
            .max_workers
            .store(count.max(1), Ordering::Relaxed);
    }

    /// The most workers accepted at once.
    pub(crate) fn max_workers(&self) -> usize {
        self.shared.max_workers.load(Ordering::Relaxed)
    }

    /// How often connections are pinged.
    pub(crate) fn heartbeat(&self) -> std::time::Duration {
        *self
            .shared
            .heartbeat
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Admits only workers presenting one of `tokens`.
    pub(crate) fn require_tokens(&self, tokens: crate::Tokens) {
        *self
            .shared
            .tokens
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = tokens;
    }

    /// Whether `token` admits a worker.
    pub(crate) fn admits(&self, token: Option<&str>) -> bool {
        self.shared
            .tokens
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .admits(token)
    }

    /// Accepts these admin tokens on the operator's API (none: the API stays off).
    pub(crate) fn require_admin(&self, tokens: crate::Tokens) {
        *self
            .shared
            .admin
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = tokens.required().then_some(tokens);
    }

    /// Whether the operator's API is on.
    pub(crate) fn admin_required(&self) -> bool {
        self.shared
            .admin
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .is_some()
    }

    /// Whether `token` may use the operator's API: never when it is off.
    pub(crate) fn admin_admits(&self, token: Option<&str>) -> bool {
        self.shared
            .admin
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
            .is_some_and(|tokens| token.is_some() && tokens.admits(token))
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

    /// Accepts at most `count` identities from one IP address.
    pub(crate) fn set_identities_per_ip(&self, count: Option<usize>) {
        self.shared
            .identities_per_ip
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .0 = count.map(|count| count.max(1));
    }

    /// Whether identity `key` may join from `ip`: under the cap, or seen there before.
    pub(crate) fn admits_identity(&self, ip: IpAddr, key: PublicKey) -> bool {
        let mut guard = self
            .shared
            .identities_per_ip
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let (cap, seen) = &mut *guard;
        let Some(cap) = *cap else {
            return true;
        };
        let known = seen.entry(ip).or_default();
        known.contains(&key) || (known.len() < cap && known.insert(key))
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

    /// Wakes connections to look for work.
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
