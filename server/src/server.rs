use std::io::Write;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use axum::serve::ListenerExt;
use dipla_sandbox::Limits;
use dipla_worker::{ModuleCache, WorkerConfig};
use tokio::net::TcpListener;
use tokio::task::JoinSet;

use crate::coordinator::Counts;
use crate::output::write_line;
use crate::state::Handle;
use crate::stats::StatsSnapshot;
use crate::{Job, transport};

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
}

impl Default for RunOptions {
    fn default() -> Self {
        Self {
            listen: None,
            local_workers: std::thread::available_parallelism().map_or(1, usize::from),
            cache_dir: None,
            local_caps: WorkerConfig::new("").caps,
            only_stage: None,
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
}

impl Summary {
    /// Whether no task failed (tasks left unrun by a stage that met its goal are no failure).
    pub fn success(&self) -> bool {
        self.counts.failed == 0
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
        } = self.counts;
        let secs = self.elapsed.as_secs_f64();
        write!(
            f,
            "{} tasks: {succeeded} succeeded, {failed} failed, {stopped} not run once their \
             stage met its goal ({retried} retries, {requeued} re-run after a worker was lost) \
             in {secs:.2} s ({:.0} tasks/s); {} workers, {} module transfers",
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
    handle: Handle,
    options: RunOptions,
}

impl Server {
    /// Binds the worker endpoint for `job`.
    ///
    /// # Errors
    /// When the address cannot be bound.
    pub async fn bind(job: Job, options: RunOptions) -> std::io::Result<Self> {
        if let Some(name) = &options.only_stage
            && !job.stages.iter().any(|stage| &stage.name == name)
        {
            let names: Vec<&str> = job.stages.iter().map(|stage| stage.name.as_str()).collect();
            return Err(std::io::Error::other(format!(
                "--stage {name}: the job has no such stage (stages: {})",
                names.join(", ")
            )));
        }
        let addr = options.listen.unwrap_or((Ipv4Addr::LOCALHOST, 0).into());
        let listener = TcpListener::bind(addr).await?;
        Ok(Self {
            listener,
            handle: Handle::new(job),
            options,
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
        let mut addr = self.local_addr()?;
        if addr.ip().is_unspecified() {
            addr.set_ip(Ipv4Addr::LOCALHOST.into());
        }
        Ok(format!("ws://{addr}/ws"))
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
        let url = self.worker_url()?;
        let Self {
            listener,
            handle,
            options,
        } = self;
        let started = Instant::now();
        // Small messages must not wait for Nagle's algorithm (40 ms stalls with delayed ACKs).
        let listener = listener.tap_io(|stream| {
            if let Err(error) = stream.set_nodelay(true) {
                tracing::debug!(%error, "cannot set TCP_NODELAY");
            }
        });
        let app = transport::router(handle.clone());
        let server = tokio::spawn(axum::serve(listener, app).into_future());
        tracing::info!(%url, tasks = handle.job().task_count(), "accepting workers");

        let mut workers = JoinSet::new();
        if options.local_workers > 0 {
            let sandbox = handle.job().sandbox.clone();
            let cache = ModuleCache::new(sandbox, options.cache_dir.clone())?;
            for module in &handle.job().modules {
                cache.seed(module.hash, module.guest.clone());
            }
            for i in 0..options.local_workers {
                let config = WorkerConfig {
                    server: url.clone(),
                    name: format!("local-{i}"),
                    cores: 1,
                    caps: options.local_caps,
                };
                let cache = cache.clone();
                workers.spawn(async move {
                    if let Err(error) = dipla_worker::run(&config, &cache).await {
                        tracing::warn!(worker = %config.name, %error, "local worker stopped");
                    }
                });
            }
        }

        let mut first_result = None;
        let only = options.only_stage.as_ref().and_then(|name| {
            handle
                .job()
                .stages
                .iter()
                .position(|stage| &stage.name == name)
        });
        let written = write_results(&handle, &mut out, only, || {
            first_result.get_or_insert_with(|| started.elapsed());
        })
        .await;
        let elapsed = started.elapsed();
        handle.shared.done.send_replace(true);
        let farewell = async {
            while handle.connected() > 0 {
                let closed = handle.shared.disconnected.notified();
                if handle.connected() == 0 {
                    break;
                }
                closed.await;
            }
            while workers.join_next().await.is_some() {}
        };
        if tokio::time::timeout(FAREWELL, farewell).await.is_err() {
            tracing::debug!("some workers did not leave in time");
        }
        server.abort();
        written?;
        let (tasks, explored) = {
            let coordinator = handle.coordinator();
            let dropped: u64 = (0..handle.job().stages.len())
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
        Ok(Summary {
            tasks,
            counts: handle.counts(),
            stats: handle.stats(),
            elapsed,
            first_result,
        })
    }
}

/// How long connections get to close once the job is done.
const FAREWELL: Duration = Duration::from_secs(5);

/// Writes results as they become ready, in order, until the job is complete.
async fn write_results(
    handle: &Handle,
    out: &mut impl Write,
    only: Option<usize>,
    mut on_write: impl FnMut(),
) -> std::io::Result<()> {
    loop {
        let progress = handle.shared.progress.notified();
        // Inputs of later stages are read from the coordinator, so lines are made under its
        // lock and written after.
        let (lines, complete) = {
            let mut coordinator = handle.coordinator();
            let ready = coordinator.take_ready();
            let mut lines = Vec::with_capacity(ready.len());
            for finished in ready
                .iter()
                .filter(|f| only.is_none_or(|s| s == f.task.stage))
            {
                let stage = &handle.job().stages[finished.task.stage];
                let input = handle.job().line_input(finished.task, &coordinator);
                let mut line = Vec::new();
                write_line(&mut line, &stage.name, &input, finished)?;
                lines.push(line);
            }
            (lines, coordinator.is_complete())
        };
        for line in &lines {
            out.write_all(line)?;
        }
        let ready = lines;
        if !ready.is_empty() {
            on_write();
            out.flush()?;
        }
        if complete {
            return Ok(());
        }
        progress.await;
    }
}
