//! `dipla-server`: run a job over sandboxed wasm workers.

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use dipla_sandbox::Sandbox;
use dipla_server::journal::Fresh;
use dipla_server::{RunOptions, Server, manifest};

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
    /// Print a guest module's hash and its tasks' signatures.
    Inspect {
        /// The module (.wasm).
        module: PathBuf,
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
    #[arg(long, default_value_t = dipla_server::coordinator::MAX_LOST, env = "DIPLA_MAX_LOST")]
    max_lost: u32,
    /// The most workers connected at once; more are refused with a reason.
    #[arg(long, default_value_t = dipla_server::DEFAULT_MAX_WORKERS, env = "DIPLA_MAX_WORKERS")]
    max_workers: usize,
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
    /// Turn on the operator's HTTP API (`/api/job`, `/api/job/cancel` beside `/ws`) for
    /// callers presenting `Authorization: Bearer TOKEN`; repeatable.
    #[arg(long, env = "DIPLA_ADMIN_TOKEN", hide_env_values = true)]
    admin_token: Vec<String>,
    /// Accept at most this many worker identities from one IP address (a cheap check on
    /// one machine posing as many volunteers).
    #[arg(long, env = "DIPLA_MAX_IDENTITIES_PER_IP")]
    max_identities_per_ip: Option<usize>,
    /// Serve TLS (wss://, https://) with this PEM certificate chain [default: plain text,
    /// for use behind a TLS reverse proxy].
    #[arg(long, env = "DIPLA_TLS_CERT", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// The PEM private key of --tls-cert.
    #[arg(long, env = "DIPLA_TLS_KEY", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// When stderr is not a terminal, write a progress line every this many seconds.
    #[arg(long, env = "DIPLA_PROGRESS_SECS", default_value_t = 5.0)]
    progress_secs: f64,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum LogFormat {
    Text,
    Json,
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
        Command::Inspect { module } => {
            let bytes = std::fs::read(&module)
                .with_context(|| format!("cannot read {}", module.display()))?;
            let sandbox = Sandbox::new().context("cannot start the sandbox")?;
            let guest = sandbox
                .compile(&bytes)
                .with_context(|| format!("{} is not a runnable Dipla guest", module.display()))?;
            println!("module  {}", module.display());
            println!("sha256  {}", dipla_protocol::ModuleHash::of(&bytes));
            println!("size    {} bytes", bytes.len());
            println!("tasks:");
            for task in &guest.info().tasks {
                println!("  {task}");
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
                worker_token,
                worker_tokens,
                heartbeat_secs,
                max_lost,
                max_workers,
                state,
                no_state,
                fresh: discard,
                admin_token,
                max_identities_per_ip,
                tls_cert,
                tls_key,
                progress_secs,
            } = *args;
            anyhow::ensure!(
                heartbeat_secs.is_finite() && heartbeat_secs >= 0.05,
                "--heartbeat-secs must be at least 0.05"
            );
            let mut tokens = worker_token;
            if let Some(path) = &worker_tokens {
                let listed = dipla_server::Tokens::read_file(path)
                    .with_context(|| format!("cannot read the tokens file {}", path.display()))?;
                anyhow::ensure!(!listed.is_empty(), "{} lists no tokens", path.display());
                tokens.extend(listed);
            }
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
                worker_tokens: tokens,
                heartbeat: std::time::Duration::from_secs_f64(heartbeat_secs),
                max_lost,
                max_workers,
                max_identities_per_ip,
                tls: tls_cert
                    .zip(tls_key)
                    .map(|(cert, key)| dipla_server::tls::TlsFiles { cert, key }),
                state: state.clone(),
                fresh,
                admin_tokens: admin_token,
                ..RunOptions::default()
            };
            let server = Server::bind(job, options)
                .await
                .context("cannot start the server")?;
            match &state {
                Some(state) => eprintln!("dipla-server: journaling the job in {}", state.display()),
                None => eprintln!("dipla-server: not journaling the job (--no-state)"),
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
