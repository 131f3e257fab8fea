//! `dipla-server`: run a job over sandboxed wasm workers.

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use dipla_sandbox::Sandbox;
use dipla_server::client::Client;
use dipla_server::journal::Fresh;
use dipla_server::{JobState, RunOptions, Serve, ServeOptions, Server, manifest};

#[derive(Parser)]
#[command(
    version,
    about = "The Dipla server: runs a job over sandboxed WebAssembly workers.",
    after_help = "Every option can also be set by the environment variable shown. Exit codes of `run`: 0 every task succeeded; 1 some tasks failed; 2 the job \
                  could not run (a bad manifest, a state file in use, ...); 3 cancelled through \
                  the API; 130 interrupted (Ctrl-C). Results written so far are kept, and the \
                  journal lets the same command resume."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Log format on stderr.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text, env = "DIPLA_LOG_FORMAT")]
    log_format: LogFormat,
}

#[derive(Subcommand)]
enum Command {
    /// Run the job a manifest describes and write its results as JSON Lines.
    Run(Box<RunArgs>),
    /// Check a results file against the workers' signed receipts in the job's journal, and
    /// re-run a sample of its tasks in this machine's sandbox. Exits 1 if anything fails.
    Audit {
        /// The results (JSON Lines, as `run` wrote them).
        results: PathBuf,
        /// The job's journal (`run --state`, or `.dipla/STEM.state` beside the manifest).
        #[arg(long, env = "DIPLA_STATE")]
        state: PathBuf,
        /// How many tasks to run again.
        #[arg(long, default_value_t = 20, env = "DIPLA_SAMPLE")]
        sample: usize,
    },
    /// Run a project directory: servers announce themselves to it (`run --announce URL`),
    /// volunteers list and join its projects (`dipla-worker --directory URL`). Only projects
    /// answering their health check are listed (`GET /api/projects` as JSON, `GET /` as a
    /// page).
    Directory(dipla_server::directory::DirectoryArgs),
    /// Run a long-lived server that takes jobs over its HTTP API (`/api/jobs`, see `submit`)
    /// and runs them side by side, sharing its workers fairly; with the dashboard at `/`
    /// and `/metrics`. Jobs are kept in --data-dir and resume when the server starts again.
    Serve(Box<ServeArgs>),
    /// Submit a job manifest, with the modules and input files it names, to a server
    /// started with `serve`; prints the job's id.
    Submit {
        /// The job manifest (TOML).
        manifest: PathBuf,
        #[command(flatten)]
        remote: Remote,
        /// Wait for the job and write its results (as `results` does).
        #[arg(long, env = "DIPLA_WAIT")]
        wait: bool,
        /// With --wait: where to write results (default: stdout).
        #[arg(long, short, env = "DIPLA_OUT", requires = "wait")]
        out: Option<PathBuf>,
    },
    /// Write a job's results as JSON Lines, following them until the job ends. Exit codes
    /// as for `run`.
    Results {
        /// The job's id (as `submit` printed it).
        job: String,
        #[command(flatten)]
        remote: Remote,
        /// Where to write results (default: stdout).
        #[arg(long, short, env = "DIPLA_OUT")]
        out: Option<PathBuf>,
        /// Write what exists now and stop, without waiting for the rest.
        #[arg(long, env = "DIPLA_NO_FOLLOW")]
        no_follow: bool,
    },
    /// List a server's jobs.
    Jobs {
        #[command(flatten)]
        remote: Remote,
    },
    /// Print a job's status as JSON.
    Status {
        /// The job's id.
        job: String,
        #[command(flatten)]
        remote: Remote,
    },
    /// Cancel a job; results written so far are kept.
    Cancel {
        /// The job's id.
        job: String,
        #[command(flatten)]
        remote: Remote,
    },
    /// Print a guest module's hash and its tasks' signatures.
    Inspect {
        /// The module (.wasm).
        module: PathBuf,
    },
    /// Run one task on this machine, in the sandbox workers use, and print its output (on
    /// stdout), or its failure, with the fuel it burned and what it logged (on stderr).
    /// Exit codes: 0 the task succeeded; 1 it failed; 2 it could not run (no such file or
    /// task, input not JSON).
    Try {
        /// The module (.wasm).
        module: PathBuf,
        /// The task's name (`inspect` lists them).
        task: String,
        /// The task's input as JSON: `12`, or `[12, "a"]` for a task of two parameters.
        input: String,
        /// The fuel the task may burn [default: a manifest's, 10000000000].
        #[arg(long)]
        fuel: Option<u64>,
        /// The memory the task may use, in MiB [default: a manifest's, 256].
        #[arg(long)]
        memory_mb: Option<u32>,
        /// Print one JSON object on stdout: output or error and kind, fuel, fuel_limit,
        /// micros, log.
        #[arg(long)]
        json: bool,
    },
}

