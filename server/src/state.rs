use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use tokio::sync::{Notify, watch};

use crate::Job;
use crate::coordinator::{Coordinator, Counts};
use crate::stats::{Stats, StatsSnapshot};

/// Everything the connections and the result writer share. Cheap to clone.
#[derive(Clone)]
pub struct Handle {
    pub(crate) shared: Arc<Shared>,
}

pub(crate) struct Shared {
    pub(crate) job: Job,
    // A std mutex: it is never held across an await, and every critical section is short.
    coordinator: Mutex<Coordinator>,
    pub(crate) stats: Stats,
    /// Bumped when tasks go back on the queue, so idle connections look for work.
    pub(crate) wake: watch::Sender<u64>,
    /// Set once every result is written: connections say goodbye.
    pub(crate) done: watch::Sender<bool>,
    /// Signalled when results may be ready to write.
    pub(crate) progress: Notify,
    /// Signalled when a connection ends.
    pub(crate) disconnected: Notify,
    pub(crate) connections: AtomicUsize,
    next_worker: AtomicU64,
    /// Connected workers' names, for logs and tests.
    names: Mutex<BTreeMap<u64, String>>,
}

/// A connected worker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkerSummary {
    /// The server's id for the connection.
    pub id: u64,
    /// The name the worker gave.
    pub name: String,
    /// How many tasks it is running.
    pub running: usize,
}

impl Handle {
    pub(crate) fn new(job: Job) -> Self {
        let plans = job.stages.iter().map(crate::Stage::plan).collect();
        let mut coordinator = Coordinator::new(plans);
        for (i, stage) in job.stages.iter().enumerate() {
            if let (Some(_), crate::Source::List(inputs)) = (stage.explore, &stage.source) {
                coordinator.seed(i, (0..inputs.len()).map(|n| inputs.get(n).get().to_owned()));
            }
        }
        let shared = Shared {
            job,
            coordinator: Mutex::new(coordinator),
            stats: Stats::default(),
            wake: watch::channel(0).0,
            done: watch::channel(false).0,
            progress: Notify::new(),
            disconnected: Notify::new(),
            connections: AtomicUsize::new(0),
            next_worker: AtomicU64::new(1),
            names: Mutex::default(),
        };
        Self {
            shared: Arc::new(shared),
        }
    }

    pub(crate) fn coordinator(&self) -> MutexGuard<'_, Coordinator> {
        // Every coordinator method leaves it consistent before it could panic.
        self.shared
            .coordinator
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
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
        let coordinator = self.coordinator();
        names
            .into_iter()
            .map(|(id, name)| WorkerSummary {
                id,
                name,
                running: coordinator.running_on(id),
            })
            .collect()
    }

    /// Wakes connections to look for work that went back on the queue.
    pub(crate) fn wake_all(&self) {
        self.shared.wake.send_modify(|generation| *generation += 1);
    }

    /// The job being run.
    pub fn job(&self) -> &Job {
        &self.shared.job
    }

    /// Traffic counters.
    pub fn stats(&self) -> StatsSnapshot {
        self.shared.stats.snapshot()
    }

    /// Task counters.
    pub fn counts(&self) -> Counts {
        self.coordinator().counts()
    }

    /// How many results of stage `stage` are final.
    pub fn stage_done(&self, stage: usize) -> u64 {
        self.coordinator().done(stage)
    }

    /// How many tasks are running now.
    pub fn running(&self) -> usize {
        self.coordinator().running()
    }

    /// How many tasks worker `id` is running now.
    pub fn running_on(&self, id: u64) -> usize {
        self.coordinator().running_on(id)
    }

    /// How many workers are connected now.
    pub fn connected(&self) -> usize {
        self.shared.connections.load(Ordering::Relaxed)
    }
}
