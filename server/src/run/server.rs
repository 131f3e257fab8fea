//! The manifest runner: a whole job known up front, its results written as JSON Lines.

use std::io::Write;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use dipla_sandbox::Limits;
use dipla_worker::WorkerConfig;
use tokio::net::TcpListener;

use crate::Job;
use crate::net::gate::Gate;
use crate::net::state::Handle;
use crate::net::stats::StatsSnapshot;
use crate::net::tls::TlsFiles;
use crate::net::transport::Venue;
use crate::run::engine::{self, Engine, LocalWorkers};
use crate::store::journal::{Fresh, Journal, Opened};
use crate::store::output::write_line;
use dipla_core::{Counts, Keep};

/// The most workers a server accepts at once unless told otherwise.
pub const DEFAULT_MAX_WORKERS: usize = 10_000;

/// How `run` runs a job.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Where to accept workers; `None` for loopback on a free port (local workers only).
    pub listen: Option<SocketAddr>,
    /// Workers to run inside the server process, one core each.
    pub local_workers: usize,
    /// Where local workers cache compiled modules (`None`: in memory only).
    pub cache_dir: Option<PathBuf>,
    /// Caps for local workers' tasks.
    pub local_caps: Limits,
    /// Write only this stage's results (every stage still runs).
    pub only_stage: Option<String>,
    /// Let idle faster workers run copies of tasks straggling on slower ones.
    pub speculate: bool,
    /// Give out no task until this many workers have joined (local workers count), so that
    /// a fleet starting together shares the work from the first task; afterwards the job
    /// runs on whoever is connected. 0 or 1: start with the first worker.
    pub min_workers: usize,
    /// Admit only workers presenting one of these tokens (empty: admit all).
    pub worker_tokens: Vec<String>,
    /// How often to ping workers; one silent for three periods is dropped and its tasks
    /// go elsewhere.
    pub heartbeat: Duration,
    /// How many times a task may be lost with its worker before it is failed.
    pub max_lost: u32,
    /// The most workers connected at once (more are refused with a reason).
    pub max_workers: usize,
    /// Where to journal the job (SQLite): run again on the same file, a job killed midway
    /// resumes without computing its accepted results again. `None`: not journaled.
    pub state: Option<PathBuf>,
    /// When to discard what the state file holds and start over.
    pub fresh: Fresh,
    /// The tokens the operator's HTTP API (`/api`) accepts; none: the API is off.
    pub admin_tokens: Vec<String>,
    /// The most worker identities accepted from one IP address (`None`: no cap).
    pub max_identities_per_ip: Option<usize>,
    /// The most cores any worker is believed to have.
    pub max_cores_per_worker: usize,
    /// Serve TLS (`wss://`, `https://`) with this certificate and key; `None`: plain text.
    pub tls: Option<TlsFiles>,
    /// The most connections open at once from one IP address, loopback included (the local
    /// workers are allowed on top); more are closed as soon as they are accepted.
    pub max_connections_per_ip: usize,
    /// How long a connection has to send each HTTP request head, the WebSocket upgrade
    /// included ([`crate::net::http::HEAD_TIMEOUT`]).
    pub head_timeout: Duration,
    /// Show what every task logged (`dipla_guest::log!`) on stderr as workers report it,
    /// one log event per line (`run --log-tasks`).
    pub log_tasks: bool,
    /// The largest module the server serves, in MiB (`--max-module-mb`): a job with a
    /// larger one is refused before it starts. Workers set their own limit.
    pub max_module_mb: u32,
    /// What the project computes, in a sentence or two, shown to volunteers on the
    /// `/volunteer` page (`--description`, which `--announce` also sends the directory).
    pub description: Option<String>,
    /// For tests only: the `/volunteer` page honours its test hooks (`?lie`: a page that
    /// lies, to show it is caught). Never set by `dipla-server` unless given the hidden
    /// `--volunteer-test-hooks`.
    #[doc(hidden)]
    pub volunteer_test_hooks: bool,
}

