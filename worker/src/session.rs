//! One connection to a server: hello, then tasks until goodbye.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use dipla_protocol::identity::{ReceiptEntry, join_message, receipt_message};
use dipla_protocol::{
    FailureKind, Hello, MAX_SERVER_MESSAGE_BYTES, ModuleHash, PROTOCOL_VERSION, ServerMessage,
    TaskBatch, TaskFailure, TaskResult, WorkerMessage,
};
use dipla_sandbox::abi::AbiError;
use dipla_sandbox::{Guest, Limits};
use futures_util::{SinkExt, StreamExt};
use tokio::sync::{mpsc, watch};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

use crate::executor::{Executor, Work};
use crate::polite::{PauseState, Priority};
use crate::{ModuleCache, WorkerConfig, WorkerError};

/// How long the server has to answer `hello`.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The most results sent in one message.
const MAX_RESULTS_PER_MESSAGE: usize = 1024;

/// The least time between two results messages: results finishing closer together share a
/// message, and so one receipt signature (tiny tasks finish thousands of times a second; a
/// signature costs tens of microseconds to make and to check). A result after a quiet spell
/// goes at once.
const COALESCE: Duration = Duration::from_millis(1);

/// Connects to the server in `config`, serves it until it says goodbye, and returns its
/// reason. A server running several jobs may ask the worker to come back at once (to move it
/// to another job): it connects again, and again, until a goodbye does not ask that.
///
/// # Errors
/// When the server cannot be reached, refuses the worker, breaks the protocol, or the
/// connection drops.
pub async fn run(config: &WorkerConfig, cache: &ModuleCache) -> Result<String, WorkerError> {
    run_tracked(config, cache, &mut false).await
}

/// Like [`run`], setting `connected` once a WebSocket to the server opened (so that a failure
/// afterwards is a lost connection, not a server never reached).
pub(crate) async fn run_tracked(
    config: &WorkerConfig,
    cache: &ModuleCache,
    connected: &mut bool,
) -> Result<String, WorkerError> {
    loop {
        let outcome = connect(config, cache, connected).await;
        let error = outcome.as_ref().err().map(ToString::to_string);
        config.status.disconnected(error);
        let (reason, rejoin) = match outcome? {
            Ended::Goodbye { reason, rejoin } => (reason, rejoin),
            Ended::Paused => {
                // A server that does not understand pauses: stay away until resumed.
                tracing::info!("disconnected while paused (the server cannot be told)");
                until_resumed(config.polite.pauses.clone()).await;
                continue;
            }
        };
        if !rejoin {
            return Ok(reason);
        }
        tracing::info!(%reason, "the server asked this worker to join again");
        // A little jitter, so that workers moved together do not knock at once.
        let jitter = std::hash::BuildHasher::hash_one(&std::hash::RandomState::new(), 0u8);
        tokio::time::sleep(Duration::from_millis(5 + jitter % 45)).await;
    }
}

/// How a connection ended, when it ended well.
enum Ended {
    /// The server said goodbye, with its reason and whether it asked the worker to join
    /// again.
    Goodbye { reason: String, rejoin: bool },
    /// The worker paused, and the server does not understand pauses: the worker closed the
    /// connection, and connects again when it resumes.
    Paused,
}

/// Waits until the pause monitor says the worker runs (at once without one).
async fn until_resumed(pauses: Option<watch::Receiver<PauseState>>) {
    if let Some(mut pauses) = pauses {
        // An error: the monitor stopped, and the worker runs.
        let _ = pauses.wait_for(|state| !state.is_paused()).await;
    }
}

/// The next change of the pause monitor's state (never, without one).
async fn next_pause_state(pauses: &mut Option<watch::Receiver<PauseState>>) -> PauseState {
    if let Some(watched) = pauses {
        if watched.changed().await.is_ok() {
            return watched.borrow_and_update().clone();
        }
        // The monitor stopped: nothing will change any more.
        *pauses = None;
    }
    std::future::pending().await
}