#[derive(clap::Args)]
struct RunArgs {
    /// The job manifest (TOML).
    manifest: PathBuf,
    /// Where to write results (default: stdout).
    #[arg(long, short, env = "DIPLA_OUT")]
    out: Option<PathBuf>,
    /// Accept remote workers on this address, such as 0.0.0.0:7070.
    #[arg(long, env = "DIPLA_LISTEN")]
    listen: Option<SocketAddr>,
    /// Workers to run inside this process, one core each [default: every core without
    /// --listen, none with it].
    #[arg(long, env = "DIPLA_LOCAL_WORKERS")]
    local_workers: Option<usize>,
    /// Where local workers cache compiled modules (default: in memory only).
    #[arg(long, env = "DIPLA_CACHE_DIR")]
    cache_dir: Option<PathBuf>,
    /// Write only this stage's results (every stage still runs).
    #[arg(long, env = "DIPLA_STAGE")]
    stage: Option<String>,
    /// Never copy a task straggling on a slow worker to an idle faster one.
    #[arg(long, env = "DIPLA_NO_SPECULATION")]
    no_speculation: bool,
    /// Give out no task until this many workers have joined (local workers count); then
    /// run on whoever is connected.
    #[arg(long, env = "DIPLA_MIN_WORKERS", default_value_t = 0)]
    min_workers: usize,
    /// Journal the job in this SQLite file: the same command run again after a crash
    /// resumes it without computing accepted results again [default:
    /// .dipla/STEM.state beside the manifest, started afresh if the job changed].
    #[arg(long, env = "DIPLA_STATE", conflicts_with = "no_state")]
    state: Option<PathBuf>,
    /// Do not journal the job (a crash loses its progress).
    #[arg(long, env = "DIPLA_NO_STATE")]
    no_state: bool,
    /// Discard what the state file holds and run the whole job again.
    #[arg(long, conflicts_with = "no_state", env = "DIPLA_FRESH")]
    fresh: bool,
    /// When the run ends, write its summary (task counts, traffic, seconds) as JSON here.
    #[arg(long, env = "DIPLA_SUMMARY_JSON")]
    summary_json: Option<PathBuf>,
    /// Show what every task logged (`dipla_guest::log!`, and `println!` imported from
    /// `dipla_guest`) on stderr as workers report it, one line each; a failure's result line
    /// carries its log as "log" either way.
    #[arg(long, env = "DIPLA_LOG_TASKS")]
    log_tasks: bool,
    /// When stderr is not a terminal, write a progress line every this many seconds.
    #[arg(long, env = "DIPLA_PROGRESS_SECS", default_value_t = 5.0)]
    progress_secs: f64,
    #[command(flatten)]
    admission: Admission,
    #[command(flatten)]
    announce: dipla_server::announce::AnnounceArgs,
}

/// Which server the API commands call.
#[derive(clap::Args)]
struct Remote {
    /// The server (`serve`): http://HOST:PORT, or https:// behind TLS.
    #[arg(long, env = "DIPLA_SERVER")]
    server: String,
    /// An admin token the server accepts.
    #[arg(long, env = "DIPLA_ADMIN_TOKEN", hide_env_values = true)]
    admin_token: String,
}

impl Remote {
    fn client(&self) -> anyhow::Result<Client> {
        Ok(Client::new(&self.server, &self.admin_token)?)
    }
}

