//! Promises: the results of a stage, before and after they exist.

use std::collections::VecDeque;
use std::sync::Arc;

use futures_util::Stream;
use serde::de::DeserializeOwned;

use crate::DriverError;
use crate::link::Link;
use crate::store::{Made, Outcome, State};
use crate::task::Read;

/// The outputs of a stage, one per task in input order, available as they complete. Cheap
/// to clone; the stage's results are kept while any clone lives.
#[derive(Clone)]
pub struct Promise {
    shared: Arc<Shared>,
}

struct Shared {
    link: Arc<Link>,
    name: String,
    id: usize,
}

impl Drop for Shared {
    fn drop(&mut self) {
        self.link.store.forget(self.id);
    }
}

impl std::fmt::Debug for Promise {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Promise")
            .field("stage", &self.shared.name)
            .finish_non_exhaustive()
    }
}

/// Where a promise's stage is, read under the store's lock.
enum Now {
    /// Not made yet, or its results are still coming.
    Waiting,
    /// Every result is final.
    Complete(usize),
}

impl Promise {
    pub(crate) fn new(link: Arc<Link>, name: String) -> Self {
        let id = link.store.promise();
        Self {
            shared: Arc::new(Shared { link, name, id }),
        }
    }

    pub(crate) fn id(&self) -> usize {
        self.shared.id
    }

    /// This promise, for a stage that reads it.
    pub(crate) fn read(&self) -> Read {
        Read {
            promise: self.shared.id,
            name: self.shared.name.clone(),
        }
    }

    /// Notes that the stage could not be made, and why.
    pub(crate) fn fail(&self, message: String) {
        let error = DriverError::Invalid {
            stage: self.shared.name.clone(),
            message,
        };
        self.shared
            .link
            .store
            .settle(self.shared.id, Made::Failed(error));
    }

    /// The stage's name.
    pub fn name(&self) -> &str {
        &self.shared.name
    }

    fn now(&self, state: &State) -> Result<Now, DriverError> {
        match state.made(self.shared.id) {
            Made::Failed(error) => Err(error),
            Made::Stage(stage) if state.results(stage).is_some_and(|r| r.complete) => {
                Ok(Now::Complete(stage))
            }
            _ if state.ended => Err(DriverError::Closed),
            _ => Ok(Now::Waiting),
        }
    }

    /// Waits until every result of the stage is final (for a stage that stopped early: until
    /// it stopped); returns the server's stage number.
    async fn complete(&self) -> Result<usize, DriverError> {
        let store = &self.shared.link.store;
        let mut progress = store.subscribe();
        loop {
            progress.borrow_and_update();
            if let Now::Complete(stage) = self.now(&store.lock())? {
                return Ok(stage);
            }
            if progress.changed().await.is_err() {
                return Err(DriverError::Closed);
            }
        }
    }

    /// Waits until every result of the stage is final (for a stage that stopped early: until
    /// it stopped).
    ///
    /// # Errors
    /// The error that kept the stage from being made ([`DriverError::Invalid`]), or
    /// [`DriverError::Closed`] when the job ended first.
    pub async fn wait(&self) -> Result<(), DriverError> {
        self.complete().await.map(drop)
    }

    /// Waits for every output and returns them in input order, each decoded as `T`: `T` is
    /// the type of ONE output (what the task returns), and the answer is a `Vec<T>`.
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
        let stage = self.complete().await?;
        let outcomes: Vec<(u64, Outcome)> = {
            let state = self.shared.link.store.lock();
            state
                .results(stage)
                .map(|results| {
                    results
                        .outcomes
                        .iter()
                        .map(|(&index, outcome)| (index, outcome.clone()))
                        .collect()
                })
                .unwrap_or_default()
        };
        Ok(outcomes
            .into_iter()
            .map(|(index, outcome)| (index, self.decode(index, outcome)))
            .collect())
    }

    /// The results as they complete, each with its task's index: a failed task is an `Err`
    /// item and the stream goes on. It ends once every result is final.
    ///
    /// The stream is not `Unpin`: pin it (`std::pin::pin!`) and read it with
    /// `futures_util::StreamExt::next`, as the README shows.
    pub fn stream<T: DeserializeOwned + Send + 'static>(
        &self,
    ) -> impl Stream<Item = Result<(u64, T), DriverError>> + Send + 'static {
        struct Cursor {
            promise: Promise,
            seen: usize,
            buffer: VecDeque<(u64, Outcome)>,
            progress: tokio::sync::watch::Receiver<u64>,
            over: bool,
        }
        let cursor = Cursor {
            promise: self.clone(),
            seen: 0,
            buffer: VecDeque::new(),
            progress: self.shared.link.store.subscribe(),
            over: false,
        };
        futures_util::stream::unfold(cursor, |mut cursor| async move {
            loop {
                if let Some((index, outcome)) = cursor.buffer.pop_front() {
                    let item = cursor.promise.decode(index, outcome).map(|v| (index, v));
                    return Some((item, cursor));
                }
                if cursor.over {
                    return None;
                }
                cursor.progress.borrow_and_update();
                let now = {
                    let state = cursor.promise.shared.link.store.lock();
                    let now = cursor.promise.now(&state);
                    if let Made::Stage(stage) = state.made(cursor.promise.shared.id)
                        && let Some(results) = state.results(stage)
                    {
                        for index in results.log.iter().skip(cursor.seen) {
                            if let Some(outcome) = results.outcomes.get(index) {
                                cursor.buffer.push_back((*index, outcome.clone()));
                            }
                        }
                        cursor.seen = results.log.len();
                    }
                    now
                };
                if !cursor.buffer.is_empty() {
                    continue;
                }
                match now {
                    Ok(Now::Complete(_)) => return None,
                    Err(error) => {
                        cursor.over = true;
                        return Some((Err(error), cursor));
                    }
                    Ok(Now::Waiting) => {
                        if cursor.progress.changed().await.is_err() {
                            cursor.over = true;
                            return Some((Err(DriverError::Closed), cursor));
                        }
                    }
                }
            }
        })
    }

    /// Whether every result of the stage is final now (never waits).
    pub fn is_complete(&self) -> bool {
        matches!(
            self.now(&self.shared.link.store.lock()),
            Ok(Now::Complete(_))
        )
    }

    /// Why the stage stopped early, if it met its goal (`Flow::Stop`).
    pub fn stopped(&self) -> Option<String> {
        let state = self.shared.link.store.lock();
        match state.made(self.shared.id) {
            Made::Stage(stage) => state.results(stage)?.stopped.clone(),
            _ => None,
        }
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

    /// Waits for the folded value and decodes it as `T` (the type of the one value, not a
    /// `Vec`).
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