/// One connection: serves the server until it says goodbye, or until the worker pauses
/// and the server cannot be told.
async fn connect(
    config: &WorkerConfig,
    cache: &ModuleCache,
    connected: &mut bool,
) -> Result<Ended, WorkerError> {
    // Modules are the only messages that may be larger than the protocol's cap, and only as
    // large as the volunteer allows.
    let largest = MAX_SERVER_MESSAGE_BYTES.max(module_limit(config));
    let ws_config = WebSocketConfig::default()
        .max_message_size(Some(largest))
        .max_frame_size(Some(largest));
    let connector = config.tls.clone().map(tokio_tungstenite::Connector::Rustls);
    let (socket, _) = tokio_tungstenite::connect_async_tls_with_config(
        &config.server,
        Some(ws_config),
        true,
        connector,
    )
    .await
    .map_err(|error| crate::failure::connect_failure(&config.server, error))?;
    *connected = true;
    let (mut sink, mut stream) = socket.split();

    let hello = Hello {
        protocol: PROTOCOL_VERSION,
        name: config.name.clone(),
        version: env!("CARGO_PKG_VERSION").to_owned(),
        cores: u32::try_from(config.cores).unwrap_or(u32::MAX),
        max_memory_mb: u32::try_from(config.caps.memory_bytes >> 20).unwrap_or(u32::MAX),
        max_fuel: config.caps.fuel,
        max_module_mb: Some(config.max_module_mb),
        benchmark: config.benchmark.clone(),
        token: config.token.clone().map(dipla_protocol::Secret),
        identity: Some(config.identity.public()),
        agent: None,
    };
    sink.send(encode(&WorkerMessage::Hello(hello))).await?;
    let ServerMessage::Challenge { nonce } = handshake_answer(&mut stream).await? else {
        return Err(WorkerError::Protocol("expected a challenge".into()));
    };
    let proof = join_message(&nonce.0, &config.identity.public());
    let signature = config.identity.sign(&proof);
    sink.send(encode(&WorkerMessage::Proof { signature }))
        .await?;
    let welcome = handshake_answer(&mut stream).await?;
    let ServerMessage::Welcome(welcome) = welcome else {
        return Err(WorkerError::Protocol(format!(
            "expected welcome, got {welcome:?}"
        )));
    };
    tracing::info!(
        server = %config.server,
        id = welcome.worker,
        identity = %config.identity.public(),
        "joined"
    );
    let mut pauses = config.polite.pauses.clone();
    let paused = pauses
        .as_mut()
        .map(|pauses| pauses.borrow_and_update().clone())
        .filter(PauseState::is_paused);
    if paused.is_some() && !welcome.pause {
        let _ = sink.send(Message::Close(None)).await;
        return Ok(Ended::Paused);
    }
    config.status.joined(welcome.job.as_deref());
    let signer = Signer {
        identity: config.identity.clone(),
        job: welcome.job.clone().unwrap_or_default(),
        tasks: Arc::default(),
    };

    let (control, control_rx) = mpsc::channel(64);
    let (results, results_rx) = mpsc::unbounded_channel();
    let writer = tokio::spawn(write_loop(
        sink,
        control_rx,
        results_rx,
        signer.clone(),
        config.rewrite(),
        config.status.clone(),
    ));
    let executor = Executor::start(
        config.cores,
        config.throttle,
        config.polite.priority,
        config.polite.cpu_percent,
        results.clone(),
        config.status.clone(),
    )
    .map_err(|e| WorkerError::Sandbox(e.to_string()))?;
    let mut session = Session {
        priority: config.polite.priority,
        pauses,
        server_pauses: welcome.pause,
        paused: false,
        cache: cache.clone(),
        caps: config.caps,
        module_limit: module_limit(config),
        executor,
        results,
        control,
        signer,
        modules: HashMap::new(),
        events: mpsc::unbounded_channel(),
        silence: welcome
            .heartbeat_ms
            .map(|ms| Duration::from_millis(ms.max(100)).saturating_mul(3)),
    };
    if let Some(state) = paused {
        session.pause(&state).await?;
    }
    let ended = session.serve(&mut stream).await;
    drop(session);
    // Let the writer flush what is queued, then close.
    match writer.await {
        Ok(Ok(())) | Err(_) => {}
        Ok(Err(error)) => tracing::debug!(%error, "writer ended with an error"),
    }
    ended
}

type Stream = futures_util::stream::SplitStream<
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>,
>;
type Sink = futures_util::stream::SplitSink<
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>,
    Message,
>;

/// What a module hash stands for on this connection.
enum Slot {
    /// Being loaded from the cache or fetched; these batches wait for it.
    Pending {
        batches: Vec<TaskBatch>,
        requested: bool,
    },
    Ready(Guest),
    Rejected(TaskFailure),
}

/// The outcome of looking a module up or compiling it, off the async runtime.
enum Event {
    Loaded(ModuleHash, Option<Guest>),
    Compiled(ModuleHash, Result<Guest, AbiError>),
}

