//! What the driver knows of its job: which promises became which of the server's stages,
//! and the stages' results as the events stream brings them. Promises read it; the
//! background tasks ([`crate::link`]) write it and tell readers with a progress counter.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Mutex, MutexGuard, PoisonError};

use dipla_protocol::{RawJson, TaskFailure};
use tokio::sync::watch;

use crate::DriverError;
use crate::event::{BadEvent, Event};

/// A task's final outcome.
pub(crate) type Outcome = Result<Box<RawJson>, TaskFailure>;

/// What became of a promise's stage.
#[derive(Debug, Clone)]
pub(crate) enum Made {
    /// Not sent to the server yet.
    Pending,
    /// The server's stage number.
    Stage(usize),
    /// It could not be made.
    Failed(DriverError),
}

/// The results of one stage known so far.
#[derive(Debug, Default)]
pub(crate) struct Results {
    /// By task index.
    pub(crate) outcomes: BTreeMap<u64, Outcome>,
    /// Task indexes in the order their results arrived (a revoked one comes again).
    pub(crate) log: Vec<u64>,
    /// Whether every result is final.
    pub(crate) complete: bool,
    /// Why it stopped early, if it did.
    pub(crate) stopped: Option<String>,
    /// No promise reads it any more: its results are not kept.
    forgotten: bool,
}

/// The store's contents.
#[derive(Debug, Default)]
pub(crate) struct State {
    promises: Vec<Made>,
    stages: HashMap<usize, Results>,
    /// The job ended: nothing more will come.
    pub(crate) ended: bool,
}

impl State {
    /// What became of promise `id`.
    pub(crate) fn made(&self, id: usize) -> Made {
        self.promises.get(id).cloned().unwrap_or(Made::Pending)
    }

    /// The results of stage `stage` known so far.
    pub(crate) fn results(&self, stage: usize) -> Option<&Results> {
        self.stages.get(&stage)
    }
}

/// The shared store.
#[derive(Debug)]
pub(crate) struct Store {
    state: Mutex<State>,
    progress: watch::Sender<u64>,
}

impl Store {
    /// An empty store.
    pub(crate) fn new() -> Self {
        Self {
            state: Mutex::default(),
            progress: watch::channel(0).0,
        }
    }

    /// The contents, locked.
    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Notice of every change.
    pub(crate) fn subscribe(&self) -> watch::Receiver<u64> {
        self.progress.subscribe()
    }

    fn changed(&self) {
        self.progress.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// A new promise, pending; returns its id.
    pub(crate) fn promise(&self) -> usize {
        let mut state = self.lock();
        state.promises.push(Made::Pending);
        state.promises.len() - 1
    }

    /// Notes what became of promise `id`.
    pub(crate) fn settle(&self, id: usize, made: Made) {
        {
            let mut state = self.lock();
            if let Made::Stage(stage) = made {
                state.stages.entry(stage).or_default();
            }
            if let Some(slot) = state.promises.get_mut(id) {
                *slot = made;
            }
        }
        self.changed();
    }

    /// Frees the results of promise `id`'s stage: no promise reads them any more.
    pub(crate) fn forget(&self, id: usize) {
        let mut state = self.lock();
        if let Some(Made::Stage(stage)) = state.promises.get(id).cloned() {
            let results = state.stages.entry(stage).or_default();
            *results = Results {
                forgotten: true,
                ..Results::default()
            };
        }
    }

    /// Applies one event of the job.
    ///
    /// # Errors
    /// [`BadEvent::NotOneOutcome`] for a result with both an output and an error, or neither.
    pub(crate) fn apply(&self, event: Event) -> Result<(), BadEvent> {
        let mut state = self.lock();
        match event {
            Event::Result {
                stage,
                index,
                output,
                error,
            } => {
                let outcome = match (output, error) {
                    (Some(output), None) => Ok(output),
                    (None, Some(error)) => Err(error),
                    _ => return Err(BadEvent::NotOneOutcome),
                };
                let results = state.stages.entry(stage).or_default();
                if !results.forgotten {
                    results.outcomes.insert(index, outcome);
                    results.log.push(index);
                }
            }
            Event::Revoked { stage, index } => {
                let results = state.stages.entry(stage).or_default();
                results.outcomes.remove(&index);
                results.complete = false;
            }
            Event::Complete { stage, stopped } => {
                let results = state.stages.entry(stage).or_default();
                results.complete = true;
                results.stopped = stopped;
            }
            Event::Goal {} | Event::Discovered {} => return Ok(()),
        }
        drop(state);
        self.changed();
        Ok(())
    }

    /// Notes that the job ended: promises still waiting then return [`DriverError::Closed`],
    /// and promises not yet made fail with it.
    pub(crate) fn end(&self) {
        {
            let mut state = self.lock();
            state.ended = true;
            for made in &mut state.promises {
                if matches!(made, Made::Pending) {
                    *made = Made::Failed(DriverError::Closed);
                }
            }
        }
        self.changed();
    }
}
