//! `scale`: one `dipla-server` against thousands of simulated workers over loopback.
//!
//! The server is the real `dipla-server run` binary, started as a child process with the
//! defaults a user gets (durable journal, signed receipts). This process plays N lightweight
//! workers, each a tokio task with its own WebSocket connection and its own Ed25519 identity,
//! speaking protocol 2 as `dipla-worker` does (hello with a self-benchmark, proof, one signed
//! `results` message per batch; a server silent for three heartbeats is taken for dead and
//! the worker connects again with `dipla-worker`'s backoff), but answering the testbed's
//! `square` natively instead of running the module. Results report the fuel and time the
//! real module takes in the sandbox, measured once at startup.
//!
//! For each worker count it reports: how long all workers took to join (in bounded waves),
//! tasks per second, the server's memory (VmRSS before any worker, with all connected, and its
//! peak VmHWM), memory per connected worker (and, on a fresh server, per bare WebSocket
//! connection that never says hello), scheduling latency as a worker sees it, over the first 90% of the job's results (from sending a
//! `results` message to receiving its next `tasks` batch), errors (connections refused,
//! closed before a goodbye, or a server gone silent) and whether the results file is complete
//! and correct. Workers hold their first batch until every worker has joined, so the "all
//! connected" figure is taken with the whole fleet idle and the job's clock starts with
//! everyone ready (with `--no-hold` a small job may end before the last workers join).
//! Separately, it starts the server with 1 and with `--tasks` queued inputs (a range, inline
//! values, a JSON Lines file) and no workers, and reports the memory each queued task costs.
//!
//! ```text
//! cargo build --release -p dipla-server -p dipla-bench
//! target/release/scale --quick          # 50 workers, 5,000 tasks
//! target/release/scale                  # 1,000 then 5,000 workers, 200,000 tasks
//! target/release/scale --workers 100,250,500 --no-queue
//! ```
//!
//! The open-files soft limit is raised to the hard limit (the server child inherits it).

use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail, ensure};
use clap::Parser;
use dipla_bench::machine;
use dipla_protocol::identity::{ReceiptEntry, join_message, receipt_message};
use dipla_protocol::{
    Benchmark, Hello, MAX_SERVER_MESSAGE_BYTES, PROTOCOL_VERSION, PublicKey, RawJson,
    ServerMessage, Signature, TaskBatch, TaskResult, WorkerMessage,
};
use ed25519_dalek::{Signer, SigningKey};
use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::sync::{Semaphore, watch};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

#[derive(Parser)]
#[command(about = "Dipla's scale benchmark: one server, thousands of simulated workers")]
struct Cli {
    /// Worker counts to run, one job each.
    #[arg(long, value_delimiter = ',', default_value = "1000,5000")]
    workers: Vec<usize>,
    /// Tasks in each job (the testbed's `square` over 0..TASKS).
    #[arg(long, default_value_t = 200_000)]
    tasks: u64,
    /// A small smoke run: 50 workers, 5,000 tasks (overrides --workers and --tasks).
    #[arg(long)]
    quick: bool,
    /// The `dipla-server` binary [default: beside this one, else target/release].
    #[arg(long)]
    server_bin: Option<PathBuf>,
    /// Handshakes in progress at once while workers join.
    #[arg(long, default_value_t = 64)]
    connect_concurrency: usize,
    /// Give up on a job this many seconds after its workers start joining (the figures so
    /// far are still reported).
    #[arg(long, default_value_t = 600)]
    timeout_secs: u64,
    /// Workers send no self-benchmark in their hello (as `dipla-worker --no-bench`); by
    /// default they all send the one this process measures, as default workers would.
    #[arg(long)]
    no_bench: bool,
    /// Fuel each result reports [default: what the testbed's `square` burns in the sandbox].
    /// 0 makes the server's speed estimate fall back to its slowest path.
    #[arg(long)]
    fuel: Option<u64>,
    /// Microseconds each result reports [default: what `square` takes in the sandbox, at
    /// least 1].
    #[arg(long)]
    micros: Option<u64>,
    /// The simulated workers' WebSocket read buffer, bytes (tungstenite's default is 128 KiB;
    /// smaller keeps this process light; the server's own buffers are not affected).
    #[arg(long, default_value_t = 16 << 10)]
    client_read_buffer: usize,
    /// Skip the memory-per-queued-task measurement.
    #[arg(long)]
    no_queue: bool,
    /// Workers do not connect again after losing the server (by default they do, with
    /// `dipla-worker`'s backoff: 250 ms doubling to 30 s, jittered, keeping their identity).
    #[arg(long)]
    no_reconnect: bool,
    /// Workers answer their first tasks at once, instead of holding them until every worker
    /// has joined (the "all connected" memory figure is then taken with work under way).
    #[arg(long)]
    no_hold: bool,
    /// Keep the temporary folders (job, journal, results, server log) and print their paths.
    #[arg(long)]
    keep: bool,
}

/// How long the server has to answer each handshake step.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a worker waits for any frame when the server does not say how often it pings.
const SILENCE: Duration = Duration::from_secs(120);
/// A session that lasted this long was a success: the next failure starts the backoff over
/// (as `dipla-worker`'s reconnect loop).
const STEADY: Duration = Duration::from_secs(10);

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("bench lives in the workspace")
        .to_owned()
}

fn testbed() -> Result<PathBuf> {
    let path = root().join("target/wasm32-unknown-unknown/release/testbed.wasm");
    ensure!(
        path.exists(),
        "{} is missing: run `cargo xtask build-guests`",
        path.display()
    );
    Ok(path)
}

/// `dipla-server`: `--server-bin`, else beside this binary, else in `$CARGO_TARGET_DIR` or
/// the workspace's `target/release`.
fn server_bin(chosen: Option<&Path>) -> Result<PathBuf> {
    if let Some(path) = chosen {
        ensure!(path.exists(), "{} does not exist", path.display());
        return Ok(path.to_owned());
    }
    let mut candidates = Vec::new();
    if let Some(dir) = std::env::current_exe()?.parent() {
        candidates.push(dir.join("dipla-server"));
    }
    if let Some(dir) = std::env::var_os("CARGO_TARGET_DIR") {
        candidates.push(PathBuf::from(dir).join("release/dipla-server"));
    }
    candidates.push(root().join("target/release/dipla-server"));
    candidates
        .iter()
        .find(|path| path.exists())
        .cloned()
        .ok_or_else(|| {
            anyhow!(
                "dipla-server not found (looked at {candidates:?}): run \
                 `cargo build --release -p dipla-server` or pass --server-bin"
            )
        })
}