struct Session {
    /// The priority modules are compiled at.
    priority: Priority,
    /// The pause monitor's state, if one runs.
    pauses: Option<watch::Receiver<PauseState>>,
    /// Whether the server understands `pause` and `resume`.
    server_pauses: bool,
    /// Whether the worker is paused: it runs nothing, and drops batches sent before the
    /// server heard of the pause (the server gave them to others).
    paused: bool,
    cache: ModuleCache,
    caps: Limits,
    /// The largest module, in bytes, this worker compiles.
    module_limit: usize,
    executor: Executor,
    results: mpsc::UnboundedSender<TaskResult>,
    control: mpsc::Sender<WorkerMessage>,
    signer: Signer,
    modules: HashMap<ModuleHash, Slot>,
    events: (mpsc::UnboundedSender<Event>, mpsc::UnboundedReceiver<Event>),
    /// How long the server may stay silent before the connection is taken for dead (three
    /// of its heartbeats; `None` when it does not say it pings).
    silence: Option<Duration>,
}

impl Session {
    async fn serve(&mut self, stream: &mut Stream) -> Result<Ended, WorkerError> {
        let silence = self.silence;
        loop {
            tokio::select! {
                message = next_frame_within(stream, silence) => match message? {
                    Frame::Message(ServerMessage::Tasks(_)) if self.paused => {}
                    Frame::Message(ServerMessage::Tasks(batch)) => self.on_batch(batch),
                    Frame::Message(ServerMessage::Goodbye { reason, rejoin }) => {
                        return Ok(Ended::Goodbye { reason, rejoin });
                    }
                    Frame::Message(ServerMessage::Cancel { ids }) => self.on_cancel(&ids),
                    Frame::Message(other) => {
                        return Err(WorkerError::Protocol(format!("unexpected {other:?}")));
                    }
                    Frame::Module(bytes) => self.on_module(bytes)?,
                },
                Some(event) = self.events.1.recv() => self.on_event(event).await?,
                state = next_pause_state(&mut self.pauses) => {
                    if state.is_paused() && !self.paused {
                        if !self.server_pauses {
                            self.stop_everything();
                            return Ok(Ended::Paused);
                        }
                        self.pause(&state).await?;
                    } else if !state.is_paused() && self.paused {
                        self.paused = false;
                        self.control.send(WorkerMessage::Resume {}).await.map_err(|_| closed())?;
                    }
                }
            }
        }
    }

    /// Pauses: stops every task and tells the server, which gives them to other workers.
    async fn pause(&mut self, state: &PauseState) -> Result<(), WorkerError> {
        self.paused = true;
        self.stop_everything();
        let pause = WorkerMessage::Pause {
            reason: state.reason(),
        };
        self.control.send(pause).await.map_err(|_| closed())
    }

    /// Interrupts the running tasks (within one epoch tick) and drops the queued ones and
    /// those waiting for their module; no result goes out for any of them.
    fn stop_everything(&mut self) {
        for slot in self.modules.values_mut() {
            if let Slot::Pending { batches, .. } = slot {
                batches.clear();
            }
        }
        self.executor.cancel_all();
    }

    fn on_batch(&mut self, batch: TaskBatch) {
        let hash = batch.module;
        match self.modules.get_mut(&hash) {
            Some(Slot::Ready(guest)) => {
                let guest = guest.clone();
                self.submit(&guest, batch);
            }
            Some(Slot::Pending { batches, .. }) => batches.push(batch),
            Some(Slot::Rejected(failure)) => {
                let failure = failure.clone();
                self.fail(batch, &failure);
            }
            None => {
                self.modules.insert(
                    hash,
                    Slot::Pending {
                        batches: vec![batch],
                        requested: false,
                    },
                );
                let (cache, events) = (self.cache.clone(), self.events.0.clone());
                tokio::task::spawn_blocking(move || {
                    let _ = events.send(Event::Loaded(hash, cache.get(&hash)));
                });
            }
        }
    }

    /// Cancels tasks, whether queued, running or still waiting for their module.
    fn on_cancel(&mut self, ids: &[u64]) {
        for slot in self.modules.values_mut() {
            if let Slot::Pending { batches, .. } = slot {
                for batch in batches.iter_mut() {
                    batch.tasks.retain(|task| !ids.contains(&task.id));
                }
            }
        }
        self.executor.cancel(ids);
    }