impl RunOptions {
    /// The admission rules these options set.
    pub(crate) fn gate(&self) -> Gate {
        let gate = Gate::default();
        gate.require_tokens(crate::Tokens::new(&self.worker_tokens));
        gate.require_admin(crate::Tokens::new(&self.admin_tokens));
        gate.set_identities_per_ip(self.max_identities_per_ip);
        gate.set_heartbeat(self.heartbeat);
        gate.set_max_workers(self.max_workers);
        gate.set_max_cores(self.max_cores_per_worker);
        gate.door.set_per_ip(self.max_connections_per_ip);
        gate.door.set_head_timeout(self.head_timeout);
        gate.set_volunteer(crate::net::gate::Volunteer {
            name: None,
            description: self.description.clone(),
            test_hooks: self.volunteer_test_hooks,
        });
        gate
    }
}

impl Default for RunOptions {
    fn default() -> Self {
        Self {
            listen: None,
            local_workers: std::thread::available_parallelism().map_or(1, usize::from),
            cache_dir: None,
            local_caps: WorkerConfig::new("").caps,
            only_stage: None,
            speculate: true,
            min_workers: 0,
            worker_tokens: Vec::new(),
            heartbeat: crate::net::state::DEFAULT_HEARTBEAT,
            max_lost: dipla_core::MAX_LOST,
            max_workers: DEFAULT_MAX_WORKERS,
            state: None,
            fresh: Fresh::Never,
            admin_tokens: Vec::new(),
            max_identities_per_ip: None,
            max_cores_per_worker: crate::net::gate::DEFAULT_MAX_CORES,
            tls: None,
            max_connections_per_ip: crate::net::door::DEFAULT_MAX_CONNECTIONS_PER_IP,
            head_timeout: crate::net::http::HEAD_TIMEOUT,
            log_tasks: false,
            max_module_mb: dipla_protocol::DEFAULT_MAX_MODULE_MB,
            description: None,
            volunteer_test_hooks: false,
        }
    }
}

/// What a finished run did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Summary {
    /// Tasks in the job.
    pub tasks: u64,
    /// What happened to them.
    pub counts: Counts,
    /// Traffic.
    pub stats: StatsSnapshot,
    /// Wall-clock time from accepting workers to the last result.
    pub elapsed: Duration,
    /// Wall-clock time from accepting workers to the first result written.
    pub first_result: Option<Duration>,
    /// Whether the operator cancelled the job before it finished.
    pub cancelled: bool,
}

impl Summary {
    /// Whether the job finished and no task failed (tasks left unrun by a stage that met its
    /// goal are no failure).
    pub fn success(&self) -> bool {
        self.counts.failed == 0 && !self.cancelled
    }

    /// The summary as JSON (`dipla-server run --summary-json`): what happened to the tasks,
    /// the traffic, and the times in seconds.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "tasks": self.tasks,
            "success": self.success(),
            "cancelled": self.cancelled,
            "elapsed_secs": self.elapsed.as_secs_f64(),
            "first_result_secs": self.first_result.map(|first| first.as_secs_f64()),
            "counts": self.counts,
            "traffic": self.stats,
        })
    }
}

impl std::fmt::Display for Summary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let Counts {
            succeeded,
            failed,
            retried,
            requeued,
            stopped,
            speculated,
            replicas,
            rejected,
            untrusted,
            revoked,
            expired,
            restored,
        } = self.counts;
        let secs = self.elapsed.as_secs_f64();
        if self.cancelled {
            f.write_str("cancelled; ")?;
        }
        write!(
            f,
            "{} tasks: {succeeded} succeeded, {failed} failed, {stopped} not run once their \
             stage met its goal ({restored} task results restored from the journal, {retried} retries, {requeued} re-run after a worker was lost, \
             {expired} overdue and given out again, {speculated} speculative copies) in {secs:.2} s ({:.0} tasks/s); {} workers, {} \
             module transfers; checks: {replicas} replicas, {rejected} outputs rejected by a \
             verifier, {untrusted} workers untrusted, {revoked} results revoked",
            self.tasks,
            (succeeded + failed) as f64 / secs.max(1e-9),
            self.stats.workers_joined,
            self.stats.module_transfers,
        )
    }
}

/// A job bound to a listening socket, ready to run.
pub struct Server {
    listener: TcpListener,
    tls: Option<Arc<rustls::ServerConfig>>,
    handle: Handle,
    options: RunOptions,
    journal: Option<Journal>,
}