/// Raises the soft limit on open files to the hard limit (the server, our child, inherits
/// it): every simulated worker holds a socket here and one in the server.
fn raise_fd_limit() -> Result<u64> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit only read and write the struct passed.
    unsafe {
        ensure!(
            libc::getrlimit(libc::RLIMIT_NOFILE, &raw mut limit) == 0,
            "getrlimit failed"
        );
        if limit.rlim_cur < limit.rlim_max {
            limit.rlim_cur = limit.rlim_max;
            ensure!(
                libc::setrlimit(libc::RLIMIT_NOFILE, &raw const limit) == 0,
                "setrlimit failed: {}",
                std::io::Error::last_os_error()
            );
        }
    }
    Ok(limit.rlim_cur)
}

/// A process's memory and CPU time, from /proc.
#[derive(Debug, Clone, Copy, Default)]
struct ProcSample {
    /// Resident set, bytes.
    rss: u64,
    /// Peak resident set, bytes.
    hwm: u64,
    /// User + system CPU time, seconds.
    cpu: f64,
}

fn proc_sample(pid: u32) -> Option<ProcSample> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| -> Option<u64> {
        let line = status.lines().find(|line| line.starts_with(name))?;
        let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
        Some(kb * 1024)
    };
    let (rss, hwm) = (field("VmRSS:")?, field("VmHWM:")?);
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    // SAFETY: sysconf has no preconditions.
    let per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    Some(ProcSample {
        rss,
        hwm,
        cpu: ticks as f64 / per_second,
    })
}

/// What the server said on stderr, kept and counted.
#[derive(Default)]
struct ServerLog {
    lines: u64,
    warnings: u64,
    errors: u64,
    /// The first warnings and errors, verbatim.
    samples: Vec<String>,
    /// Warnings and errors by their message (the text after the target).
    kinds: HashMap<String, u64>,
    /// The server's closing summary (`dipla-server: N tasks: ...`).
    summary: Option<String>,
}

/// A `dipla-server run` child process.
struct ServerProcess {
    child: tokio::process::Child,
    pid: u32,
    url: String,
    log: Arc<Mutex<ServerLog>>,
}

impl ServerProcess {
    /// Starts `dipla-server run MANIFEST` in `dir` and waits until it accepts workers.
    async fn start(bin: &Path, manifest: &Path, dir: &Path) -> Result<Self> {
        let mut command = tokio::process::Command::new(bin);
        command
            .arg("run")
            .arg(manifest)
            .args(["--listen", "127.0.0.1:0", "--local-workers", "0"])
            .args(["--max-workers", "10000", "--progress-secs", "3600"])
            .arg("--state")
            .arg(dir.join("job.state"))
            .arg("--out")
            .arg(dir.join("results.jsonl"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        // SAFETY: prctl is async-signal-safe; the child dies with this process even if it
        // is killed (kill_on_drop only covers an orderly exit).
        unsafe {
            command.pre_exec(|| {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) == 0 {
                    Ok(())
                } else {
                    Err(std::io::Error::last_os_error())
                }
            });
        }
        let mut child = command
            .spawn()
            .with_context(|| format!("cannot start {}", bin.display()))?;
        let pid = child.id().context("the server has no pid")?;
        let stderr = child.stderr.take().context("no stderr")?;
        let log = Arc::new(Mutex::new(ServerLog::default()));
        let (url_tx, url_rx) = tokio::sync::oneshot::channel();
        let mut file = tokio::fs::File::create(dir.join("server.log")).await?;
        let kept = log.clone();
        // Drain stderr for the server's whole life (it fails when logging to a closed pipe).
        tokio::spawn(async move {
            let mut lines = BufReader::new(stderr).lines();
            let mut url_tx = Some(url_tx);
            let mut said = String::new();
            while let Ok(Some(line)) = lines.next_line().await {
                let _ = file.write_all(line.as_bytes()).await;
                let _ = file.write_all(b"\n").await;
                if let Some(url) = line
                    .trim()
                    .strip_prefix("dipla-server: workers connect to ")
                {
                    if let Some(tx) = url_tx.take() {
                        let _ = tx.send(Ok(url.to_owned()));
                    }
                    continue;
                }
                if url_tx.is_some() {
                    said.push_str(&line);
                    said.push('\n');
                }
                let mut log = kept.lock().unwrap();
                log.lines += 1;
                if line.starts_with("dipla-server: ") && line.contains(" tasks: ") {
                    log.summary = Some(line.clone());
                }
                let warn = line.contains(" WARN ");
                let error = line.contains(" ERROR ") || line.starts_with("error");
                if warn || error {
                    log.warnings += u64::from(warn);
                    log.errors += u64::from(error);
                    if log.samples.len() < 12 {
                        log.samples.push(line.clone());
                    }
                    // The message: after "target: ", before the first field.
                    let message = line
                        .split_once(": ")
                        .map_or(line.as_str(), |(_, rest)| rest)
                        .split(" id=")
                        .next()
                        .unwrap_or_default()
                        .split(" name=")
                        .next()
                        .unwrap_or_default()
                        .to_owned();
                    *log.kinds.entry(message).or_default() += 1;
                }
            }
            let _ = file.flush().await;
            if let Some(tx) = url_tx.take() {
                let _ = tx.send(Err(said));
            }
        });
        let url = match tokio::time::timeout(Duration::from_secs(120), url_rx).await {
            Ok(Ok(Ok(url))) => url,
            Ok(Ok(Err(said))) => bail!("the server exited before accepting workers:\n{said}"),
            Ok(Err(_)) => bail!("the server's stderr reader stopped"),
            Err(_) => bail!("the server did not accept workers within 120 s"),
        };
        Ok(Self {
            child,
            pid,
            url,
            log,
        })
    }

    fn sample(&self) -> Option<ProcSample> {
        proc_sample(self.pid)
    }

    /// The resident set after `settle`, once it stops moving much (the last of a few reads).
    async fn settled_rss(&self, settle: Duration) -> Result<u64> {
        tokio::time::sleep(settle).await;
        let mut last = 0;
        for _ in 0..4 {
            last = self.sample().context("the server is gone")?.rss;
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        Ok(last)
    }

    async fn kill(mut self) {
        let _ = self.child.kill().await;
    }
}

/// Follows a process's memory peak and CPU time until it ends.
fn follow(pid: u32) -> Arc<Mutex<ProcSample>> {
    let last = Arc::new(Mutex::new(proc_sample(pid).unwrap_or_default()));
    let kept = last.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_millis(50));
        loop {
            tick.tick().await;
            let Some(sample) = proc_sample(pid) else {
                break;
            };
            let mut last = kept.lock().unwrap();
            let rss = last.rss.max(sample.rss);
            *last = ProcSample { rss, ..sample };
        }
    });
    last
}