#[derive(clap::Args)]
struct ServeArgs {
    /// Accept workers and API calls on this address, such as 0.0.0.0:7070.
    #[arg(long, env = "DIPLA_LISTEN")]
    listen: SocketAddr,
    /// Where jobs, their journals and results are kept.
    #[arg(long, env = "DIPLA_DATA_DIR", default_value = "dipla-data")]
    data_dir: PathBuf,
    /// Workers to run inside this process, one core each.
    #[arg(long, env = "DIPLA_LOCAL_WORKERS", default_value_t = 0)]
    local_workers: usize,
    /// Where local workers cache compiled modules (default: in memory only).
    #[arg(long, env = "DIPLA_CACHE_DIR")]
    cache_dir: Option<PathBuf>,
    /// Never copy a task straggling on a slow worker to an idle faster one.
    #[arg(long, env = "DIPLA_NO_SPECULATION")]
    no_speculation: bool,
    /// Cancel a driver's job once its driver program has not been heard from for this many
    /// seconds (it ended without closing the job, or lost its connection).
    #[arg(long, env = "DIPLA_DRIVER_TIMEOUT_SECS", default_value_t = dipla_server::serve::DEFAULT_DRIVER_TIMEOUT.as_secs_f64())]
    driver_timeout_secs: f64,
    #[command(flatten)]
    admission: Admission,
    #[command(flatten)]
    announce: dipla_server::announce::AnnounceArgs,
}

/// Who may come in, for `run` and `serve`.
#[derive(clap::Args)]
struct Admission {
    /// Admit only workers presenting this token (`dipla-worker --token`); repeatable.
    #[arg(long, env = "DIPLA_WORKER_TOKEN", hide_env_values = true)]
    worker_token: Vec<String>,
    /// Admit only workers presenting a token listed in this file, one per line.
    #[arg(long, env = "DIPLA_WORKER_TOKENS")]
    worker_tokens: Option<PathBuf>,
    /// Ping workers this often, in seconds; one silent for three periods is dropped and
    /// its tasks run elsewhere.
    #[arg(long, default_value_t = 5.0, env = "DIPLA_HEARTBEAT_SECS")]
    heartbeat_secs: f64,
    /// Fail a task once this many workers were lost while running it.
    #[arg(long, default_value_t = dipla_core::MAX_LOST, env = "DIPLA_MAX_LOST")]
    max_lost: u32,
    /// The most workers connected at once; more are refused with a reason.
    #[arg(long, default_value_t = dipla_server::DEFAULT_MAX_WORKERS, env = "DIPLA_MAX_WORKERS")]
    max_workers: usize,
    /// Turn on the operator's HTTP API (`/api/...` beside `/ws`) for callers presenting
    /// `Authorization: Bearer TOKEN`; repeatable. Required by `serve`.
    #[arg(long, env = "DIPLA_ADMIN_TOKEN", hide_env_values = true)]
    admin_token: Vec<String>,
    /// Accept at most this many worker identities from one IP address (a cheap check on
    /// one machine posing as many volunteers).
    #[arg(long, env = "DIPLA_MAX_IDENTITIES_PER_IP")]
    max_identities_per_ip: Option<usize>,
    /// Believe at most this many cores of any worker (a worker's claim sizes only its first
    /// window; what it answers sizes the rest).
    #[arg(long, default_value_t = dipla_server::DEFAULT_MAX_CORES, env = "DIPLA_MAX_CORES_PER_WORKER")]
    max_cores_per_worker: usize,
    /// The most connections open at once from one IP address, loopback included (the
    /// --local-workers are allowed on top); more are closed as soon as they are accepted.
    #[arg(long, default_value_t = dipla_server::DEFAULT_MAX_CONNECTIONS_PER_IP, env = "DIPLA_MAX_CONNECTIONS_PER_IP")]
    max_connections_per_ip: usize,
    /// Seconds a connection has to send each HTTP request head (tests shorten it).
    #[arg(long, hide = true, default_value_t = dipla_server::http::HEAD_TIMEOUT.as_secs_f64())]
    head_timeout_secs: f64,
    /// Serve TLS (wss://, https://) with this PEM certificate chain [default: plain text,
    /// for use behind a TLS reverse proxy].
    #[arg(long, env = "DIPLA_TLS_CERT", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// The PEM private key of --tls-cert.
    #[arg(long, env = "DIPLA_TLS_KEY", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
}

