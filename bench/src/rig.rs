//! Running a job as a user does: `dipla-server run` with its defaults (durable journal, signed
//! receipts) and separate `dipla-worker` processes on loopback, observed from outside.
//!
//! Each worker keeps its identity and its disk cache of compiled modules across the runs of one
//! [`Rig`], as a volunteer's machine does between jobs; a fresh rig starts cold.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use serde::Deserialize;

/// The `--summary-json` a `dipla-server run` writes.
#[derive(Debug, Clone, Deserialize)]
pub struct ServerSummary {
    /// Tasks in the job (every stage).
    pub tasks: u64,
    /// Seconds from accepting workers to the last result.
    pub elapsed_secs: f64,
    /// Seconds from accepting workers to the first result written.
    pub first_result_secs: Option<f64>,
    /// Whether every task succeeded.
    pub success: bool,
    /// What happened to the tasks and the workers.
    pub counts: Counts,
    /// Traffic.
    pub traffic: Traffic,
}

/// The counts of a run the benchmarks look at (the server writes more).
#[derive(Debug, Clone, Copy, Deserialize)]
pub struct Counts {
    /// Tasks that ended failed.
    pub failed: u64,
    /// Identities marked untrusted (caught lying, or unreliable).
    pub untrusted: u64,
}

/// Protocol traffic of one run, as the server counted it.
#[derive(Debug, Clone, Copy, Deserialize)]
pub struct Traffic {
    /// Modules sent (each at most once per connection).
    pub module_transfers: u64,
    /// Bytes of those modules.
    pub module_bytes: u64,
    /// Bytes sent, modules included.
    pub bytes_sent: u64,
    /// Bytes received.
    pub bytes_received: u64,
}

impl Traffic {
    /// Bytes both ways, modules included.
    pub fn total(&self) -> u64 {
        self.bytes_sent + self.bytes_received
    }
}

/// What one run of a job showed.
#[derive(Debug, Clone)]
pub struct Run {
    /// The server's own account.
    pub summary: ServerSummary,
    /// From starting `dipla-server run` to its first result (its start-up, the workers'
    /// start-up and joining, the module's transfer and compilation, the first task).
    pub to_first_result: Option<Duration>,
    /// Peak resident memory of the server process, bytes.
    pub server_peak: u64,
    /// Peak resident memory of the largest worker process, bytes.
    pub worker_peak: u64,
    /// The results file (JSON Lines).
    pub results: PathBuf,
}

/// Binaries and a folder for a series of runs.
pub struct Rig {
    server: PathBuf,
    worker: PathBuf,
    dir: tempfile::TempDir,
}

impl Rig {
    /// A rig using the release binaries of this workspace, with cold workers.
    pub fn new(root: &Path) -> Result<Self> {
        let bin = |name: &str| -> Result<PathBuf> {
            let path = root.join("target/release").join(name);
            ensure!(
                path.exists(),
                "{} is missing: run `cargo build --release`",
                path.display()
            );
            Ok(path)
        };
        Ok(Self {
            server: bin("dipla-server")?,
            worker: bin("dipla-worker")?,
            dir: tempfile::Builder::new().prefix("dipla-bench-").tempdir()?,
        })
    }

    /// Runs the job `manifest` (its text; module paths absolute) on `workers` worker processes
    /// of one core each. `extra` goes to `dipla-server run` (such as `--stage NAME`).
    pub fn run(&self, manifest: &str, workers: usize, extra: &[&str]) -> Result<Run> {
        self.run_beside(manifest, workers, extra, |_| Ok(()))
    }

    /// Like [`Rig::run`], calling `first` with the URL workers connect to once the server
    /// accepts them, before the workers start: to put other peers (an attacker) beside them.
    /// Those count towards `--min-workers`, so tasks go out as soon as they join.
    pub fn run_beside(
        &self,
        manifest: &str,
        workers: usize,
        extra: &[&str],
        first: impl FnOnce(&str) -> Result<()>,
    ) -> Result<Run> {
        let mut serving = self.start(manifest, workers, extra)?;
        first(serving.url())?;
        serving.add_workers(workers, 1)?;
        serving.finish()
    }