    fn on_module(&mut self, bytes: Vec<u8>) -> Result<(), WorkerError> {
        let hash = ModuleHash::of(&bytes);
        match self.modules.get_mut(&hash) {
            Some(Slot::Pending {
                requested: requested @ true,
                ..
            }) => *requested = false,
            _ => {
                return Err(WorkerError::Protocol(format!(
                    "received module {hash}, which this worker did not ask for"
                )));
            }
        }
        tracing::debug!(%hash, bytes = bytes.len(), "received module");
        let (cache, events) = (self.cache.clone(), self.events.0.clone());
        let limit = self.module_limit;
        let priority = self.priority;
        tokio::task::spawn_blocking(move || {
            let compiled = if bytes.len() > limit {
                Err(AbiError::TooLarge {
                    bytes: bytes.len(),
                    limit,
                })
            } else {
                // Compiling is CPU-heavy: as polite as running tasks.
                priority.run(|| cache.insert(&hash, &bytes))
            };
            let _ = events.send(Event::Compiled(hash, compiled));
        });
        Ok(())
    }

    async fn on_event(&mut self, event: Event) -> Result<(), WorkerError> {
        let (hash, outcome) = match event {
            Event::Loaded(hash, Some(guest)) => (hash, Ok(guest)),
            Event::Loaded(hash, None) => {
                if let Some(Slot::Pending { requested, .. }) = self.modules.get_mut(&hash) {
                    *requested = true;
                }
                let fetch = WorkerMessage::FetchModule { hashes: vec![hash] };
                return self.control.send(fetch).await.map_err(|_| closed());
            }
            Event::Compiled(hash, outcome) => (hash, outcome),
        };
        let slot = match outcome {
            Ok(guest) => Slot::Ready(guest),
            Err(error) => {
                tracing::warn!(%hash, %error, "refusing module");
                let message = format!("module {hash} refused: {error}");
                Slot::Rejected(TaskFailure {
                    kind: FailureKind::Rejected,
                    message,
                })
            }
        };
        let Some(Slot::Pending { batches, .. }) = self.modules.insert(hash, slot) else {
            return Ok(());
        };
        for batch in batches {
            self.on_batch(batch);
        }
        Ok(())
    }

    fn submit(&self, guest: &Guest, batch: TaskBatch) {
        let limits = Limits::from_task(&batch.limits).min(self.caps);
        let export: Arc<str> = batch.export.into();
        self.signer.expect(batch.module, &batch.tasks);
        for item in batch.tasks {
            let work = Work {
                guest: guest.clone(),
                export: export.clone(),
                limits,
                item,
            };
            self.executor.submit(work);
        }
    }

    fn fail(&self, batch: TaskBatch, failure: &TaskFailure) {
        // Failures are signed like outputs.
        self.signer.expect(batch.module, &batch.tasks);
        for item in batch.tasks {
            let _ = self
                .results
                .send(TaskResult::failure(item.id, 0, 0, failure.clone()));
        }
    }
}

/// Signs the receipts of this connection's results: it remembers each task's module and
/// input digest from when the task arrived until its result goes out.
#[derive(Clone)]
struct Signer {
    identity: Arc<crate::Identity>,
    job: String,
    tasks: Arc<Mutex<HashMap<u64, Expected>>>,
}

/// A task's module and input digest, as its receipt will name them.
type Expected = (ModuleHash, [u8; 32]);

impl Signer {
    /// Remembers what `tasks` of `module` are.
    fn expect(&self, module: ModuleHash, tasks: &[dipla_protocol::TaskItem]) {
        let mut known = self.tasks.lock().unwrap_or_else(PoisonError::into_inner);
        for task in tasks {
            known.insert(task.id, (module, ReceiptEntry::digest(task.input.get())));
        }
    }

    /// The signature over the receipt of `results`, outputs and failures alike (`None` for
    /// results of tasks it does not know).
    fn receipt(&self, results: &[TaskResult]) -> Option<dipla_protocol::Signature> {
        let mut known = self.tasks.lock().unwrap_or_else(PoisonError::into_inner);
        let entries: Vec<ReceiptEntry> = results
            .iter()
            .filter_map(|result| {
                let (module, input) = known.remove(&result.id)?;
                Some(ReceiptEntry {
                    id: result.id,
                    module,
                    input,
                    output: ReceiptEntry::outcome_digest(result.outcome()?),
                    fuel: result.fuel,
                })
            })
            .collect();
        drop(known);
        (!entries.is_empty()).then(|| self.identity.sign(&receipt_message(&self.job, &entries)))
    }
}

