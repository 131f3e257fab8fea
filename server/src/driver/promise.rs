//! Promises: the results of a stage, before and after they exist.

use std::collections::VecDeque;
use std::sync::Arc;

use futures_util::Stream;
use serde::de::DeserializeOwned;

use crate::DriverError;
use crate::driver::Inner;
use crate::manifest::stage_error::StageError;
use dipla_core::Outcome;

/// The outputs of a stage, one per task in input order, available as they complete. Cheap
/// to clone; the stage's results are kept while any clone lives.
#[derive(Clone)]
pub struct Promise {
    shared: Arc<Shared>,
}

struct Shared {
    inner: Arc<Inner>,
    name: String,
    stage: Result<usize, DriverError>,
}

impl Drop for Shared {
    fn drop(&mut self) {
        if let Ok(stage) = self.stage {
            self.inner.handle.lock().coordinator.release_stage(stage);
        }
    }
}

impl std::fmt::Debug for Promise {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Promise")
            .field("stage", &self.shared.name)
            .finish_non_exhaustive()
    }
}

impl Promise {
    pub(crate) fn new(inner: Arc<Inner>, name: String, stage: Result<usize, DriverError>) -> Self {
        Self {
            shared: Arc::new(Shared { inner, name, stage }),
        }
    }

    /// The stage's name.
    pub fn name(&self) -> &str {
        &self.shared.name
    }

    /// The stage, for a stage about to read it; a promise that could not be made makes the
    /// reader fail too, saying why.
    pub(crate) fn stage_for_reading(&self) -> Result<usize, StageError> {
        self.shared
            .stage
            .clone()
            .map_err(|error| StageError::Unmade {
                stage: self.shared.name.clone(),
                error,
            })
    }

    fn stage(&self) -> Result<usize, DriverError> {
        self.shared.stage.clone()
    }

    /// Waits until every result of the stage is final (for a stage that stopped early: until
    /// it stopped).
    ///
    /// # Errors
    /// The error that kept the stage from being made, or [`DriverError::Closed`].
    pub async fn wait(&self) -> Result<(), DriverError> {
        let stage = self.stage()?;
        let handle = &self.shared.inner.handle;
        let mut progress = handle.shared.progress.subscribe();
        let mut done = handle.shared.done.subscribe();
        loop {
            progress.borrow_and_update();
            if handle.lock().coordinator.is_stage_complete(stage) {
                return Ok(());
            }
            if *done.borrow_and_update() {
                return Err(DriverError::Closed);
            }
            tokio::select! {
                changed = progress.changed() => if changed.is_err() { return Err(DriverError::Closed) },
                changed = done.changed() => if changed.is_err() { return Err(DriverError::Closed) },
            }
        }
    }

    /// Waits for every output and returns them in input order, decoded as `T`.
    ///
    /// # Errors
    /// The first failed task in input order ([`DriverError::Task`]), an output that is not a
    /// `T` ([`DriverError::Decode`]), or what [`Promise::wait`] returns.
    pub async fn get<T: DeserializeOwned>(&self) -> Result<Vec<T>, DriverError> {
        self.outcomes()
            .await?
            .into_iter()
            .map(|(_, outcome)| outcome)
            .collect()
    }

    /// Waits for every result and returns each task's index and outcome, in input order, so
    /// that failures do not hide the outputs that succeeded. A stage that stopped early has
    /// no result for the tasks it never ran.
    ///
    /// # Errors
    /// What [`Promise::wait`] returns.
    pub async fn outcomes<T: DeserializeOwned>(
        &self,
    ) -> Result<Vec<(u64, Result<T, DriverError>)>, DriverError> {
        self.wait().await?;
        let stage = self.stage()?;
        let outcomes: Vec<(u64, Outcome)> = {
            let core = self.shared.inner.handle.lock();
            core.coordinator
                .results(stage)
                .map(|(index, outcome)| (index, outcome.clone()))
                .collect()
        };
        Ok(outcomes
            .into_iter()
            .map(|(index, outcome)| (index, self.decode(index, outcome)))
            .collect())
    }

