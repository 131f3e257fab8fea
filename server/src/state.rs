use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Instant;

use tokio::sync::{Notify, watch};

use crate::coordinator::{Coordinator, Counts, Keep};
use crate::fleet::WorkerRecord;
use crate::gate::Gate;
use crate::stats::{Stats, StatsSnapshot};
use crate::task_logs::TaskLogs;
use crate::{Job, Module, Source, Stage};

pub use crate::gate::DEFAULT_HEARTBEAT;

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
    next_worker: AtomicU64,
    /// Connected workers' names, for logs and tests.
    names: Mutex<BTreeMap<u64, String>>,
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
    /// A handle for `job`, whose stage `i`'s results `keep(i)` says who keeps, behind `gate`.
    pub(crate) fn new(job: Job, keep: impl Fn(usize) -> Keep, gate: Arc<Gate>) -> Self {
        let plans = (0..job.stages.len())
            .map(|i| job.stages[i].plan(keep(i)))
            .collect();
        let job_id = crate::journal::fingerprint(&job);
        let mut coordinator = Coordinator::new(plans);
        for (i, stage) in job.stages.iter().enumerate() {
            seed_explore(&mut coordinator, i, stage);
        }
        let shared = Shared {
            core: Mutex::new(Core {
                job,
                coordinator,
                logs: TaskLogs::default(),
            }),
            stats: Stats::default(),
            wake: watch::channel(0).0,
            done: watch::channel(false).0,
            progress: watch::channel(0).0,
            disconnected: Notify::new(),
            connections: AtomicUsize::new(0),
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