/// What one simulated worker saw.
#[derive(Default)]
struct Report {
    /// TCP connect to welcome.
    handshake: Option<Duration>,
    /// Microseconds from sending results to receiving the next batch.
    latencies: Vec<u32>,
    results: u64,
    batches: u64,
    cancelled: u64,
    last_result: Option<Instant>,
    goodbye: Option<String>,
    goodbye_at: Option<Instant>,
    /// Each session's failure, when, in order.
    errors: Vec<(Instant, String)>,
    /// Why the benchmark stopped this worker, if it did (the server exited while it was
    /// trying to reconnect, or the run timed out).
    stopped: Option<String>,
}

/// What the workers share.
struct Fleet {
    url: String,
    profile: Profile,
    read_buffer: usize,
    permits: Semaphore,
    joined: AtomicUsize,
    /// Workers that failed before joining.
    failed: AtomicUsize,
    /// Workers whose task ended.
    ended: AtomicUsize,
    /// Results sent, by all workers.
    results: AtomicU64,
    /// Scheduling latency is recorded until this many results were sent: past it, the job's
    /// tail leaves workers idle until the end (or a speculative copy), which is not latency.
    busy_until: u64,
    release: watch::Receiver<bool>,
    /// Why the workers must stop now, once they must.
    stop: watch::Receiver<Option<String>>,
    reconnect: bool,
}

/// What a simulated worker claims about itself and its tasks.
#[derive(Clone)]
struct Profile {
    fuel: u64,
    micros: u64,
    benchmark: Option<Benchmark>,
}

/// Runs the testbed's `square` in the sandbox to learn the fuel and time a real worker would
/// report, and the self-benchmark (once, for every simulated worker) unless `no_bench`.
fn calibrate(cli: &Cli) -> Result<Profile> {
    let sandbox = dipla_sandbox::Sandbox::new().map_err(|e| anyhow!("sandbox: {e}"))?;
    let guest = sandbox
        .compile(&std::fs::read(testbed()?)?)
        .map_err(|e| anyhow!("testbed: {e}"))?;
    let limits = dipla_sandbox::Limits::default();
    let (mut fuels, mut times) = (Vec::new(), Vec::new());
    for i in 0..500u64 {
        let x = i * (cli.tasks / 500).max(1);
        let run = guest.run("square", x.to_string().as_bytes(), &limits);
        let output = run.outcome.map_err(|e| anyhow!("square({x}): {e}"))?;
        ensure!(
            output.get() == x.wrapping_mul(x).to_string(),
            "square({x}) gave {}",
            output.get()
        );
        fuels.push(run.fuel);
        times.push(run.micros);
    }
    fuels.sort_unstable();
    times.sort_unstable();
    let benchmark = if cli.no_bench {
        None
    } else {
        Some(dipla_sandbox::bench::run().map_err(|e| anyhow!("self-benchmark: {e}"))?)
    };
    Ok(Profile {
        fuel: cli.fuel.unwrap_or(fuels[fuels.len() / 2]),
        micros: cli.micros.unwrap_or(times[times.len() / 2].max(1)),
        benchmark,
    })
}

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn send(ws: &mut Ws, message: &WorkerMessage) -> Result<()> {
    let text = serde_json::to_string(message)?;
    ws.send(Message::text(text)).await.context("send")
}

/// The next message from the server within `limit` (pings are answered by tungstenite).
async fn next_message(ws: &mut Ws, limit: Duration) -> Result<ServerMessage> {
    loop {
        let frame = tokio::time::timeout(limit, ws.next())
            .await
            .map_err(|_| anyhow!("nothing from the server within {limit:?}"))?;
        match frame {
            None => bail!("the connection ended"),
            Some(Err(error)) => bail!("connection error: {error}"),
            Some(Ok(Message::Text(text))) => {
                return serde_json::from_str(&text).context("bad message from the server");
            }
            Some(Ok(Message::Close(frame))) => bail!(
                "closed by the server: {}",
                frame.map_or_else(|| "no reason".to_owned(), |f| f.reason.to_string())
            ),
            Some(Ok(Message::Binary(_))) => bail!("unexpected binary frame"),
            Some(Ok(_)) => {}
        }
    }
}

async fn worker(index: usize, fleet: Arc<Fleet>) -> Report {
    let mut report = Report::default();
    let mut stop = fleet.stop.clone();
    let key = SigningKey::generate(&mut rand_core::OsRng);
    tokio::select! {
        () = sessions(index, &fleet, &key, &mut report) => {}
        why = stop.wait_for(Option::is_some) => {
            let why = why.map_or_else(|_| "the benchmark ended".to_owned(), |why| why.clone().unwrap_or_default());
            report.stopped = Some(why);
        }
    }
    fleet.ended.fetch_add(1, Ordering::SeqCst);
    report
}

/// Serves the server until a goodbye, connecting again after a lost connection (unless
/// told not to, or the worker never got in).
async fn sessions(index: usize, fleet: &Fleet, key: &SigningKey, report: &mut Report) {
    let mut joined = false;
    let mut attempt = 0u32;
    loop {
        let started = Instant::now();
        let Err(error) = serve(index, fleet, key, report, &mut joined).await else {
            return;
        };
        report.errors.push((Instant::now(), format!("{error:#}")));
        if !joined {
            fleet.failed.fetch_add(1, Ordering::SeqCst);
            return;
        }
        if !fleet.reconnect {
            return;
        }
        if started.elapsed() > STEADY {
            attempt = 0;
        }
        // dipla-worker's backoff: 250 ms doubling up to 30 s, times a factor in [0.5, 1.5).
        let base = Duration::from_millis(250).saturating_mul(1 << attempt.min(20));
        let jitter =
            0.5 + f64::from(rand_core::RngCore::next_u32(&mut rand_core::OsRng)) / 2f64.powi(32);
        tokio::time::sleep(base.min(Duration::from_secs(30)).mul_f64(jitter)).await;
        attempt += 1;
    }
}