    /// Starts `dipla-server run` on the job `manifest` (its text; module paths absolute),
    /// giving out tasks once `min_workers` workers have joined; `extra` goes to it too. The
    /// workers are the caller's: [`Serving::add_workers`], or any other client of its
    /// [`Serving::url`] (a browser).
    pub fn start(&self, manifest: &str, min_workers: usize, extra: &[&str]) -> Result<Serving<'_>> {
        let dir = self.dir.path();
        let job = dir.join("job.toml");
        std::fs::write(&job, manifest)?;
        let results = dir.join("results.jsonl");
        let summary_path = dir.join("summary.json");
        let _ = std::fs::remove_file(&summary_path);
        let started = Instant::now();
        let mut server = Command::new(&self.server)
            .arg("run")
            .arg(&job)
            .args(["--listen", "127.0.0.1:0", "--local-workers", "0", "--fresh"])
            .arg("--out")
            .arg(&results)
            .arg("--state")
            .arg(dir.join("job.state"))
            .arg("--summary-json")
            .arg(&summary_path)
            // Every worker is in from the first task, as in a fleet started together.
            .args(["--min-workers", &min_workers.to_string()])
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("cannot start {}", self.server.display()))?;
        let mut guard = Reaper(vec![]);
        let stderr = server.stderr.take().expect("piped");
        let server = guard.adopt(server);
        let mut lines = BufReader::new(stderr).lines();
        let url = loop {
            let Some(line) = lines.next() else {
                bail!("dipla-server ended before listening; was the manifest right?");
            };
            let line = line?;
            if let Some(url) = line.strip_prefix("dipla-server: workers connect to ") {
                break url.trim().to_owned();
            }
            if line.starts_with("error") {
                bail!("dipla-server: {line}");
            }
        };
        // Keep reading the server's log, so it never blocks on a full pipe; keep the tail
        // for an error message.
        let log = std::thread::spawn(move || {
            let mut tail = std::collections::VecDeque::new();
            for line in lines.map_while(Result::ok) {
                if tail.len() == 20 {
                    tail.pop_front();
                }
                tail.push_back(line);
            }
            Vec::from(tail).join("\n")
        });
        Ok(Serving {
            rig: self,
            guard,
            server,
            workers: Vec::new(),
            url,
            started,
            log,
            results,
            summary_path,
        })
    }
}

/// A job being served by `dipla-server run` ([`Rig::start`]); dropped without
/// [`Serving::finish`], the server and its workers are killed.
pub struct Serving<'rig> {
    rig: &'rig Rig,
    guard: Reaper,
    server: libc::pid_t,
    workers: Vec<libc::pid_t>,
    url: String,
    started: Instant,
    log: std::thread::JoinHandle<String>,
    results: PathBuf,
    summary_path: PathBuf,
}

