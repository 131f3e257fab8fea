//! The driver's connection to its job on the server: three background tasks send what the
//! driver makes (in order), follow the job's events into the [`Store`], and say the driver
//! is alive. Dropping the link (the [`crate::Dipla`] and everything made from it) closes the
//! job; a driver that dies without that is noticed by the server when its heartbeats stop.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use dipla_protocol::ModuleHash;
use reqwest::StatusCode;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::api::{Api, CallError, ClientError};
use crate::event::{BadEvent, Event};
use crate::store::{Made, Store};
use crate::task::{Draft, Unmade};
use crate::{DriverError, TaskLimits};

/// How often to say the driver is alive when the server does not say.
const DEFAULT_HEARTBEAT: Duration = Duration::from_secs(15);
/// How long closing the job may take when the driver is dropped.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(5);

/// What goes up to the job, in the order the driver made it.
pub(crate) enum Up {
    /// A module's bytes.
    Module {
        /// Its hash.
        hash: ModuleHash,
        /// The driver's name for it.
        name: String,
        /// Its bytes.
        bytes: Vec<u8>,
    },
    /// A stage, for promise `promise`.
    Stage {
        /// The promise it makes.
        promise: usize,
        /// The stage.
        draft: Box<Draft>,
    },
}

/// A driver's job on a server, shared by everything made from the [`crate::Dipla`].
pub(crate) struct Link {
    pub(crate) store: Arc<Store>,
    pub(crate) id: String,
    base: String,
    token: String,
    api: Api,
    up: mpsc::UnboundedSender<Up>,
    tasks: Vec<JoinHandle<()>>,
    closed: AtomicBool,
    /// The limits a task gets unless it says otherwise.
    pub(crate) limits: TaskLimits,
    /// Failures a task may have unless it says otherwise.
    pub(crate) max_attempts: u32,
    /// How many stages each name was given to, for unique stage names.
    names: Mutex<HashMap<String, u32>>,
}

impl Link {
    /// Opens a job named `name` on the server at `base` and starts the background tasks.
    pub(crate) async fn open(
        base: &str,
        token: &str,
        name: &str,
        limits: TaskLimits,
        max_attempts: u32,
    ) -> Result<Self, DriverError> {
        let api = Api::new(base, token).map_err(|e| DriverError::Start(e.to_string()))?;
        let opened = api.open(name).await.map_err(|e| {
            DriverError::Start(format!("cannot open a job on the server at {base}: {e}"))
        })?;
        let id = opened.id;
        let events = api
            .events(&id)
            .await
            .map_err(|e| DriverError::Start(format!("cannot follow job {id}: {e}")))?;
        tracing::info!(server = %base, job = %id, "driving a job on a remote server");
        let store = Arc::new(Store::new());
        let beat = opened
            .heartbeat_ms
            .map_or(DEFAULT_HEARTBEAT, Duration::from_millis)
            .max(Duration::from_millis(10));
        let (up, rx) = mpsc::unbounded_channel();
        let tasks = vec![
            tokio::spawn(send(api.clone(), id.clone(), rx, store.clone())),
            tokio::spawn(follow(events, id.clone(), store.clone())),
            tokio::spawn(beat_heart(api.clone(), id.clone(), beat, store.clone())),
        ];
        Ok(Self {
            store,
            id,
            base: base.to_owned(),
            token: token.to_owned(),
            api,
            up,
            tasks,
            closed: AtomicBool::new(false),
            limits,
            max_attempts,
            names: Mutex::default(),
        })
    }

    /// Queues `up` to be sent.
    pub(crate) fn send(&self, up: Up) {
        if self.up.send(up).is_err() {
            // The sender stopped: the job ended, and the store says so.
            tracing::debug!(job = %self.id, "the job has ended; nothing more is sent");
        }
    }

    /// A stage name from `base`, numbered when used again.
    pub(crate) fn stage_name(&self, base: &str) -> String {
        let mut names = self.names.lock().unwrap_or_else(PoisonError::into_inner);
        let uses = names.entry(base.to_owned()).or_default();
        *uses += 1;
        if *uses == 1 {
            base.to_owned()
        } else {
            format!("{base}#{uses}")
        }
    }

    /// Closes the job and stops the background tasks; promises still waiting then return
    /// [`DriverError::Closed`].
    pub(crate) async fn close(&self) {
        if !self.closed.swap(true, Ordering::AcqRel)
            && let Err(error) = self.api.close(&self.id).await
        {
            tracing::warn!(job = %self.id, %error, "cannot close the job");
        }
        self.stop();
    }

    fn stop(&self) {
        for task in &self.tasks {
            task.abort();
        }
        self.store.end();
    }
}

impl Drop for Link {
    fn drop(&mut self) {
        self.stop();
        if self.closed.swap(true, Ordering::AcqRel) {
            return;
        }
        // The runtime may be shutting down (the end of `main`): close on a thread of our own,
        // with a client of its own, and wait for it a bounded time.
        let (base, token, id) = (self.base.clone(), self.token.clone(), self.id.clone());
        let closing = std::thread::spawn(move || {
            if let Err(error) = close(&base, &token, &id) {
                tracing::warn!(job = %id, %error, "cannot close the job; the server ends it once the driver's heartbeats stop");
            }
        });
        let _ = closing.join();
    }
}

