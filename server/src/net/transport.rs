//! The WebSocket endpoint workers connect to (`/ws`), one task per connection.
//!
//! A connection is layered like the protocol: frames become typed [`WorkerMessage`]s, which
//! become coordinator events. It ends on the worker's close, on any protocol violation (with a
//! close frame giving the reason), or with a `goodbye` when the job is done.

use std::collections::HashSet;
use std::net::IpAddr;
use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, WebSocket, close_code};
use axum::extract::{ConnectInfo, State, WebSocketUpgrade};
use axum::response::{IntoResponse, Response};
use dipla_protocol::identity::join_message;
use dipla_protocol::text::printable;
use dipla_protocol::{
    Agent, MAX_PAUSE_REASON_CHARS, MAX_WORKER_MESSAGE_BYTES, Nonce, PROTOCOL_VERSION, PublicKey,
    ServerMessage, TaskBatch, TaskItem, Welcome, WorkerMessage,
};
use futures_util::{SinkExt, StreamExt};

use std::sync::Arc;

use tokio::sync::watch;

use crate::Job;
use crate::net::gate::Gate;
use crate::net::http::Peer;
use crate::net::hub::Hub;
use crate::net::receipts::Sent;
use crate::net::state::Handle;
use crate::net::verification::verification;
use crate::net::violation::Violation;
use dipla_core::Record;
use dipla_core::{Answer, Assignment, Coordinator, Departure, TaskRef};

/// The most characters of a worker's name kept (it is logged, journaled and shown).
const MAX_NAME_CHARS: usize = 64;

/// The most characters of a worker's version kept.
const MAX_VERSION_CHARS: usize = 32;

/// How long a new connection has to say hello.
const HELLO_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a worker the hub moves may take to finish its tasks before they are given to
/// others.
const DRAIN: Duration = Duration::from_secs(30);

/// Where a worker works once it has joined.
#[derive(Clone)]
pub(crate) enum Venue {
    /// The one job of `run`, or of the driver.
    Job(Handle),
    /// Whichever job of a long-running server needs it most (`serve`).
    Hub(Arc<Hub>),
}

impl Venue {
    pub(crate) fn gate(&self) -> Arc<Gate> {
        match self {
            Self::Job(handle) => handle.shared.gate.clone(),
            Self::Hub(hub) => hub.gate().clone(),
        }
    }

    /// Tells every connection the server is stopping: they say goodbye.
    pub(crate) fn finish(&self) {
        match self {
            Self::Job(handle) => handle.shared.done.send_replace(true),
            Self::Hub(hub) => hub.done.send_replace(true),
        };
    }