impl Serving<'_> {
    /// The URL workers connect to (`ws://127.0.0.1:PORT/ws`).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Starts `count` more `dipla-worker` processes of `cores` cores each, with the rig's
    /// identities and disk cache.
    pub fn add_workers(&mut self, count: usize, cores: usize) -> Result<()> {
        let dir = self.rig.dir.path();
        for _ in 0..count {
            let i = self.workers.len();
            let child = Command::new(&self.rig.worker)
                .args([
                    "--server",
                    &self.url,
                    "--cores",
                    &cores.to_string(),
                    "--no-bench",
                ])
                .args(["--name", &format!("bench-w{i}")])
                .arg("--identity")
                .arg(dir.join(format!("identity-w{i}")))
                .arg("--cache-dir")
                .arg(dir.join("cache"))
                // Measured as before the politeness controls: at normal priority (beside the
                // server's threads), and on battery too.
                .args(["--priority", "normal", "--on-battery", "run"])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .with_context(|| format!("cannot start {}", self.rig.worker.display()))?;
            let pid = self.guard.adopt(child);
            self.workers.push(pid);
        }
        Ok(())
    }

    /// Waits for the job to end (and then its workers) and reads what the server says of it.
    pub fn finish(mut self) -> Result<Run> {
        let (status, server_peak) = self.guard.wait(self.server, None)?;
        let mut worker_peak = 0;
        for pid in std::mem::take(&mut self.workers) {
            let (_, peak) = self.guard.wait(pid, Some(Duration::from_secs(10)))?;
            worker_peak = worker_peak.max(peak);
        }
        let log = self.log.join().unwrap_or_default();
        ensure!(
            status == Some(0),
            "dipla-server failed ({status:?}):\n{log}"
        );
        let summary_path = &self.summary_path;
        let summary: ServerSummary = serde_json::from_slice(
            &std::fs::read(summary_path)
                .with_context(|| format!("no summary at {}", summary_path.display()))?,
        )
        .context("cannot read the server's summary")?;
        ensure!(summary.success, "the job failed:\n{log}");
        let to_first_result = summary
            .first_result_secs
            .map(|first| url_time(self.started, &summary, first));
        Ok(Run {
            summary,
            to_first_result,
            server_peak,
            worker_peak,
            results: self.results,
        })
    }
}

/// From starting the server to its first result: the server's clock starts when it accepts
/// workers, just before it prints their URL, so its start-up is the rest of the wall time.
fn url_time(started: Instant, summary: &ServerSummary, first: f64) -> Duration {
    let wall = started.elapsed().as_secs_f64();
    let startup = (wall - summary.elapsed_secs).max(0.0);
    Duration::from_secs_f64(startup + first)
}

/// Child processes that are killed if the rig gives up on them, and reaped with their peak
/// memory when it does not.
struct Reaper(Vec<libc::pid_t>);

impl Reaper {
    fn adopt(&mut self, child: Child) -> libc::pid_t {
        let pid = child.id() as libc::pid_t;
        // The `Child` is forgotten: this reaper waits for the pid itself (with `wait4`, which
        // also tells the peak memory).
        std::mem::forget(child);
        self.0.push(pid);
        pid
    }

    /// Waits for `pid` (at most `limit`, then kills it); its exit code (`None`: killed by a
    /// signal) and peak resident memory in bytes.
    fn wait(&mut self, pid: libc::pid_t, limit: Option<Duration>) -> Result<(Option<i32>, u64)> {
        let deadline = limit.map(|limit| Instant::now() + limit);
        let flags = if deadline.is_some() { libc::WNOHANG } else { 0 };
        loop {
            let mut status = 0;
            // SAFETY: an all-zero rusage is valid; wait4 writes both out-parameters.
            let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
            // SAFETY: `pid` is a child of this process that nothing else waits for.
            let got = unsafe { libc::wait4(pid, &raw mut status, flags, &raw mut usage) };
            if got == pid {
                self.0.retain(|&p| p != pid);
                let code = libc::WIFEXITED(status).then(|| libc::WEXITSTATUS(status));
                // ru_maxrss is in KiB on Linux.
                return Ok((code, usage.ru_maxrss as u64 * 1024));
            }
            if got < 0 {
                bail!("wait4 failed: {}", std::io::Error::last_os_error());
            }
            if deadline.is_some_and(|deadline| Instant::now() > deadline) {
                // SAFETY: sending a signal to our own unreaped child.
                unsafe { libc::kill(pid, libc::SIGKILL) };
                return self.wait(pid, None);
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

impl Drop for Reaper {
    fn drop(&mut self) {
        for &pid in &self.0 {
            // SAFETY: killing and reaping our own children.
            unsafe {
                libc::kill(pid, libc::SIGKILL);
                libc::waitpid(pid, std::ptr::null_mut(), 0);
            }
        }
    }
}