impl Server {
    /// Binds the worker endpoint for `job`.
    ///
    /// With a state file, the job's journal is opened (and locked) and what it holds is
    /// replayed: those results are final before any worker joins.
    ///
    /// # Errors
    /// When the address cannot be bound, `only_stage` names no stage of the job, a module is
    /// over `max_module_mb`, or the state file cannot be used (in use, another job's, damaged).
    pub async fn bind(job: Job, options: RunOptions) -> std::io::Result<Self> {
        job.check_module_sizes(options.max_module_mb)
            .map_err(std::io::Error::other)?;
        let only = match &options.only_stage {
            None => None,
            Some(name) => match job.stages.iter().position(|stage| &stage.name == name) {
                Some(stage) => Some(stage),
                None => {
                    let names: Vec<&str> =
                        job.stages.iter().map(|stage| stage.name.as_str()).collect();
                    return Err(std::io::Error::other(format!(
                        "--stage {name}: the job has no such stage (stages: {})",
                        names.join(", ")
                    )));
                }
            },
        };
        let (job, opened) = open_journal(job, options.state.clone(), options.fresh).await?;
        let tls = match &options.tls {
            None => None,
            Some(files) => Some(files.config().map_err(std::io::Error::other)?),
        };
        let addr = options.listen.unwrap_or((Ipv4Addr::LOCALHOST, 0).into());
        let listener = TcpListener::bind(addr).await.map_err(|error| {
            std::io::Error::new(error.kind(), format!("cannot listen on {addr}: {error}"))
        })?;
        // The writer takes the results of the stages it writes; others are dropped once the
        // stages reading them are done with them.
        let keep = |stage: usize| {
            if only.is_none_or(|only| only == stage) {
                Keep::Ordered
            } else {
                Keep::Nothing
            }
        };
        let handle = Handle::new(job, keep, Arc::new(options.gate()));
        handle.lock().coordinator.set_speculation(options.speculate);
        handle
            .lock()
            .coordinator
            .wait_for_workers(options.min_workers);
        handle.lock().coordinator.set_max_lost(options.max_lost);
        handle.lock().logs.show = options.log_tasks;
        let journal = opened.map(|opened| restore(&handle, opened));
        Ok(Self {
            listener,
            tls,
            handle,
            options,
            journal,
        })
    }

    /// The address workers connect to.
    ///
    /// # Errors
    /// When the socket has no address (it always has once bound).
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// The URL workers connect to (`ws://ADDR/ws`, with loopback for an unspecified address).
    ///
    /// # Errors
    /// When the socket has no address.
    pub fn worker_url(&self) -> std::io::Result<String> {
        Ok(engine::worker_url(self.local_addr()?, self.tls.is_some()))
    }

    /// A handle to watch the job while it runs.
    pub fn handle(&self) -> Handle {
        self.handle.clone()
    }

    /// Runs the job to the end, writing result lines to `out` in input order as they become
    /// available, and returns the summary.
    ///
    /// # Errors
    /// When writing results fails, or no worker can ever join (no local workers and no
    /// `listen` address).
    pub async fn run(self, mut out: impl Write) -> std::io::Result<Summary> {
        if self.options.local_workers == 0 && self.options.listen.is_none() {
            return Err(std::io::Error::other(
                "no workers: give --local-workers N, or --listen ADDR for remote workers",
            ));
        }
        let Self {
            listener,
            tls,
            handle,
            options,
            journal,
        } = self;
        let started = Instant::now();
        let sandbox = handle.lock().job.sandbox.clone();
        let local = LocalWorkers {
            count: options.local_workers,
            cache_dir: options.cache_dir.clone(),
            caps: options.local_caps,
            token: options.worker_tokens.first().cloned(),
        };
        // The server runs verifiers itself: compile their modules while workers join, not
        // when the first result waits for its check.
        let verifiers: Vec<_> = {
            let core = handle.lock();
            core.job
                .stages
                .iter()
                .filter_map(|stage| core.job.guest(&stage.verify.as_ref()?.0).cloned())
                .collect()
        };
        for guest in verifiers {
            tokio::task::spawn_blocking(move || guest.compiled().map(|_| ()));
        }
        let engine = Engine::start(
            listener,
            tls,
            Venue::Job(handle.clone()),
            engine::job_routes(&handle),
            &handle.lock().job.modules.clone(),
            &sandbox,
            &local,
        )?;

        let mut first_result = None;
        let written = write_results(&handle, &mut out, || {
            first_result.get_or_insert_with(|| started.elapsed());
        })
        .await;
        let elapsed = started.elapsed();
        engine.shutdown().await;
        // Every worker has left (and been journaled): the writer may finish.
        close_journal(&handle, journal).await?;
        written?;
        Ok(summarize(&handle, elapsed, first_result))
    }
}