/// The largest module, in bytes, the volunteer lets this worker take.
fn module_limit(config: &WorkerConfig) -> usize {
    dipla_protocol::module_limit_bytes(config.max_module_mb)
}

fn closed() -> WorkerError {
    WorkerError::Closed("the connection's writer stopped".to_owned())
}

enum Frame {
    Message(ServerMessage),
    Module(Vec<u8>),
}

/// The next message or module, answering pings on the way.
async fn next_frame(stream: &mut Stream) -> Result<Frame, WorkerError> {
    next_frame_within(stream, None).await
}

/// Like [`next_frame`], failing when no frame at all (pings included) arrives within
/// `silence`.
async fn next_frame_within(
    stream: &mut Stream,
    silence: Option<Duration>,
) -> Result<Frame, WorkerError> {
    loop {
        let next = match silence {
            Some(limit) => tokio::time::timeout(limit, stream.next())
                .await
                .map_err(|_| WorkerError::Timeout(limit))?,
            None => stream.next().await,
        };
        let frame =
            next.ok_or_else(|| WorkerError::Closed("the connection ended".to_owned()))??;
        match frame {
            Message::Text(text) => {
                return serde_json::from_str(&text)
                    .map(Frame::Message)
                    .map_err(|e| WorkerError::Protocol(format!("bad message: {e}")));
            }
            Message::Binary(bytes) => return Ok(Frame::Module(bytes.into())),
            Message::Close(frame) => {
                let policy = frame.as_ref().is_some_and(|f| f.code == CloseCode::Policy);
                let reason =
                    frame.map_or_else(|| "no reason given".to_owned(), |f| f.reason.to_string());
                return Err(if policy {
                    WorkerError::Refused(reason)
                } else {
                    WorkerError::Closed(reason)
                });
            }
            Message::Ping(_) | Message::Pong(_) | Message::Frame(_) => {}
        }
    }
}

/// The server's next message during the handshake, which it must send in time.
async fn handshake_answer(stream: &mut Stream) -> Result<ServerMessage, WorkerError> {
    tokio::time::timeout(HANDSHAKE_TIMEOUT, next_message(stream))
        .await
        .map_err(|_| WorkerError::Timeout(HANDSHAKE_TIMEOUT))?
}

async fn next_message(stream: &mut Stream) -> Result<ServerMessage, WorkerError> {
    match next_frame(stream).await? {
        Frame::Message(message) => Ok(message),
        Frame::Module(_) => Err(WorkerError::Protocol("unexpected binary frame".to_owned())),
    }
}

fn encode(message: &WorkerMessage) -> Message {
    // Serialising these types cannot fail: every map key is a string.
    Message::text(serde_json::to_string(message).unwrap_or_default())
}

/// Sends control messages and batches of results until both channels close, then closes.
async fn write_loop(
    mut sink: Sink,
    mut control: mpsc::Receiver<WorkerMessage>,
    mut results: mpsc::UnboundedReceiver<TaskResult>,
    signer: Signer,
    tamper: Option<crate::config::Rewrite>,
    status: crate::Status,
) -> Result<(), WorkerError> {
    let mut last_results = tokio::time::Instant::now();
    loop {
        let message = tokio::select! {
            biased;
            Some(message) = control.recv() => message,
            Some(first) = results.recv() => {
                let mut batch = vec![first];
                let until = last_results + COALESCE;
                loop {
                    while batch.len() < MAX_RESULTS_PER_MESSAGE {
                        match results.try_recv() {
                            Ok(result) => batch.push(result),
                            Err(_) => break,
                        }
                    }
                    if batch.len() >= MAX_RESULTS_PER_MESSAGE {
                        break;
                    }
                    match tokio::time::timeout_at(until, results.recv()).await {
                        Ok(Some(result)) => batch.push(result),
                        Ok(None) | Err(_) => break,
                    }
                }
                last_results = tokio::time::Instant::now();
                for result in &mut batch {
                    if let Some(error) = result.error.take() {
                        result.error = Some(error.bounded());
                    }
                }
                if let Some(tamper) = &tamper {
                    batch.iter_mut().for_each(|result| tamper(result));
                }
                let failed = batch.iter().filter(|result| result.error.is_some()).count();
                status.results(batch.len() as u64, failed as u64);
                let receipt = signer.receipt(&batch);
                WorkerMessage::Results { results: batch, receipt }
            }
            else => break,
        };
        sink.send(encode(&message)).await?;
    }
    sink.close().await?;
    Ok(())
}