async fn serve(
    index: usize,
    fleet: &Fleet,
    key: &SigningKey,
    report: &mut Report,
    joined: &mut bool,
) -> Result<()> {
    let mut release = fleet.release.clone();
    let public = PublicKey(key.verifying_key().to_bytes());
    let permit = fleet.permits.acquire().await?;
    let started = Instant::now();
    let config = WebSocketConfig::default()
        .max_message_size(Some(MAX_SERVER_MESSAGE_BYTES))
        .max_frame_size(Some(MAX_SERVER_MESSAGE_BYTES))
        .read_buffer_size(fleet.read_buffer);
    let (mut ws, _) =
        tokio_tungstenite::connect_async_with_config(fleet.url.as_str(), Some(config), true)
            .await
            .context("connect")?;
    let hello = Hello {
        protocol: PROTOCOL_VERSION,
        name: format!("sim-{index}"),
        version: "scale-bench".into(),
        cores: 1,
        max_memory_mb: 1024,
        max_fuel: u64::MAX,
        max_module_mb: None,
        benchmark: fleet.profile.benchmark.clone(),
        token: None,
        identity: Some(public),
        agent: None,
    };
    send(&mut ws, &WorkerMessage::Hello(hello)).await?;
    let ServerMessage::Challenge { nonce } = next_message(&mut ws, HANDSHAKE_TIMEOUT).await? else {
        bail!("expected a challenge");
    };
    let signature = Signature(key.sign(&join_message(&nonce.0, &public)).to_bytes());
    send(&mut ws, &WorkerMessage::Proof { signature }).await?;
    let ServerMessage::Welcome(welcome) = next_message(&mut ws, HANDSHAKE_TIMEOUT).await? else {
        bail!("expected a welcome");
    };
    drop(permit);
    if !*joined {
        report.handshake = Some(started.elapsed());
        *joined = true;
        fleet.joined.fetch_add(1, Ordering::SeqCst);
    }
    let job = welcome.job.unwrap_or_default();
    // As dipla-worker: a server silent for three of its heartbeats is taken for dead.
    let silence = welcome.heartbeat_ms.map_or(SILENCE, |ms| {
        Duration::from_millis(ms.max(100)).saturating_mul(3)
    });

    let mut released = *release.borrow();
    let mut held: Vec<TaskBatch> = Vec::new();
    let mut last_sent: Option<Instant> = None;
    loop {
        let frame = tokio::select! {
            frame = tokio::time::timeout(silence, ws.next()) => {
                frame.map_err(|_| anyhow!("the server went silent (no frame, not even a ping, for {silence:?})"))?
            }
            changed = async { release.wait_for(|go| *go).await.is_ok() }, if !released => {
                ensure!(changed, "the benchmark stopped");
                released = true;
                for batch in std::mem::take(&mut held) {
                    last_sent = Some(answer(&mut ws, &job, key, fleet, batch, report).await?);
                }
                continue;
            }
        };
        let text = match frame {
            None => bail!("the connection ended without a goodbye or close"),
            Some(Err(error)) => bail!("connection error: {error}"),
            Some(Ok(Message::Text(text))) => text,
            Some(Ok(Message::Close(frame))) => bail!(
                "closed by the server before a goodbye ({})",
                frame.map_or_else(
                    || "no close frame".to_owned(),
                    |f| format!("code {}, reason {:?}", f.code, f.reason.as_str())
                )
            ),
            Some(Ok(Message::Binary(_))) => bail!("unexpected binary frame"),
            Some(Ok(_)) => continue,
        };
        match serde_json::from_str::<ServerMessage>(&text).context("bad message")? {
            ServerMessage::Tasks(batch) => {
                let now = Instant::now();
                if let Some(sent) = last_sent.take()
                    && fleet.results.load(Ordering::Relaxed) < fleet.busy_until
                {
                    let micros = now.duration_since(sent).as_micros();
                    report
                        .latencies
                        .push(u32::try_from(micros).unwrap_or(u32::MAX));
                }
                report.batches += 1;
                if released {
                    last_sent = Some(answer(&mut ws, &job, key, fleet, batch, report).await?);
                } else {
                    held.push(batch);
                }
            }
            ServerMessage::Cancel { ids } => {
                for batch in &mut held {
                    let before = batch.tasks.len();
                    batch.tasks.retain(|task| !ids.contains(&task.id));
                    report.cancelled += (before - batch.tasks.len()) as u64;
                }
            }
            ServerMessage::Goodbye { reason, .. } => {
                report.goodbye = Some(reason);
                report.goodbye_at = Some(Instant::now());
                // Read on until the server's close (tungstenite answers it) ends the stream.
                let _ = tokio::time::timeout(Duration::from_secs(10), async {
                    while let Some(Ok(_)) = ws.next().await {}
                })
                .await;
                return Ok(());
            }
            other => bail!("unexpected {other:?}"),
        }
    }
}

/// Computes a batch natively, sends one signed `results` message; returns when it was sent.
async fn answer(
    ws: &mut Ws,
    job: &str,
    key: &SigningKey,
    fleet: &Fleet,
    batch: TaskBatch,
    report: &mut Report,
) -> Result<Instant> {
    let Profile { fuel, micros, .. } = fleet.profile;
    let mut results = Vec::with_capacity(batch.tasks.len());
    let mut entries = Vec::with_capacity(batch.tasks.len());
    for task in &batch.tasks {
        let x: u64 = serde_json::from_str(task.input.get())
            .with_context(|| format!("input {} is not a u64", task.input.get()))?;
        let output = x.wrapping_mul(x).to_string();
        entries.push(ReceiptEntry {
            id: task.id,
            module: batch.module,
            input: ReceiptEntry::digest(task.input.get()),
            output: ReceiptEntry::digest(&output),
            fuel,
        });
        results.push(TaskResult::success(
            task.id,
            fuel,
            micros,
            RawJson::from_string(output)?,
        ));
    }
    if results.is_empty() {
        return Ok(Instant::now());
    }
    let receipt = Signature(key.sign(&receipt_message(job, &entries)).to_bytes());
    report.results += results.len() as u64;
    fleet
        .results
        .fetch_add(results.len() as u64, Ordering::Relaxed);
    let message = WorkerMessage::Results {
        results,
        receipt: Some(receipt),
    };
    let text = serde_json::to_string(&message)?;
    let sent = Instant::now();
    ws.send(Message::text(text)).await.context("send results")?;
    report.last_result = Some(sent);
    Ok(sent)
}