impl Admission {
    /// These rules as run options (the rest at their defaults).
    fn options(self) -> anyhow::Result<RunOptions> {
        anyhow::ensure!(
            self.heartbeat_secs.is_finite() && self.heartbeat_secs >= 0.05,
            "--heartbeat-secs must be at least 0.05"
        );
        let mut tokens = self.worker_token;
        if let Some(path) = &self.worker_tokens {
            let listed = dipla_server::Tokens::read_file(path)
                .with_context(|| format!("cannot read the tokens file {}", path.display()))?;
            anyhow::ensure!(!listed.is_empty(), "{} lists no tokens", path.display());
            tokens.extend(listed);
        }
        anyhow::ensure!(
            self.head_timeout_secs.is_finite() && self.head_timeout_secs >= 0.05,
            "--head-timeout-secs must be at least 0.05"
        );
        Ok(RunOptions {
            worker_tokens: tokens,
            heartbeat: std::time::Duration::from_secs_f64(self.heartbeat_secs),
            max_lost: self.max_lost,
            max_workers: self.max_workers,
            max_identities_per_ip: self.max_identities_per_ip,
            max_cores_per_worker: self.max_cores_per_worker,
            max_connections_per_ip: self.max_connections_per_ip,
            head_timeout: std::time::Duration::from_secs_f64(self.head_timeout_secs),
            tls: self
                .tls_cert
                .zip(self.tls_key)
                .map(|(cert, key)| dipla_server::tls::TlsFiles { cert, key }),
            admin_tokens: self.admin_token,
            ..RunOptions::default()
        })
    }
}

/// The exit code for a job that ended so (as for `run`).
fn exit_code(state: JobState) -> ExitCode {
    match state {
        JobState::Succeeded => ExitCode::SUCCESS,
        JobState::Cancelled => ExitCode::from(3),
        JobState::Running | JobState::Failed => ExitCode::FAILURE,
        JobState::Broken => ExitCode::from(2),
    }
}

/// Where to write results: a file, or stdout.
fn output(out: Option<&PathBuf>) -> anyhow::Result<Box<dyn Write>> {
    Ok(match out {
        Some(path) => Box::new(std::io::BufWriter::new(
            std::fs::File::create(path)
                .with_context(|| format!("cannot create {}", path.display()))?,
        )),
        None => Box::new(std::io::BufWriter::new(std::io::stdout().lock())),
    })
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

/// Says on stderr how a job on a remote server ended: its state and its summary.
fn report_end(brief: &dipla_server::JobBrief) {
    let state = serde_json::to_value(brief.state).unwrap_or_default();
    let state = state.as_str().unwrap_or("ended");
    match &brief.summary {
        Some(summary) => eprintln!("dipla-server: job {} {state}: {summary}", brief.id),
        None => eprintln!("dipla-server: job {} {state}", brief.id),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.log_format);
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(execute(cli.command)) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::from(2)
        }
    }
}