    /// Waits until no worker is connected.
    pub(crate) async fn emptied(&self) {
        match self {
            Self::Job(handle) => {
                while handle.connected() > 0 {
                    let closed = handle.shared.disconnected.notified();
                    if handle.connected() == 0 {
                        break;
                    }
                    closed.await;
                }
                // ...and their closing handshakes.
                while handle.gate().joined() > 0 {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            }
            Self::Hub(hub) => {
                while hub.gate().joined() > 0 {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
        }
    }
}

/// Each connection's read and write buffers. Tungstenite's default, 128 KiB each, made an idle
/// connection cost the server about 110 KiB; a larger message is still read whole, in several
/// reads.
const SOCKET_BUFFER_BYTES: usize = 2 << 10;

/// The router for the worker endpoint.
pub(crate) fn router(venue: Venue) -> axum::Router {
    axum::Router::new()
        .route("/ws", axum::routing::get(upgrade))
        .with_state(venue)
}

async fn upgrade(
    ws: WebSocketUpgrade,
    State(venue): State<Venue>,
    ConnectInfo(Peer(peer)): ConnectInfo<Peer>,
) -> Response {
    if venue.gate().door.crowded() {
        // The connections left are kept for the health check, the API and the dashboard.
        let busy = axum::http::StatusCode::SERVICE_UNAVAILABLE;
        return (busy, "too many connections; try again later").into_response();
    }
    ws.max_message_size(MAX_WORKER_MESSAGE_BYTES)
        .max_frame_size(MAX_WORKER_MESSAGE_BYTES)
        .read_buffer_size(SOCKET_BUFFER_BYTES)
        .write_buffer_size(SOCKET_BUFFER_BYTES)
        .on_upgrade(move |socket| connection(socket, venue, peer.ip()))
}

/// How long a closing connection waits for the worker's close frame.
const CLOSE_WAIT: Duration = Duration::from_secs(2);

/// Why a connection ended.
enum End {
    /// The job is done; say goodbye.
    Done,
    /// The worker went away.
    Gone,
    /// The worker broke the protocol; close saying how.
    Violation(Violation),
    /// The hub wants the worker in another job, and it has finished its tasks here.
    Moved,
    /// Come back at once (to be seated in a job), for this reason.
    Rejoin(&'static str),
}

/// A worker that said a valid hello and proved its identity.
struct Joined {
    hello: dipla_protocol::Hello,
    key: PublicKey,
    /// The cores it claimed, capped by the server (`--max-cores-per-worker`).
    cores: usize,
    /// Where it connected from.
    ip: IpAddr,
}

impl Joined {
    /// Whether it is a browser (the `/volunteer` page).
    fn browser(&self) -> bool {
        self.hello.agent == Some(Agent::Browser)
    }
}

async fn connection(socket: WebSocket, venue: Venue, ip: IpAddr) {
    let gate = venue.gate();
    let (mut sink, mut stream) = socket.split();
    let mut admitted = false;
    let end = match admit(&gate, &mut sink, &mut stream, ip).await {
        Err(end) => end,
        Ok(joined) => {
            admitted = true;
            match &venue {
                Venue::Job(handle) => attend(handle, &joined, &mut sink, &mut stream, None).await,
                // An identity the server distrusts takes no seat (its cores would count
                // towards a job's share): it waits in the lobby, not told, for good.
                Venue::Hub(hub) if distrusted(hub, &joined.key) => {
                    lobby(hub, &mut sink, &mut stream, false, joined.browser()).await
                }
                Venue::Hub(hub) => match hub.seat(joined.cores, joined.browser()) {
                    Some(seat) => {
                        let mut leave = seat.leave.clone();
                        let end = attend(
                            &seat.handle,
                            &joined,
                            &mut sink,
                            &mut stream,
                            Some(&mut leave),
                        )
                        .await;
                        drop(seat);
                        match end {
                            End::Done => End::Rejoin("the job finished"),
                            End::Moved => End::Rejoin("moved to another job"),
                            other => other,
                        }
                    }
                    None => lobby(hub, &mut sink, &mut stream, true, joined.browser()).await,
                },
            }
        }
    };
    let (code, reason) = match end {
        End::Done | End::Moved => {
            let goodbye = ServerMessage::Goodbye {
                reason: "job finished".into(),
                rejoin: false,
            };
            let _ = sink.send(Message::text(encode(&goodbye))).await;
            (close_code::NORMAL, "job finished".to_owned())
        }
        End::Rejoin(reason) => {
            let goodbye = ServerMessage::Goodbye {
                reason: reason.into(),
                rejoin: true,
            };
            let _ = sink.send(Message::text(encode(&goodbye))).await;
            (close_code::NORMAL, reason.to_owned())
        }
        End::Gone => (close_code::NORMAL, String::new()),
        End::Violation(violation) => {
            tracing::warn!(reason = %violation, "closing a worker connection");
            let code = if violation.is_too_big() {
                close_code::SIZE
            } else {
                close_code::POLICY
            };
            (code, violation.to_string())
        }
    };
    let frame = CloseFrame {
        code,
        reason: truncate(reason, 120).into(),
    };
    let _ = sink.send(Message::Close(Some(frame))).await;
    let closing = tokio::time::Instant::now();
    // The closing handshake: read until the worker closes too, so that results it sent in
    // the meantime are read rather than answered with a TCP reset, which would make it lose
    // the goodbye and try to reconnect to a finished job. Until then it still counts as
    // joined, so a server that is stopping waits for it.
    let _ = tokio::time::timeout(CLOSE_WAIT, async {
        while let Some(Ok(message)) = stream.next().await {
            if matches!(message, Message::Close(_)) {
                break;
            }
        }
    })
    .await;
    if code == close_code::SIZE {
        // The rest of the oversized message is still unread: closing the socket now would
        // answer it with a reset, which can destroy the close frame (and its reason) before
        // the peer reads it. The connection is unreadable, so it just lingers a while.
        tokio::time::sleep_until(closing + CLOSE_WAIT).await;
    }
    if admitted {
        gate.leave();
    }
}

/// Reads the hello and checks it against the gate, then the identity's proof; counts the
/// worker in.
async fn admit(
    gate: &Gate,
    sink: &mut Sink,
    stream: &mut Stream,
    ip: IpAddr,
) -> Result<Joined, End> {
    let mut hello = match tokio::time::timeout(HELLO_TIMEOUT, stream.next()).await {
        Ok(Some(Ok(Message::Text(text)))) => match serde_json::from_str(&text) {
            Ok(WorkerMessage::Hello(hello)) => hello,
            Ok(_) => return Err(End::Violation(Violation::NotHello)),
            Err(error) => return Err(End::Violation(Violation::BadHello(error))),
        },
        Ok(_) => return Err(End::Violation(Violation::HelloNotText)),
        Err(_) => return Err(End::Violation(Violation::NoHello(HELLO_TIMEOUT))),
    };
    // What the worker calls itself is logged, journaled and shown: bounded and printable
    // from here on.
    hello.name = printable(&hello.name, MAX_NAME_CHARS);
    hello.version = printable(&hello.version, MAX_VERSION_CHARS);
    if hello.protocol != PROTOCOL_VERSION {
        return Err(End::Violation(Violation::Version(hello.protocol)));
    }
    if !gate.admits(hello.token.as_ref().map(|t| t.0.as_str())) {
        tracing::warn!(name = %hello.name, "refused a worker without a valid token");
        return Err(End::Violation(Violation::Token));
    }
    let Some(key) = hello.identity else {
        return Err(End::Violation(Violation::NoIdentity));
    };
    if gate.joined() >= gate.max_workers() {
        tracing::warn!(name = %hello.name, "refused a worker: the server is full");
        return Err(End::Violation(Violation::Full(gate.max_workers())));
    }
    if !gate.admits_identity(ip, key) {
        tracing::warn!(name = %hello.name, %ip, "refused a worker: too many identities from its address");
        return Err(End::Violation(Violation::TooManyIdentities));
    }
    if let Err(why) = challenge(sink, stream, &key).await {
        tracing::warn!(name = %hello.name, identity = %key, %why, "refused a worker");
        return Err(End::Violation(why));
    }
    if !gate.enter() {
        return Err(End::Violation(Violation::Full(gate.max_workers())));
    }
    let cores = (hello.cores as usize).clamp(1, gate.max_cores());
    Ok(Joined {
        hello,
        key,
        cores,
        ip,
    })
}

/// Serves a joined worker in the job of `handle` until it leaves, the job ends, or (with
/// `leave`) the hub moves it.
async fn attend(
    handle: &Handle,
    joined: &Joined,
    sink: &mut Sink,
    stream: &mut Stream,
    leave: Option<&mut watch::Receiver<bool>>,
) -> End {
    let Joined {
        hello,
        key,
        cores,
        ip,
    } = joined;
    let caps = Caps::of(hello);
    if let Some(refused) = caps.refuse(handle.lock().job.modules.iter()) {
        return End::Violation(refused);
    }
    let agent = hello.agent.unwrap_or_default();
    if agent == Agent::Browser {
        // Each module instrumented now (once per server), or the browser refused, naming
        // the module and why.
        let modules = handle.lock().job.modules.clone();
        if let Err(refused) = handle.shared.gate.browser.refuse(modules).await {
            // Under `serve` the browser is seated anew, in a job it can run (the hub now
            // knows this one's refusal), or waits in the lobby.
            if leave.is_some() {
                tracing::info!(name = %hello.name, why = %refused, "a browser moved on from a job it cannot run");
                return End::Rejoin("this browser cannot run that job");
            }
            return End::Violation(refused);
        }
    }
    handle.shared.connections.fetch_add(1, Ordering::Relaxed);
    let id = handle.next_worker_id();
    tracing::info!(id, name = %hello.name, cores, agent = agent.name(), "worker joined");
    handle.shared.stats.joined();
    handle.named(id, Some((hello.name.clone(), agent)));
    handle.start_timer();
    let trusted = {
        let mut core = handle.lock();
        let trust = handle.shared.gate.trust();
        let shared = trust.as_ref().and_then(|trust| trust.get(&key.to_string()));
        core.trust = trust;
        core.coordinator.join(id, *cores);
        core.coordinator.place(id, &ip.to_string());
        if handle.shared.gate.is_own(key) {
            core.coordinator.own_identity(&key.to_string());
        }
        core.coordinator
            .count_addresses(handle.shared.gate.caps_identities_per_ip());
        core.coordinator
            .identify(id, &key.to_string(), shared.as_ref())
    };
    if !trusted {
        // Not told: it would only come back as someone new.
        tracing::warn!(id, name = %hello.name, identity = %key, "an untrusted identity joined; it gets no work");
    }
    if let Some(benchmark) = hello.benchmark.clone() {
        judge_benchmark(handle, id, &hello.name, benchmark).await;
    }
    let end = serve(id, *key, caps, agent, sink, stream, handle, leave).await;
    {
        let mut core = handle.lock_now();
        core.coordinator.journal_worker(id, &hello.name);
        let departure = match end {
            End::Violation(_) => Departure::Expelled,
            End::Gone => Departure::Lost,
            End::Done | End::Moved | End::Rejoin(_) => Departure::Released,
        };
        core.coordinator.depart(id, departure);
    }
    handle.named(id, None);
    handle.wake_all();
    handle.progressed();
    tracing::info!(id, name = %hello.name, "worker left");
    handle.shared.connections.fetch_sub(1, Ordering::Relaxed);
    handle.shared.disconnected.notify_waiters();
    end
}

/// Pings a worker; a browser, which cannot see pings, also gets a `heartbeat` message.
/// Whether the connection took them.
async fn ping_worker(sink: &mut Sink, browser: bool) -> bool {
    if browser {
        let heartbeat = encode(&ServerMessage::Heartbeat {});
        if sink.send(Message::text(heartbeat)).await.is_err() {
            return false;
        }
    }
    sink.send(Message::Ping(Vec::new().into())).await.is_ok()
}

/// Whether the server's trust records mark `key` untrusted.
fn distrusted(hub: &Hub, key: &PublicKey) -> bool {
    hub.gate()
        .trust()
        .is_some_and(|trust| trust.untrusted(&key.to_string()).is_some())
}

/// Keeps a worker no job needs: welcomed with no job, pinged, until a job opens (then, if
/// `rejoin`, it is asked to join again, to be seated) or the server stops.
async fn lobby(
    hub: &Hub,
    sink: &mut Sink,
    stream: &mut Stream,
    rejoin: bool,
    browser: bool,
) -> End {
    let heartbeat = hub.gate().heartbeat();
    let welcome = ServerMessage::Welcome(Welcome {
        protocol: PROTOCOL_VERSION,
        worker: 0,
        heartbeat_ms: Some(u64::try_from(heartbeat.as_millis()).unwrap_or(u64::MAX)),
        job: None,
        pause: true,
    });
    if sink.send(Message::text(encode(&welcome))).await.is_err() {
        return End::Gone;
    }
    let mut opened = hub.subscribe();
    let mut done = hub.done.subscribe();
    let mut ping = tokio::time::interval(heartbeat);
    ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut heard = tokio::time::Instant::now();
    let mut look = tokio::time::interval(Duration::from_secs(1));
    // A paused worker is not asked to take a seat until it resumes.
    let mut paused = false;
    loop {
        if *done.borrow_and_update() {
            return End::Done;
        }
        tokio::select! {
            // A job may come to need workers again (an explore stage that grew).
            _ = look.tick() => if rejoin && !paused && hub.wants_workers(browser) {
                return End::Rejoin("a job is ready");
            },
            frame = stream.next() => {
                heard = tokio::time::Instant::now();
                match frame {
                    Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
                    Some(Ok(Message::Close(_)) | Err(_)) | None => return End::Gone,
                    Some(Ok(Message::Text(text))) => match serde_json::from_str(&text) {
                        Ok(WorkerMessage::Pause { .. }) => paused = true,
                        Ok(WorkerMessage::Resume {}) => {
                            paused = false;
                            if rejoin && hub.wants_workers(browser) {
                                return End::Rejoin("a job is ready");
                            }
                        }
                        _ => return End::Violation(Violation::Lobby),
                    },
                    Some(Ok(_)) => {
                        return End::Violation(Violation::Lobby);
                    }
                }
            }
            changed = opened.changed() => match changed {
                Ok(()) if rejoin && !paused => return End::Rejoin("a job is ready"),
                Ok(()) => {}
                Err(_) => return End::Done,
            },
            _ = ping.tick() => {
                if heard.elapsed() > heartbeat.saturating_mul(3) {
                    return End::Gone;
                }
                if !ping_worker(sink, browser).await {
                    return End::Gone;
                }
            }
            changed = done.changed() => if changed.is_err() { return End::Done },
        }
    }
}

type Sink = futures_util::stream::SplitSink<WebSocket, Message>;
type Stream = futures_util::stream::SplitStream<WebSocket>;

/// Sends a fresh nonce and checks the worker's signature over it: the worker holds `key`'s
/// secret, and the proof is good for this connection only.
///
/// # Errors
/// The [`Violation`] of a worker that does not prove it holds the key, or cannot.
async fn challenge(sink: &mut Sink, stream: &mut Stream, key: &PublicKey) -> Result<(), Violation> {
    let mut nonce = [0u8; 32];
    rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut nonce);
    let challenge = ServerMessage::Challenge {
        nonce: Nonce(nonce),
    };
    sink.send(Message::text(encode(&challenge)))
        .await
        .map_err(|_| Violation::Unchallenged)?;
    let signature = match tokio::time::timeout(HELLO_TIMEOUT, stream.next()).await {
        Ok(Some(Ok(Message::Text(text)))) => match serde_json::from_str(&text) {
            Ok(WorkerMessage::Proof { signature }) => signature,
            Ok(_) => return Err(Violation::NotProof),
            Err(error) => return Err(Violation::BadProof(error)),
        },
        Ok(_) => return Err(Violation::ProofNotText),
        Err(_) => return Err(Violation::NoProof(HELLO_TIMEOUT)),
    };
    if key.verifies(&join_message(&nonce, key), &signature) {
        Ok(())
    } else {
        Err(Violation::Forged)
    }
}

#[allow(clippy::too_many_arguments)]
async fn serve(
    id: u64,
    key: PublicKey,
    caps: Caps,
    agent: Agent,
    sink: &mut Sink,
    stream: &mut Stream,
    handle: &Handle,
    mut leave: Option<&mut watch::Receiver<bool>>,
) -> End {
    let heartbeat = handle.gate().heartbeat();
    let job = handle.job_id();
    let welcome = ServerMessage::Welcome(Welcome {
        protocol: PROTOCOL_VERSION,
        worker: id,
        heartbeat_ms: Some(u64::try_from(heartbeat.as_millis()).unwrap_or(u64::MAX)),
        job: Some(job.clone()),
        pause: true,
    });
    if sink.send(Message::text(encode(&welcome))).await.is_err() {
        return End::Gone;
    }
    let mut wake = handle.shared.wake.subscribe();
    let mut done = handle.shared.done.subscribe();
    let mut modules_sent = HashSet::new();
    let mut connection = Connection {
        id,
        key,
        caps,
        agent,
        job,
        sent: Sent::default(),
    };
    let mut ping = tokio::time::interval(heartbeat);
    ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut heard = tokio::time::Instant::now();
    // Since when the hub has wanted this worker elsewhere: it gets no new tasks.
    let mut leaving: Option<tokio::time::Instant> = None;
    loop {
        if *done.borrow_and_update() {
            return End::Done;
        }
        if leaving.is_none()
            && leave
                .as_mut()
                .is_some_and(|leave| *leave.borrow_and_update())
        {
            leaving = Some(tokio::time::Instant::now());
        }
        let (messages, idle, trusted) = {
            let mut core = handle.lock_now();
            let trusted = core.coordinator.is_trusted(id);
            let assignments = match leaving {
                None => core.coordinator.assign(id),
                Some(_) => Vec::new(),
            };
            let cancels = core.take_cancels(id);
            let idle = core.coordinator.running_on(id) == 0;
            let cancel =
                (!cancels.is_empty()).then(|| encode(&ServerMessage::Cancel { ids: cancels }));
            let messages = cancel
                .into_iter()
                .chain(
                    assignments
                        .into_iter()
                        .map(|a| batch(&core.job, &core.coordinator, a, &mut connection.sent)),
                )
                .collect::<Vec<String>>();
            (messages, idle, trusted)
        };
        if !trusted && leave.is_some() && leaving.is_none() {
            // Distrusted under `serve`: give up the seat (it will wait in the lobby).
            leaving = Some(tokio::time::Instant::now());
        }
        for message in messages {
            handle.shared.stats.sent(message.len());
            if sink.send(Message::text(message)).await.is_err() {
                return End::Gone;
            }
        }
        // A leaving worker goes once its tasks are answered (or after a while: the rest
        // then run elsewhere).
        if leaving.is_some_and(|since| idle || since.elapsed() > DRAIN) {
            return End::Moved;
        }
        tokio::select! {
            frame = stream.next() => {
                heard = tokio::time::Instant::now();
                let text = match frame {
                    Some(Ok(Message::Text(text))) => text,
                    Some(Ok(Message::Binary(_))) => {
                        return End::Violation(Violation::Binary);
                    }
                    Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                    Some(Ok(Message::Close(_))) | None => return End::Gone,
                    Some(Err(error)) if too_big(&error) => return End::Violation(Violation::TooBig),
                    Some(Err(error)) => {
                        tracing::debug!(id, %error, "connection error");
                        return End::Gone;
                    }
                };
                handle.shared.stats.received(text.len());
                let message = match serde_json::from_str::<WorkerMessage>(&text) {
                    Ok(message) => message,
                    Err(error) => return End::Violation(Violation::BadMessage(error)),
                };
                if let Err(reason) = on_message(&mut connection, message, sink, handle, &mut modules_sent).await {
                    return reason;
                }
            }
            // The coordinator asked for connections to look again (new work, a
            // cancellation, a straggler to copy: see `Handle::run_timer`).
            changed = wake.changed() => if changed.is_err() { return End::Done },
            _ = ping.tick() => {
                if heard.elapsed() > heartbeat.saturating_mul(3) {
                    tracing::warn!(id, silent = ?heard.elapsed(), "no heartbeat from the worker");
                    return End::Gone;
                }
                if !ping_worker(sink, agent == Agent::Browser).await {
                    return End::Gone;
                }
            }
            changed = done.changed() => if changed.is_err() { return End::Done },
            () = asked_to_leave(&mut leave), if leaving.is_none() => {}
        }
    }
}

/// Whether a read failed because the worker's message was over [`MAX_WORKER_MESSAGE_BYTES`].
fn too_big(error: &axum::Error) -> bool {
    std::error::Error::source(error)
        .and_then(|source| source.downcast_ref::<tungstenite::Error>())
        .is_some_and(|error| matches!(error, tungstenite::Error::Capacity(_)))
}

/// Waits until the hub asks the connection to leave (never, outside a hub).
async fn asked_to_leave(leave: &mut Option<&mut watch::Receiver<bool>>) {
    if let Some(leave) = leave
        && leave.changed().await.is_ok()
    {
        return;
    }
    std::future::pending().await
}

/// A volunteer's caps on one task, and on the modules it takes, from its hello.
#[derive(Clone, Copy)]
struct Caps {
    fuel: u64,
    memory_mb: u32,
    module_mb: u32,
}

impl Caps {
    fn of(hello: &dipla_protocol::Hello) -> Self {
        Self {
            fuel: hello.max_fuel,
            memory_mb: hello.max_memory_mb,
            module_mb: hello
                .max_module_mb
                .unwrap_or(dipla_protocol::DEFAULT_MAX_MODULE_MB),
        }
    }

    /// Why the worker cannot take one of `modules`, if it cannot: it is refused, rather
    /// than sent a module it would refuse (and then fail every task of).
    fn refuse<'a>(self, modules: impl IntoIterator<Item = &'a crate::Module>) -> Option<Violation> {
        let limit = dipla_protocol::module_limit_bytes(self.module_mb);
        modules
            .into_iter()
            .find(|module| module.bytes.len() > limit)
            .map(|module| Violation::ModuleOverLimit {
                name: module.name.clone(),
                bytes: module.bytes.len(),
                limit_mb: self.module_mb,
            })
    }

    /// Whether these caps are below `limits`: the worker then runs the task with less fuel or
    /// memory than the stage gives, so its `out_of_fuel` or `memory_limit` says nothing of
    /// the task.
    fn below(self, limits: &dipla_protocol::TaskLimits) -> bool {
        self.fuel < limits.fuel || self.memory_mb < limits.memory_mb
    }
}

/// What a connection knows of its worker.
struct Connection {
    id: u64,
    key: PublicKey,
    /// Its volunteer's caps on a task.
    caps: Caps,
    /// What kind of program it is (a browser is sent modules instrumented).
    agent: Agent,
    /// The job's id, which receipts name.
    job: String,
    /// What it was sent and has not answered.
    sent: Sent,
}

async fn on_message(
    connection: &mut Connection,
    message: WorkerMessage,
    sink: &mut Sink,
    handle: &Handle,
    modules_sent: &mut HashSet<dipla_protocol::ModuleHash>,
) -> Result<(), End> {
    let id = connection.id;
    match message {
        WorkerMessage::Hello(_) => Err(End::Violation(Violation::HelloTwice)),
        WorkerMessage::Proof { .. } => Err(End::Violation(Violation::ProofTwice)),
        WorkerMessage::FetchModule { hashes } => {
            for hash in hashes {
                let module = handle.lock().job.module(&hash).cloned();
                let Some(module) = module else {
                    return Err(End::Violation(Violation::UnknownModule(hash)));
                };
                // A module added since the worker joined (a driver's) may be over its limit.
                if let Some(refused) = connection.caps.refuse([&module]) {
                    return Err(End::Violation(refused));
                }
                if !modules_sent.insert(hash) {
                    return Err(End::Violation(Violation::ModuleTwice(hash)));
                }
                let bytes = match connection.agent {
                    Agent::Native => module.bytes,
                    Agent::Browser => {
                        // A module added since the browser joined (a driver's) is
                        // instrumented now, or refuses the browser.
                        let gate = &handle.shared.gate;
                        let instrumented = gate
                            .browser
                            .refuse(vec![module])
                            .await
                            .map_err(End::Violation)?
                            .remove(0);
                        let announce = ServerMessage::Instrumented {
                            module: hash,
                            sha256: instrumented.sha256,
                        };
                        sink.send(Message::text(encode(&announce)))
                            .await
                            .map_err(|_| End::Gone)?;
                        instrumented.bytes.clone()
                    }
                };
                tracing::debug!(id, %hash, bytes = bytes.len(), "sending module");
                handle.shared.stats.module_sent(bytes.len());
                sink.send(Message::Binary(bytes.to_vec().into()))
                    .await
                    .map_err(|_| End::Gone)?;
            }
            Ok(())
        }
        WorkerMessage::Pause { reason } => {
            let reason = printable(&reason, MAX_PAUSE_REASON_CHARS);
            // Its tasks go to the others at once (the lock's effects wake them).
            let given_back = {
                let mut core = handle.lock_now();
                let held = core.coordinator.running_on(id);
                core.coordinator.pause(id);
                held
            };
            tracing::info!(id, %reason, given_back, "worker paused");
            handle.progressed();
            Ok(())
        }
        WorkerMessage::Resume {} => {
            handle.lock_now().coordinator.resume(id);
            tracing::info!(id, "worker resumed");
            Ok(())
        }
        WorkerMessage::Results { results, receipt } => {
            let receipted = connection
                .sent
                .check(&connection.key, &connection.job, &results, receipt.as_ref())
                .map_err(End::Violation)?;
            // Outputs of stages with a verifier are checked outside the lock, then answered.
            let mut checks = Vec::new();
            {
                let mut core = handle.lock_now();
                if let (Some(receipted), Some(signature)) = (receipted, receipt) {
                    let tasks = receipted
                        .attempts
                        .iter()
                        .enumerate()
                        .filter_map(|(entry, &attempt)| {
                            let task = core.coordinator.attempt_task(id, attempt)?;
                            Some((task, u32::try_from(entry).unwrap_or(u32::MAX)))
                        })
                        .collect();
                    core.coordinator.journal_receipt(Record::Receipt {
                        identity: connection.key.to_string(),
                        signature: signature.to_string(),
                        body: receipted.body,
                        tasks,
                    });
                }
                for mut result in results {
                    let (attempt, fuel, micros, stop) =
                        (result.id, result.fuel, result.micros, result.stop);
                    handle.shared.gate.metrics.observe(micros);
                    let log = result.log.take();
                    let Some(outcome) = result.into_outcome() else {
                        return Err(End::Violation(Violation::NotOneOutcome(attempt)));
                    };
                    if let Some(log) = log {
                        report_log(&mut core, id, attempt, &log, outcome.is_err());
                    }
                    let capped = core
                        .coordinator
                        .attempt_task(id, attempt)
                        .is_some_and(|task| {
                            connection.caps.below(&core.job.stages[task.stage].limits)
                        });
                    let answer = Answer {
                        fuel,
                        micros,
                        outcome,
                        stop,
                        verified: false,
                        capped,
                    };
                    match verification(&core, id, attempt, &answer) {
                        Some(check) => checks.push((attempt, answer, check)),
                        None => core
                            .coordinator
                            .answer(id, attempt, answer)
                            .map_err(|violation| End::Violation(violation.into()))?,
                    }
                }
            }
            if !checks.is_empty() {
                let verdicts = tokio::task::spawn_blocking(move || {
                    checks
                        .into_iter()
                        .map(|(attempt, answer, check)| (attempt, answer, check.run()))
                        .collect::<Vec<_>>()
                })
                .await
                .map_err(|_| End::Gone)?;
                let mut core = handle.lock_now();
                for (attempt, mut answer, verdict) in verdicts {
                    let answered = match verdict {
                        Ok(()) => {
                            answer.verified = true;
                            core.coordinator.answer(id, attempt, answer)
                        }
                        Err(why) => {
                            tracing::info!(id, attempt, %why, "output rejected");
                            core.coordinator
                                .reject(id, attempt, answer.micros, why.to_string())
                        }
                    };
                    answered.map_err(|violation| End::Violation(violation.into()))?;
                }
            }
            // Whom to wake for what these answers changed, the coordinator said (see
            // `Locked`); the progress bar and the API look again.
            handle.progressed();
            Ok(())
        }
    }
}

/// Hands the log a worker reported for `attempt` to the job's [`crate::store::task_logs::TaskLogs`].
fn report_log(
    core: &mut crate::net::state::Core,
    worker: u64,
    attempt: u64,
    log: &str,
    failed: bool,
) {
    let Some(task) = core.coordinator.attempt_task(worker, attempt) else {
        return;
    };
    let Some(stage) = core.job.stages.get(task.stage) else {
        return;
    };
    let by = crate::store::task_logs::Reporter {
        worker,
        stage: &stage.name,
        index: task.index,
    };
    core.logs.report(task, by, log, failed);
}

/// Checks a worker's benchmark (the kernels' fuel and checksums, and the score they give) and
/// ranks the worker by its score, or notes why not.
async fn judge_benchmark(
    handle: &Handle,
    id: u64,
    name: &str,
    benchmark: dipla_protocol::Benchmark,
) {
    let sandbox = handle.lock().job.sandbox.clone();
    // The first check in a process runs each kernel once (a fraction of a second).
    let checked =
        tokio::task::spawn_blocking(move || dipla_sandbox::bench::check(&sandbox, &benchmark))
            .await;
    let why = match checked {
        Ok(Ok(score)) => {
            tracing::info!(id, %name, score = format!("{score:.0}"), "benchmark checked");
            handle.lock().coordinator.claim(id, score);
            return;
        }
        Ok(Err(mismatch)) => mismatch.to_string(),
        // The check panicked.
        Err(error) => error.to_string(),
    };
    tracing::warn!(id, %name, %why, "benchmark does not check out");
    handle
        .lock()
        .coordinator
        .note(id, format!("its benchmark does not check out: {why}"));
}

/// The `tasks` message for an assignment, noted in `sent`.
fn batch(job: &Job, coordinator: &Coordinator, assignment: Assignment, sent: &mut Sent) -> String {
    let stage = &job.stages[assignment.stage];
    let tasks = assignment
        .tasks
        .into_iter()
        .map(|(id, index)| TaskItem {
            id,
            input: job.input(
                TaskRef {
                    stage: assignment.stage,
                    index,
                },
                coordinator,
            ),
        })
        .collect::<Vec<_>>();
    sent.record(stage.module, &tasks);
    encode(&ServerMessage::Tasks(TaskBatch {
        module: stage.module,
        export: stage.export.clone(),
        limits: stage.limits,
        tasks,
    }))
}

fn encode(message: &ServerMessage) -> String {
    // Serialising these types cannot fail: every map key is a string.
    serde_json::to_string(message).unwrap_or_default()
}

/// Close-frame reasons must fit in 123 bytes.
fn truncate(mut text: String, max: usize) -> String {
    if text.len() > max {
        let mut end = max;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
    }
    text
}