/// The `q` quantile of sorted `values`.
fn quantile<T: Copy + Default>(sorted: &[T], q: f64) -> T {
    if sorted.is_empty() {
        return T::default();
    }
    sorted[((sorted.len() - 1) as f64 * q).round() as usize]
}

fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / f64::from(1 << 20))
}

fn ms(micros: u32) -> String {
    format!("{:.2} ms", f64::from(micros) / 1000.0)
}

/// One worker count's figures.
struct Row {
    workers: usize,
    tasks: u64,
    /// Why the run stopped early, if it did.
    failure: Option<String>,
    connect: Duration,
    handshakes: Vec<u32>,
    /// From release to the last result (or to the deadline).
    job_time: Duration,
    /// Results the workers sent.
    results_sent: u64,
    /// From the last result to the server's exit.
    shutdown: Option<Duration>,
    rss_before: u64,
    rss_connected: u64,
    /// Server memory per bare WebSocket connection (no hello) and the seconds they took.
    bare: Option<(f64, f64)>,
    peak: u64,
    server_cpu: f64,
    bench_cpu: f64,
    bench_peak: u64,
    latencies: Vec<u32>,
    batches: u64,
    errors: Vec<String>,
    goodbyes: usize,
    /// Workers with at least one error.
    troubled: usize,
    /// Workers the benchmark stopped (still reconnecting when the server exited, or at the
    /// deadline).
    stopped: usize,
    results_ok: Result<(), String>,
    exit: String,
    log_warnings: u64,
    log_errors: u64,
    log_samples: Vec<String>,
    log_kinds: Vec<(String, u64)>,
    summary: Option<String>,
    kept: Option<PathBuf>,
}

impl Row {
    fn per_worker(&self) -> f64 {
        self.rss_connected.saturating_sub(self.rss_before) as f64 / self.workers as f64
    }

    fn complete(&self) -> bool {
        self.failure.is_none() && self.results_ok.is_ok()
    }
}

fn range_manifest(tasks: u64) -> Result<String> {
    Ok(format!(
        "name = \"scale\"\n[modules]\nbed = {:?}\n[[stages]]\nname = \"square\"\n\
         task = \"bed.square\"\ninputs = {{ range = {{ start = 0, end = {tasks} }} }}\n",
        testbed()?.display().to_string()
    ))
}

/// Checks the results file: one line per task, each the square of its input.
fn check_results(path: &Path, tasks: u64) -> Result<(), String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut seen = vec![false; tasks as usize];
    let mut lines = 0u64;
    for line in text.lines() {
        lines += 1;
        let value: serde_json::Value =
            serde_json::from_str(line).map_err(|e| format!("line {lines}: {e}"))?;
        let index = value["index"].as_u64().ok_or("a line without an index")?;
        let input = value["input"].as_u64().ok_or("a line without an input")?;
        let output = value["output"]
            .as_u64()
            .ok_or_else(|| format!("task {index} has no output: {line}"))?;
        if output != input.wrapping_mul(input) {
            return Err(format!("task {index}: {input}^2 is not {output}"));
        }
        match seen.get_mut(index as usize) {
            Some(seen @ false) => *seen = true,
            _ => return Err(format!("index {index} twice or out of range")),
        }
    }
    if lines != tasks {
        return Err(format!("{lines} lines, expected {tasks}"));
    }
    Ok(())
}

/// Server memory per bare WebSocket connection: a fresh server, `count` connections that
/// are upgraded but say nothing, RSS before and after (read within the server's 10 s hello
/// timeout). Returns the bytes per connection and the seconds the connections took.
async fn bare_connections(cli: &Cli, bin: &Path, count: usize) -> Result<(f64, f64)> {
    let dir = tempfile::Builder::new()
        .prefix(&format!("dipla-bare-{count}-"))
        .tempdir()?;
    let manifest = dir.path().join("job.toml");
    std::fs::write(&manifest, range_manifest(10)?)?;
    let server = ServerProcess::start(bin, &manifest, dir.path()).await?;
    let before = server.settled_rss(Duration::from_millis(500)).await?;
    let permits = Arc::new(Semaphore::new(cli.connect_concurrency.max(1)));
    let started = Instant::now();
    let connections: Vec<_> = (0..count)
        .map(|_| {
            let (url, permits) = (server.url.clone(), permits.clone());
            let config = WebSocketConfig::default().read_buffer_size(cli.client_read_buffer);
            tokio::spawn(async move {
                let _permit = permits.acquire().await?;
                let (ws, _) =
                    tokio_tungstenite::connect_async_with_config(url.as_str(), Some(config), true)
                        .await?;
                anyhow::Ok(ws)
            })
        })
        .collect();
    let mut open = Vec::with_capacity(count);
    for connection in connections {
        open.push(connection.await??);
    }
    let took = started.elapsed();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let after = server.sample().context("the server is gone")?.rss;
    ensure!(
        started.elapsed() < Duration::from_secs(9),
        "{count} bare connections took {:.1} s: past the server's hello timeout",
        started.elapsed().as_secs_f64()
    );
    drop(open);
    server.kill().await;
    Ok((
        after.saturating_sub(before) as f64 / count as f64,
        took.as_secs_f64(),
    ))
}