/// Opens the journal at `state` for `job`, if any, and reads what it holds.
pub(crate) async fn open_journal(
    job: Job,
    state: Option<PathBuf>,
    fresh: Fresh,
) -> std::io::Result<(Job, Option<Opened>)> {
    let Some(path) = state else {
        return Ok((job, None));
    };
    let (job, opened) = tokio::task::spawn_blocking(move || {
        let opened = Journal::open(&path, &job, fresh);
        (job, opened)
    })
    .await
    .map_err(std::io::Error::other)?;
    Ok((job, Some(opened.map_err(std::io::Error::other)?)))
}

/// Replays what the journal held into the job's coordinator, which journals from now on.
pub(crate) fn restore(handle: &Handle, opened: Opened) -> Journal {
    let mut core = handle.lock();
    let restored = opened.records.len();
    for record in opened.records {
        core.coordinator.restore(record);
    }
    core.set_journal(Some(opened.sink));
    if opened.earlier_runs > 0 {
        tracing::info!(
            state = %opened.journal.path().display(),
            runs = opened.earlier_runs,
            records = restored,
            results = core.coordinator.counts().restored,
            "resuming the job from its journal"
        );
    }
    opened.journal
}

/// Stops journaling (every worker must have left) and marks the run finished.
pub(crate) async fn close_journal(
    handle: &Handle,
    journal: Option<Journal>,
) -> std::io::Result<()> {
    handle.lock().set_journal(None);
    if let Some(journal) = journal {
        let summary = format!("{:?}", handle.counts());
        tokio::task::spawn_blocking(move || journal.close(&summary))
            .await
            .map_err(std::io::Error::other)?
            .map_err(std::io::Error::other)?;
    }
    Ok(())
}

/// What a finished run of `handle`'s job did.
pub(crate) fn summarize(
    handle: &Handle,
    elapsed: Duration,
    first_result: Option<Duration>,
) -> Summary {
    {
        let (tasks, explored) = {
            let core = handle.lock();
            let coordinator = &core.coordinator;
            let dropped: u64 = (0..coordinator.stage_count())
                .map(|stage| coordinator.dropped(stage))
                .sum();
            (coordinator.total_lines(), dropped)
        };
        if explored > 0 {
            tracing::warn!(
                dropped = explored,
                "explore stages reached max_tasks and dropped new inputs"
            );
        }
        Summary {
            tasks,
            counts: handle.counts(),
            stats: handle.stats(),
            elapsed,
            first_result,
            cancelled: handle.is_cancelled(),
        }
    }
}

/// Writes results as they become ready, in order, until the job is complete.
pub(crate) async fn write_results(
    handle: &Handle,
    out: &mut impl Write,
    mut on_write: impl FnMut(),
) -> std::io::Result<()> {
    let mut progress = handle.shared.progress.subscribe();
    loop {
        if handle.is_cancelled() {
            out.flush()?;
            return Ok(());
        }
        progress.borrow_and_update();
        // Lines are made under the lock (they read the job) and written after.
        let (lines, complete) = {
            let mut core = handle.lock();
            let ready = core.coordinator.take_ready();
            let mut lines = Vec::with_capacity(ready.len());
            for finished in &ready {
                let log = core.logs.take(finished.task);
                let stage = &core.job.stages[finished.task.stage];
                let input = core.job.line_input(finished, &core.coordinator);
                let log = log.as_deref().filter(|_| finished.outcome.is_err());
                let mut line = Vec::new();
                write_line(&mut line, &stage.name, &input, finished, log)?;
                lines.push(line);
            }
            (lines, core.coordinator.is_complete())
        };
        for line in &lines {
            out.write_all(line)?;
        }
        if !lines.is_empty() {
            on_write();
            out.flush()?;
        }
        if complete {
            return Ok(());
        }
        if progress.changed().await.is_err() {
            return Err(std::io::Error::other("the server stopped"));
        }
    }
}