/// Why a job could not be closed as its driver ended.
#[derive(Debug, thiserror::Error)]
enum CloseError {
    /// No runtime to make the call on.
    #[error("{0}")]
    Runtime(std::io::Error),
    /// No client to make it with.
    #[error("{0}")]
    Client(ClientError),
    /// The call failed.
    #[error("{0}")]
    Call(CallError),
    /// The server did not answer within [`CLOSE_TIMEOUT`].
    #[error("the server did not answer in time")]
    Timeout,
}

/// Closes job `id` on the server at `base`, on a runtime of its own.
fn close(base: &str, token: &str, id: &str) -> Result<(), CloseError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(CloseError::Runtime)?;
    runtime.block_on(async {
        let api = Api::new(base, token).map_err(CloseError::Client)?;
        match tokio::time::timeout(CLOSE_TIMEOUT, api.close(id)).await {
            Ok(closed) => closed.map_err(CloseError::Call),
            Err(_) => Err(CloseError::Timeout),
        }
    })
}

/// Sends what the driver makes, in order, noting what became of each stage. Stages read
/// promises by the server's numbers, known by then: each stage is answered before the next
/// is sent.
async fn send(api: Api, id: String, mut up: mpsc::UnboundedReceiver<Up>, store: Arc<Store>) {
    // Modules the server refused, and why.
    let mut refused: HashMap<ModuleHash, (String, String)> = HashMap::new();
    while let Some(item) = up.recv().await {
        match item {
            Up::Module { hash, name, bytes } => match api.module(&id, bytes).await {
                Ok(()) => {}
                Err(CallError::Refused {
                    status: StatusCode::BAD_REQUEST,
                    message,
                }) => {
                    refused.insert(hash, (name, message));
                }
                Err(error) => return lost(&id, &error, &store),
            },
            Up::Stage { promise, draft } => {
                let name = draft.name.clone();
                let invalid = |message: String| {
                    Made::Failed(DriverError::Invalid {
                        stage: name.clone(),
                        message,
                    })
                };
                if let Some((module, why)) = draft.modules().find_map(|hash| refused.get(hash)) {
                    store.settle(
                        promise,
                        invalid(format!("the server refused module {module}: {why}")),
                    );
                    continue;
                }
                let json = draft.to_json(|read| match store.lock().made(read) {
                    Made::Stage(stage) => Ok(stage),
                    Made::Failed(error) => Err(Unmade::Failed(error)),
                    Made::Pending => Err(Unmade::Pending),
                });
                let json = match json {
                    Ok(json) => json,
                    Err(error) => {
                        store.settle(promise, invalid(error.to_string()));
                        continue;
                    }
                };
                match api.stage(&id, &json).await {
                    Ok(stage) => store.settle(promise, Made::Stage(stage)),
                    Err(CallError::Refused {
                        status: StatusCode::BAD_REQUEST,
                        message,
                    }) => {
                        // The server names the stage; the error does too.
                        let prefix = format!("stage {name}: ");
                        let message = message
                            .strip_prefix(&prefix)
                            .map_or(message.clone(), str::to_owned);
                        store.settle(promise, invalid(message));
                    }
                    Err(error) => return lost(&id, &error, &store),
                }
            }
        }
    }
}

/// The job can no longer be driven: promises waiting return [`DriverError::Closed`].
fn lost(id: &str, error: &CallError, store: &Store) {
    tracing::error!(job = %id, %error, "lost the driver's job");
    store.end();
}

/// Follows the job's events into the store until the job ends.
async fn follow(mut events: reqwest::Response, id: String, store: Arc<Store>) {
    let mut partial = Vec::new();
    loop {
        let chunk = match events.chunk().await {
            Ok(Some(chunk)) => chunk,
            Ok(None) => break,
            Err(error) => {
                tracing::error!(job = %id, %error, "lost the job's events");
                break;
            }
        };
        partial.extend_from_slice(&chunk);
        let Some(at) = partial.iter().rposition(|&b| b == b'\n') else {
            continue;
        };
        let rest = partial.split_off(at + 1);
        for line in partial
            .split(|&b| b == b'\n')
            .filter(|line| !line.is_empty())
        {
            let applied = serde_json::from_slice::<Event>(line)
                .map_err(BadEvent::NotJson)
                .and_then(|event| store.apply(event));
            if let Err(error) = applied {
                tracing::error!(job = %id, %error, "the server sent an event this driver cannot read");
                store.end();
                return;
            }
        }
        partial = rest;
    }
    store.end();
}

/// Tells the server the driver is alive, every `beat`, until the job ends.
async fn beat_heart(api: Api, id: String, beat: Duration, store: Arc<Store>) {
    let mut ticks = tokio::time::interval(beat);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        match api.heartbeat(&id).await {
            Ok(()) => {}
            Err(CallError::Refused { status, message })
                if status == StatusCode::CONFLICT || status == StatusCode::NOT_FOUND =>
            {
                tracing::warn!(job = %id, %message, "the job has ended");
                store.end();
                return;
            }
            Err(error) => tracing::warn!(job = %id, %error, "cannot reach the server"),
        }
    }
}