async fn execute(command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::Try {
            module,
            task,
            input,
            fuel,
            memory_mb,
            json,
        } => {
            use dipla_server::trial;
            let limits = trial::limits(fuel, memory_mb)?;
            let sandbox = Sandbox::new().context("cannot start the sandbox")?;
            let trial = trial::try_task(&sandbox, &module, &task, &input, limits)?;
            if json {
                trial.write_json(&mut std::io::stdout().lock())?;
            } else {
                trial.write_text(&mut std::io::stdout().lock(), &mut std::io::stderr().lock())?;
            }
            Ok(if trial.succeeded() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        Command::Audit {
            results,
            state,
            sample,
        } => {
            let sandbox = Sandbox::new().context("cannot start the sandbox")?;
            let report = dipla_server::audit::audit(&results, &state, sample, &sandbox)?;
            for problem in report.problems.iter().take(20) {
                eprintln!("dipla-server audit: {problem}");
            }
            if report.problems.len() > 20 {
                eprintln!(
                    "dipla-server audit: ... and {} more",
                    report.problems.len() - 20
                );
            }
            println!("{report}");
            Ok(if report.passed() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        Command::Directory(args) => {
            dipla_server::directory::run(args).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Serve(args) => serve(*args).await,
        Command::Submit {
            manifest,
            remote,
            wait,
            out,
        } => {
            let client = remote.client()?;
            let job = client.submit(&manifest).await?;
            println!("{}", job.id);
            eprintln!(
                "dipla-server: submitted {} as job {} ({} tasks)",
                manifest.display(),
                job.id,
                job.tasks
            );
            if !wait {
                return Ok(ExitCode::SUCCESS);
            }
            let ended = client
                .results(&job.id, true, &mut output(out.as_ref())?)
                .await?;
            report_end(&ended);
            Ok(exit_code(ended.state))
        }
        Command::Results {
            job,
            remote,
            out,
            no_follow,
        } => {
            let client = remote.client()?;
            let brief = client
                .results(&job, !no_follow, &mut output(out.as_ref())?)
                .await?;
            if brief.state.ended() {
                report_end(&brief);
            }
            Ok(if no_follow && !brief.state.ended() {
                ExitCode::SUCCESS
            } else {
                exit_code(brief.state)
            })
        }
        Command::Jobs { remote } => {
            let jobs = remote.client()?.jobs().await?;
            println!(
                "{:<28} {:<10} {:>10} {:>10} {:>8} {:>8}",
                "ID", "STATE", "DONE", "TASKS", "FAILED", "WORKERS"
            );
            for job in jobs {
                let state = serde_json::to_value(job.state)?;
                println!(
                    "{:<28} {:<10} {:>10} {:>10} {:>8} {:>8}",
                    job.id,
                    state.as_str().unwrap_or("?"),
                    job.done,
                    job.tasks,
                    job.failed,
                    job.workers
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Status { job, remote } => {
            let status = remote.client()?.status(&job).await?;
            println!("{}", serde_json::to_string_pretty(&status)?);
            Ok(ExitCode::SUCCESS)
        }
        Command::Cancel { job, remote } => {
            remote.client()?.cancel(&job).await?;
            eprintln!("dipla-server: job {job} cancelled");
            Ok(ExitCode::SUCCESS)
        }
        Command::Inspect { module } => {
            let bytes = std::fs::read(&module)
                .with_context(|| format!("cannot read {}", module.display()))?;
            let sandbox = Sandbox::new().context("cannot start the sandbox")?;
            let guest = sandbox.admit(bytes.clone()).map_err(|e| {
                anyhow::anyhow!("{} is not a runnable Dipla guest: {e}", module.display())
            })?;
            let info = guest.info();
            println!("module  {}", module.display());
            println!("sha256  {}", dipla_protocol::ModuleHash::of(&bytes));
            println!("size    {} bytes", bytes.len());
            println!(
                "memory  {} KiB at start (memory_mb must be above it)",
                info.initial_memory / 1024
            );
            if let Some(warning) = info.debug_warning() {
                println!("warning {warning}");
            }
            println!("tasks:");
            for task in &info.tasks {
                if task.params.is_none() {
                    println!("  {task}  (types not recorded: inputs are not checked at load)");
                } else {
                    println!("  {task}");
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Run(args) => {
            let RunArgs {
                manifest: path,
                out,
                listen,
                local_workers,
                cache_dir,
                stage,
                no_speculation,
                min_workers,
                state,
                no_state,
                fresh: discard,
                summary_json,
                log_tasks,
                progress_secs,
                admission,
                announce,
            } = *args;
            let admitted = admission.options()?;
            let sandbox = Sandbox::new().context("cannot start the sandbox")?;
            let job = manifest::load(&path, &sandbox)?;
            let (state, fresh) = match (state, no_state) {
                (_, true) => (None, Fresh::Never),
                (Some(state), false) => (Some(state), Fresh::Never),
                (None, false) => (Some(default_state(&path)?), Fresh::IfAnotherJob),
            };
            let fresh = if discard { Fresh::Always } else { fresh };
            let options = RunOptions {
                listen,
                local_workers: local_workers.unwrap_or(if listen.is_some() {
                    0
                } else {
                    RunOptions::default().local_workers
                }),
                cache_dir,
                only_stage: stage,
                speculate: !no_speculation,
                min_workers,
                state: state.clone(),
                fresh,
                log_tasks,
                ..admitted
            };
            let server = Server::bind(job, options)
                .await
                .context("cannot start the server")?;
            match &state {
                Some(state) => eprintln!("dipla-server: journaling the job in {}", state.display()),
                None => eprintln!("dipla-server: not journaling the job (--no-state)"),
            }
            if min_workers > 1 {
                eprintln!("dipla-server: giving out tasks once {min_workers} workers have joined");
            }
            let restored = server.handle().counts().restored;
            if restored > 0 {
                eprintln!(
                    "dipla-server: resuming: {restored} results restored from the journal \
                     (--fresh runs the job again from the start)"
                );
            }
            let url = server.worker_url()?;
            if listen.is_some() && url.starts_with("ws://") {
                eprintln!(
                    "dipla-server: serving plain text (no --tls-cert): put a TLS reverse proxy \
                     in front before exposing it beyond a trusted network"
                );
            }
            eprintln!("dipla-server: workers connect to {url}");
            let job_name = server.handle().lock().job.name.clone();
            if let Some(announcer) = announce.announcer(&job_name, &url)? {
                anyhow::ensure!(listen.is_some(), "--announce needs --listen");
                let handle = server.handle();
                dipla_server::announce::spawn(
                    announcer,
                    std::sync::Arc::new(move || handle.connected()),
                );
            }
            let writer: Box<dyn Write> = match &out {
                Some(path) => Box::new(std::io::BufWriter::new(
                    std::fs::File::create(path)
                        .with_context(|| format!("cannot create {}", path.display()))?,
                )),
                None => Box::new(std::io::BufWriter::new(std::io::stdout().lock())),
            };
            let every = std::time::Duration::try_from_secs_f64(progress_secs)
                .unwrap_or(dipla_server::progress::PLAIN_EVERY);
            let progress = tokio::spawn(dipla_server::progress::report(server.handle(), every));
            let summary = tokio::select! {
                summary = server.run(writer) => summary.context("the run failed")?,
                _ = tokio::signal::ctrl_c() => {
                    eprintln!("dipla-server: interrupted; results written so far are kept");
                    return Ok(ExitCode::from(130));
                }
            };
            progress.abort();
            eprintln!("dipla-server: {summary}");
            if let Some(path) = &summary_json {
                std::fs::write(path, format!("{:#}\n", summary.to_json()))
                    .with_context(|| format!("cannot write {}", path.display()))?;
            }
            Ok(if summary.cancelled {
                ExitCode::from(3)
            } else if summary.success() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
    }
}

async fn serve(args: ServeArgs) -> anyhow::Result<ExitCode> {
    let ServeArgs {
        listen,
        data_dir,
        local_workers,
        cache_dir,
        no_speculation,
        driver_timeout_secs,
        admission,
        announce,
    } = args;
    anyhow::ensure!(
        driver_timeout_secs.is_finite() && driver_timeout_secs >= 0.2,
        "--driver-timeout-secs must be at least 0.2"
    );
    let name = announce
        .project_name
        .clone()
        .unwrap_or_else(|| "dipla".to_owned());
    anyhow::ensure!(
        !admission.admin_token.is_empty(),
        "serve needs --admin-token: jobs are submitted through the API"
    );
    let run = RunOptions {
        local_workers,
        cache_dir,
        speculate: !no_speculation,
        ..admission.options()?
    };
    let server = Serve::start(ServeOptions {
        listen,
        data_dir: data_dir.clone(),
        name: name.clone(),
        run,
        driver_timeout: std::time::Duration::from_secs_f64(driver_timeout_secs),
    })
    .await
    .context("cannot start the server")?;
    let addr = server.local_addr();
    eprintln!("dipla-server: keeping jobs in {}", data_dir.display());
    eprintln!("dipla-server: API and dashboard on http://{addr}/");
    let url = server.worker_url();
    eprintln!("dipla-server: workers connect to {url}");
    if let Some(announcer) = announce.announcer(&name, &url)? {
        let workers = server.worker_count();
        dipla_server::announce::spawn(announcer, workers);
    }
    tokio::signal::ctrl_c().await?;
    eprintln!("dipla-server: stopping; running jobs resume when the server starts again");
    server.shutdown().await;
    Ok(ExitCode::from(130))
}

/// `.dipla/STEM.state` beside the manifest (the directory is made if need be).
fn default_state(manifest: &std::path::Path) -> anyhow::Result<PathBuf> {
    let dir = manifest
        .parent()
        .unwrap_or(std::path::Path::new("."))
        .join(".dipla");
    std::fs::create_dir_all(&dir).with_context(|| {
        format!(
            "cannot make {} for the job's journal (give --state FILE or --no-state)",
            dir.display()
        )
    })?;
    let stem = manifest
        .file_stem()
        .map_or("job".into(), |stem| stem.to_string_lossy());
    Ok(dir.join(format!("{stem}.state")))
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn,dipla_server=info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

/// mimalloc: the server and worker allocate many small, short-lived buffers (messages, JSON)
/// from several threads, which glibc's allocator serves markedly slower.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;