async fn run_size(
    cli: &Cli,
    bin: &Path,
    profile: &Profile,
    workers: usize,
    tasks: u64,
) -> Result<Row> {
    let dir = tempfile::Builder::new()
        .prefix(&format!("dipla-scale-{workers}-"))
        .tempdir()?;
    let manifest = dir.path().join("job.toml");
    std::fs::write(&manifest, range_manifest(tasks)?)?;
    eprintln!("[{workers} workers] starting the server ({tasks} tasks)");
    let mut server = ServerProcess::start(bin, &manifest, dir.path()).await?;
    let rss_before = server.settled_rss(Duration::from_millis(500)).await?;
    let peak = follow(server.pid);

    let (release_tx, release) = watch::channel(false);
    let (stop_tx, stop) = watch::channel(None);
    let fleet = Arc::new(Fleet {
        url: server.url.clone(),
        profile: profile.clone(),
        read_buffer: cli.client_read_buffer,
        permits: Semaphore::new(cli.connect_concurrency.max(1)),
        joined: AtomicUsize::new(0),
        failed: AtomicUsize::new(0),
        ended: AtomicUsize::new(0),
        results: AtomicU64::new(0),
        busy_until: tasks * 9 / 10,
        release,
        stop,
        reconnect: !cli.no_reconnect,
    });
    let connecting = Instant::now();
    let deadline = connecting + Duration::from_secs(cli.timeout_secs);
    let handles: Vec<_> = (0..workers)
        .map(|i| tokio::spawn(worker(i, fleet.clone())))
        .collect();
    let mut connect = Duration::ZERO;
    let mut rss_connected = 0;
    let mut cpu_at_release = 0.0;
    let mut bench_cpu_at_release = 0.0;
    let mut released = None;
    let mut server_exit: Option<(Instant, std::process::ExitStatus)> = None;
    if cli.no_hold {
        released = Some(connecting);
        release_tx.send_replace(true);
    }
    let ran: Result<(), String> = async {
        loop {
            let (joined, failed) = (
                fleet.joined.load(Ordering::SeqCst),
                fleet.failed.load(Ordering::SeqCst),
            );
            if joined + failed >= workers {
                break;
            }
            if Instant::now() > deadline {
                return Err(format!("only {joined} of {workers} workers joined in time"));
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        connect = connecting.elapsed();
        eprintln!(
            "[{workers} workers] {} joined in {:.2} s ({} failed); measuring",
            fleet.joined.load(Ordering::SeqCst),
            connect.as_secs_f64(),
            fleet.failed.load(Ordering::SeqCst)
        );
        rss_connected = server
            .settled_rss(Duration::from_secs(1))
            .await
            .map_err(|e| e.to_string())?;
        cpu_at_release = server.sample().map_or(0.0, |s| s.cpu);
        bench_cpu_at_release = proc_sample(std::process::id()).map_or(0.0, |s| s.cpu);
        if released.is_none() {
            released = Some(Instant::now());
            release_tx.send_replace(true);
        }
        let mut next_report = Instant::now() + Duration::from_secs(10);
        let (mut last_results, mut last_cpu) = (0, cpu_at_release);
        while fleet.ended.load(Ordering::SeqCst) < workers {
            if server_exit.is_none()
                && let Ok(Some(status)) = server.child.try_wait()
            {
                server_exit = Some((Instant::now(), status));
            }
            if let Some((when, status)) = server_exit
                && when.elapsed() > Duration::from_secs(3)
            {
                // Workers that lost the server before its goodbye would try again forever.
                let left = workers - fleet.ended.load(Ordering::SeqCst);
                eprintln!("[{workers} workers] the server exited ({status}); stopping the {left} workers still trying");
                stop_tx.send_replace(Some(format!("the server exited ({status})")));
                break;
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "the job did not finish within {} s",
                    cli.timeout_secs
                ));
            }
            if Instant::now() >= next_report {
                let done = fleet.results.load(Ordering::Relaxed);
                let sample = server.sample().unwrap_or_default();
                eprintln!(
                    "[{workers} workers] +{:.0} s: {done} results ({:.0}/s lately), \
                     server RSS {}, CPU {:.0}%",
                    released.map_or(0.0, |r: Instant| r.elapsed().as_secs_f64()),
                    (done - last_results) as f64 / 10.0,
                    mib(sample.rss),
                    (sample.cpu - last_cpu) * 10.0
                );
                (last_results, last_cpu) = (done, sample.cpu);
                next_report += Duration::from_secs(10);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Ok(())
    }
    .await;
    if let Err(why) = &ran {
        eprintln!("[{workers} workers] {why}: stopping");
        stop_tx.send_replace(Some(why.clone()));
    }
    let mut reports = Vec::with_capacity(workers);
    for handle in handles {
        reports.push(handle.await.context("a worker task panicked")?);
    }
    let stopped = Instant::now();
    eprintln!(
        "[{workers} workers] workers done after {:.2} s; waiting for the server to exit",
        released.map_or(0.0, |r| r.elapsed().as_secs_f64())
    );
    let status = if let Some((_, status)) = server_exit {
        status.to_string()
    } else if ran.is_ok() {
        match tokio::time::timeout(Duration::from_secs(120), server.child.wait()).await {
            Ok(status) => status?.to_string(),
            Err(_) => {
                let _ = server.child.kill().await;
                "did not exit within 120 s of its workers leaving: killed".to_owned()
            }
        }
    } else {
        let _ = server.child.kill().await;
        "killed (timed out)".to_owned()
    };
    let exited = Instant::now();
    let last = *peak.lock().unwrap();

    let last_result = reports.iter().filter_map(|r| r.last_result).max();
    let job_time = match (released, &ran, last_result) {
        (Some(released), Ok(()), Some(last)) => last.duration_since(released),
        (Some(released), _, _) => stopped.duration_since(released),
        (None, _, _) => Duration::ZERO,
    };
    let mut handshakes: Vec<u32> = reports
        .iter()
        .filter_map(|r| r.handshake)
        .map(|d| u32::try_from(d.as_micros()).unwrap_or(u32::MAX))
        .collect();
    handshakes.sort_unstable();
    let mut latencies: Vec<u32> = reports
        .iter()
        .flat_map(|r| r.latencies.iter().copied())
        .collect();
    latencies.sort_unstable();
    // Failing to reconnect once the job is over (the server says goodbye to everyone, stops
    // listening, then exits) is not an error of the server's.
    let over = reports
        .iter()
        .filter_map(|r| r.goodbye_at)
        .chain(server_exit.map(|(exit, _)| exit))
        .min();
    let counts = |(when, error): &(Instant, String)| {
        !(error.starts_with("connect:") && over.is_some_and(|over| *when >= over))
    };
    let errors: Vec<String> = reports
        .iter()
        .enumerate()
        .flat_map(|(i, r)| {
            r.errors
                .iter()
                .filter(|e| counts(e))
                .map(move |(_, e)| format!("sim-{i}: {e}"))
        })
        .collect();
    let troubled = reports
        .iter()
        .filter(|r| r.errors.iter().any(counts))
        .count();
    let stopped_workers = reports.iter().filter(|r| r.stopped.is_some()).count();
    let results_ok = if ran.is_ok() {
        check_results(&dir.path().join("results.jsonl"), tasks)
    } else {
        Err("not checked (the run stopped early)".into())
    };
    let log = server.log.lock().unwrap();
    let mut log_kinds: Vec<(String, u64)> =
        log.kinds.iter().map(|(k, v)| (k.clone(), *v)).collect();
    log_kinds.sort_by_key(|kind| std::cmp::Reverse(kind.1));
    let row = Row {
        workers,
        tasks,
        failure: ran.err(),
        connect,
        handshakes,
        job_time,
        results_sent: reports.iter().map(|r| r.results).sum(),
        shutdown: last_result
            .filter(|_| status.starts_with("exit"))
            .map(|t| exited.duration_since(t)),
        rss_before,
        rss_connected,
        bare: None,
        peak: last.hwm.max(last.rss),
        server_cpu: last.cpu - cpu_at_release,
        bench_cpu: proc_sample(std::process::id()).map_or(0.0, |s| s.cpu) - bench_cpu_at_release,
        bench_peak: proc_sample(std::process::id()).map_or(0, |s| s.hwm),
        latencies,
        batches: reports.iter().map(|r| r.batches).sum(),
        goodbyes: reports.iter().filter(|r| r.goodbye.is_some()).count(),
        troubled,
        stopped: stopped_workers,
        errors,
        results_ok,
        exit: status,
        log_warnings: log.warnings,
        log_errors: log.errors,
        log_samples: log.samples.clone(),
        log_kinds,
        summary: log.summary.clone(),
        kept: None,
    };
    drop(log);
    let cancelled: u64 = reports.iter().map(|r| r.cancelled).sum();
    if cancelled > 0 {
        eprintln!("[{workers} workers] {cancelled} held tasks were cancelled");
    }
    let kept = cli.keep.then(|| dir.keep());
    Ok(Row { kept, ..row })
}

/// Server memory per queued task: RSS after startup with `tasks` inputs against 1, for each
/// way of giving inputs.
async fn queue_memory(bin: &Path, tasks: u64, keep: bool) -> Result<Vec<(String, u64, u64)>> {
    let testbed = testbed()?.display().to_string();
    let mut rows = Vec::new();
    for kind in ["range", "values", "file"] {
        let mut rss = Vec::new();
        for count in [1, tasks] {
            let dir = tempfile::Builder::new()
                .prefix(&format!("dipla-queue-{kind}-{count}-"))
                .tempdir()?;
            // Inputs like the range's, but spelt out: 0..count.
            let inputs = match kind {
                "range" => format!("{{ range = {{ start = 0, end = {count} }} }}"),
                "values" => {
                    let mut list = String::new();
                    for i in 0..count {
                        if i > 0 {
                            list.push_str(", ");
                        }
                        write!(list, "{i}")?;
                    }
                    format!("{{ values = [{list}] }}")
                }
                _ => {
                    let mut lines = String::new();
                    for i in 0..count {
                        writeln!(lines, "{i}")?;
                    }
                    std::fs::write(dir.path().join("inputs.jsonl"), lines)?;
                    "{ file = \"inputs.jsonl\" }".to_owned()
                }
            };
            let manifest = dir.path().join("job.toml");
            std::fs::write(
                &manifest,
                format!(
                    "name = \"queue\"\n[modules]\nbed = {testbed:?}\n[[stages]]\n\
                     name = \"square\"\ntask = \"bed.square\"\ninputs = {inputs}\n"
                ),
            )?;
            let server = ServerProcess::start(bin, &manifest, dir.path()).await?;
            let settled = server.settled_rss(Duration::from_secs(1)).await?;
            server.kill().await;
            eprintln!("[queue] {kind}, {count} tasks: RSS {}", mib(settled));
            rss.push(settled);
            if keep {
                eprintln!("[queue] kept {}", dir.keep().display());
            }
        }
        rows.push((kind.to_owned(), rss[0], rss[1]));
    }
    Ok(rows)
}

fn print(rows: &[Row], queue: &[(String, u64, u64)], queued: u64, profile: &Profile) {
    println!("Dipla scale benchmark on {}", machine());
    println!(
        "(one dipla-server process, journal on, signed receipts; simulated workers in one \
         process over loopback, 1 core each, answering `square` natively and reporting \
         {} fuel and {} µs per task, {})",
        profile.fuel,
        profile.micros,
        match &profile.benchmark {
            Some(benchmark) => format!("with a self-benchmark (score {:.0})", benchmark.score),
            None => "without a self-benchmark".to_owned(),
        }
    );
    println!();
    let mut header = "| figure |".to_owned();
    let mut rule = "|---|".to_owned();
    for row in rows {
        write!(header, " {} workers |", row.workers).unwrap();
        rule.push_str("---|");
    }
    println!("{header}\n{rule}");
    let line = |name: &str, cell: &dyn Fn(&Row) -> String| {
        let mut text = format!("| {name} |");
        for row in rows {
            write!(text, " {} |", cell(row)).unwrap();
        }
        println!("{text}");
    };
    line("tasks", &|r| r.tasks.to_string());
    line("run", &|r| match &r.failure {
        None => "ran until the server exited".to_owned(),
        Some(why) => format!("**stopped: {why}**"),
    });
    line("all workers joined in", &|r| {
        format!("{:.2} s", r.connect.as_secs_f64())
    });
    line("handshake p50 / p99 / max", &|r| {
        format!(
            "{} / {} / {}",
            ms(quantile(&r.handshakes, 0.5)),
            ms(quantile(&r.handshakes, 0.99)),
            ms(quantile(&r.handshakes, 1.0))
        )
    });
    line("job time (release to last result)", &|r| {
        format!("{:.2} s", r.job_time.as_secs_f64())
    });
    line("results sent by the workers", &|r| {
        r.results_sent.to_string()
    });
    line("**tasks/s**", &|r| {
        let rate = r.results_sent.min(r.tasks) as f64 / r.job_time.as_secs_f64().max(1e-9);
        if r.failure.is_none() {
            format!("**{rate:.0}**")
        } else {
            format!("**{rate:.0}** (until stopped)")
        }
    });
    line("tasks/s incl. joining", &|r| {
        format!(
            "{:.0}",
            r.results_sent.min(r.tasks) as f64 / (r.connect + r.job_time).as_secs_f64()
        )
    });
    line("server exited, after the last result", &|r| {
        r.shutdown
            .map_or("-".to_owned(), |d| format!("{:.2} s", d.as_secs_f64()))
    });
    line("server CPU during the job", &|r| {
        format!(
            "{:.1} s ({:.0}% of one core)",
            r.server_cpu,
            100.0 * r.server_cpu / r.job_time.as_secs_f64().max(1e-9)
        )
    });
    line("bench process CPU during the job", &|r| {
        format!(
            "{:.1} s ({:.0}% of one core)",
            r.bench_cpu,
            100.0 * r.bench_cpu / r.job_time.as_secs_f64().max(1e-9)
        )
    });
    line("server RSS before workers", &|r| mib(r.rss_before));
    line("server RSS, all workers connected", &|r| {
        mib(r.rss_connected)
    });
    line("server peak RSS (VmHWM)", &|r| mib(r.peak));
    line("**server memory per connected worker**", &|r| {
        format!("**{:.1} KiB**", r.per_worker() / 1024.0)
    });
    line(
        "server memory per bare WebSocket connection (no hello)",
        &|r| {
            r.bare.map_or("-".to_owned(), |(bytes, _)| {
                format!("{:.1} KiB", bytes / 1024.0)
            })
        },
    );
    line(
        "scheduling latency p50 (results sent → next tasks, first 90% of results)",
        &|r| ms(quantile(&r.latencies, 0.5)),
    );
    line("scheduling latency p90", &|r| {
        ms(quantile(&r.latencies, 0.9))
    });
    line("scheduling latency p99", &|r| {
        ms(quantile(&r.latencies, 0.99))
    });
    line("scheduling latency max", &|r| {
        ms(quantile(&r.latencies, 1.0))
    });
    line("batches received", &|r| r.batches.to_string());
    line("**errors** (refused, closed early, server silent)", &|r| {
        format!("**{}** (on {} workers)", r.errors.len(), r.troubled)
    });
    line(
        "workers that got a goodbye / stopped while reconnecting",
        &|r| format!("{} / {}", r.goodbyes, r.stopped),
    );
    line("server WARN / ERROR log lines", &|r| {
        format!("{} / {}", r.log_warnings, r.log_errors)
    });
    line("server exit", &|r| r.exit.clone());
    line("results file", &|r| match &r.results_ok {
        Ok(()) => format!("{} lines, all correct", r.tasks),
        Err(why) => format!("BAD: {why}"),
    });
    line("bench process peak RSS", &|r| mib(r.bench_peak));
    if !queue.is_empty() {
        println!();
        println!(
            "| server memory per queued task ({queued} vs 1, no workers) | RSS with 1 | RSS with {queued} | per task |"
        );
        println!("|---|---|---|---|");
        for (kind, one, many) in queue {
            let per = many.saturating_sub(*one) as f64 / (queued.saturating_sub(1)).max(1) as f64;
            let what = match kind.as_str() {
                "range" => "inputs = { range = ... }",
                "values" => "inputs = { values = [...] } (inline)",
                _ => "inputs = { file = \"....jsonl\" }",
            };
            println!(
                "| {what} | {} | {} | **{per:.0} B** |",
                mib(*one),
                mib(*many)
            );
        }
    }
    println!();
    println!(
        "Targets: < 10 KB per connected worker, < 200 B per queued task, 5,000 workers served without errors."
    );
    for row in rows {
        if let Some(summary) = &row.summary {
            println!(
                "\n{} workers, the server's summary: `{summary}`",
                row.workers
            );
        }
        if !row.errors.is_empty() {
            println!(
                "\n{} workers: {} errors, by kind:",
                row.workers,
                row.errors.len()
            );
            let mut kinds: HashMap<&str, (usize, &str)> = HashMap::new();
            for error in &row.errors {
                let what = error.split_once(": ").map_or(error.as_str(), |(_, e)| e);
                let kind = what.split(" (").next().unwrap_or(what);
                kinds.entry(kind).or_insert((0, error)).0 += 1;
            }
            let mut kinds: Vec<_> = kinds.into_iter().collect();
            kinds.sort_by_key(|kind| std::cmp::Reverse(kind.1.0));
            for (kind, (count, example)) in kinds.iter().take(10) {
                println!("- {count} x {kind} (e.g. `{example}`)");
            }
        }
        if !row.log_kinds.is_empty() {
            println!(
                "\n{} workers: server warnings/errors by message:",
                row.workers
            );
            for (kind, count) in row.log_kinds.iter().take(10) {
                println!("- {count} x {kind}");
            }
            for sample in row.log_samples.iter().take(5) {
                println!("  e.g. `{sample}`");
            }
        }
        if let Some(dir) = &row.kept {
            println!("\n{} workers: files kept in {}", row.workers, dir.display());
        }
    }
}

fn main() -> Result<()> {
    let mut cli = Cli::parse();
    if cli.quick {
        cli.workers = vec![50];
        cli.tasks = 5_000;
    }
    ensure!(cli.tasks > 1, "--tasks must be at least 2");
    ensure!(
        !cli.workers.is_empty() && cli.workers.iter().all(|&n| n > 0),
        "--workers must list positive counts"
    );
    let files = raise_fd_limit()?;
    let most = *cli.workers.iter().max().unwrap_or(&0) as u64;
    ensure!(
        files > most + 100,
        "the open-files limit is {files}: too low for {most} workers"
    );
    let bin = server_bin(cli.server_bin.as_deref())?;
    eprintln!("server: {}; open files limit {files}", bin.display());
    let profile = calibrate(&cli)?;
    eprintln!(
        "workers report {} fuel, {} µs per task; self-benchmark: {}",
        profile.fuel,
        profile.micros,
        profile
            .benchmark
            .as_ref()
            .map_or("none".to_owned(), |b| format!("score {:.0}", b.score))
    );
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let mut rows = Vec::new();
        for &workers in &cli.workers {
            let mut row = run_size(&cli, &bin, &profile, workers, cli.tasks).await?;
            match bare_connections(&cli, &bin, workers).await {
                Ok(bare) => row.bare = Some(bare),
                Err(error) => eprintln!("[{workers} workers] bare connections: {error:#}"),
            }
            rows.push(row);
        }
        let queue = if cli.no_queue {
            Vec::new()
        } else {
            queue_memory(&bin, cli.tasks, cli.keep).await?
        };
        print(&rows, &queue, cli.tasks, &profile);
        let failed = rows
            .iter()
            .any(|row| !row.errors.is_empty() || !row.complete());
        ensure!(
            !failed,
            "some runs failed, stopped early or gave wrong results"
        );
        Ok(())
    })
}