    /// The results as they complete, each with its task's index: a failed task is an `Err`
    /// item and the stream goes on. It ends once every result is final.
    pub fn stream<T: DeserializeOwned + Send + 'static>(
        &self,
    ) -> impl Stream<Item = Result<(u64, T), DriverError>> + Send + 'static {
        struct State {
            promise: Promise,
            cursor: usize,
            buffer: VecDeque<(u64, Outcome)>,
            progress: tokio::sync::watch::Receiver<u64>,
            done: tokio::sync::watch::Receiver<bool>,
            over: bool,
        }
        let handle = &self.shared.inner.handle;
        let state = State {
            promise: self.clone(),
            cursor: 0,
            buffer: VecDeque::new(),
            progress: handle.shared.progress.subscribe(),
            done: handle.shared.done.subscribe(),
            over: false,
        };
        futures_util::stream::unfold(state, |mut state| async move {
            loop {
                if let Some((index, outcome)) = state.buffer.pop_front() {
                    let item = state.promise.decode(index, outcome).map(|v| (index, v));
                    return Some((item, state));
                }
                if state.over {
                    return None;
                }
                let stage = match state.promise.stage() {
                    Ok(stage) => stage,
                    Err(error) => {
                        state.over = true;
                        return Some((Err(error), state));
                    }
                };
                state.progress.borrow_and_update();
                let complete = {
                    let core = state.promise.shared.inner.handle.lock();
                    let log = core.coordinator.log(stage);
                    for &index in &log[state.cursor..] {
                        if let Some(outcome) = core.coordinator.result_of(stage, index) {
                            state.buffer.push_back((index, outcome.clone()));
                        }
                    }
                    state.cursor = log.len();
                    core.coordinator.is_stage_complete(stage)
                };
                if !state.buffer.is_empty() {
                    continue;
                }
                if complete {
                    return None;
                }
                if *state.done.borrow_and_update() {
                    state.over = true;
                    return Some((Err(DriverError::Closed), state));
                }
                tokio::select! {
                    _ = state.progress.changed() => {}
                    _ = state.done.changed() => {}
                }
            }
        })
    }

    /// Whether every result of the stage is final now (never waits).
    pub fn is_complete(&self) -> bool {
        self.stage().is_ok_and(|stage| {
            self.shared
                .inner
                .handle
                .lock()
                .coordinator
                .is_stage_complete(stage)
        })
    }

    /// Why the stage stopped early, if it met its goal (`Flow::Stop`).
    pub fn stopped(&self) -> Option<String> {
        let stage = self.stage().ok()?;
        let core = self.shared.inner.handle.lock();
        core.coordinator.stopped(stage).map(str::to_owned)
    }

    fn decode<T: DeserializeOwned>(&self, index: u64, outcome: Outcome) -> Result<T, DriverError> {
        let stage = || self.shared.name.clone();
        match outcome {
            Ok(output) => serde_json::from_str(output.get()).map_err(|e| DriverError::Decode {
                stage: stage(),
                index,
                expected: std::any::type_name::<T>(),
                message: e.to_string(),
            }),
            Err(failure) => Err(DriverError::Task {
                stage: stage(),
                index,
                failure,
            }),
        }
    }
}

/// The one output of a reduce.
#[derive(Clone, Debug)]
pub struct Reduced {
    promise: Promise,
}

impl Reduced {
    pub(crate) fn new(promise: Promise) -> Self {
        Self { promise }
    }

    /// The stage as a promise of one output (to map over it, or stream it).
    pub fn promise(&self) -> &Promise {
        &self.promise
    }

    /// Waits for the folded value and decodes it as `T`.
    ///
    /// # Errors
    /// The failure of a fold or of a folded task ([`DriverError::Task`]), an output that is
    /// not a `T`, or what [`Promise::wait`] returns.
    pub async fn get<T: DeserializeOwned>(&self) -> Result<T, DriverError> {
        let mut outcomes = self.promise.outcomes().await?;
        match outcomes.pop() {
            Some((_, outcome)) => outcome,
            None => Err(DriverError::Closed),
        }
    }
}
