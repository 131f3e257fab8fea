//! The command line of `dipla-server` (part of the binary): its subcommands and flags, and
//! the library options they stand for. Every flag, environment variable, default and help
//! text here is a contract that scripts, tests and users rely on.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};
use dipla_server::announce::{AnnounceOptions, DEFAULT_ANNOUNCE_SECS};
use dipla_server::client::Client;
use dipla_server::commands::run::{Journal, RunCommand};
use dipla_server::{RunOptions, ServeOptions};
use reqwest::Url;

#[derive(Parser)]
#[command(
    version,
    about = "The Dipla server: runs a job over sandboxed WebAssembly workers.",
    after_help = "Every option can also be set by the environment variable shown. Exit codes of `run`: 0 every task succeeded; 1 some tasks failed; 2 the job \
                  could not run (a bad manifest, a state file in use, ...); 3 cancelled through \
                  the API; 130 interrupted (Ctrl-C). Results written so far are kept, and the \
                  journal lets the same command resume."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
    /// Log format on stderr.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text, env = "DIPLA_LOG_FORMAT")]
    pub log_format: LogFormat,
}

#[derive(Subcommand)]
pub enum Command {
    /// Run the job a manifest describes and write its results as JSON Lines.
    Run(Box<RunArgs>),
    /// Check a results file against the workers' signed receipts in the job's journal, and
    /// re-run a sample of its tasks in this machine's sandbox. Exits 1 if anything fails.
    Audit(AuditArgs),
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
    Submit(SubmitArgs),
    /// Write a job's results as JSON Lines, following them until the job ends. Exit codes
    /// as for `run`.
    Results(ResultsArgs),
    /// List a server's jobs.
    Jobs(JobsArgs),
    /// Print a job's status as JSON.
    Status(JobArgs),
    /// Cancel a job; results written so far are kept.
    Cancel(JobArgs),
    /// Print a guest module's hash and its tasks' signatures.
    Inspect(InspectArgs),
    /// Run one task on this machine, in the sandbox workers use, and print its output (on
    /// stdout), or its failure, with the fuel it burned and what it logged (on stderr).
    /// Exit codes: 0 the task succeeded; 1 it failed; 2 it could not run (no such file or
    /// task, input not JSON).
    Try(TryArgs),
}

#[derive(Clone, Copy, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

// `run`.
#[derive(clap::Args)]
pub struct RunArgs {
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
    announce: AnnounceArgs,
}

impl RunArgs {
    /// The run these flags describe.
    pub fn command(self) -> anyhow::Result<RunCommand> {
        let admitted = self.admission.options()?;
        let journal = match (self.state, self.no_state) {
            (_, true) => Journal::Off,
            (Some(state), false) => Journal::At(state),
            (None, false) => Journal::BesideManifest,
        };
        let local_workers = self.local_workers.unwrap_or(if self.listen.is_some() {
            0
        } else {
            RunOptions::default().local_workers
        });
        Ok(RunCommand {
            manifest: self.manifest,
            out: self.out,
            journal,
            fresh: self.fresh,
            options: RunOptions {
                listen: self.listen,
                local_workers,
                cache_dir: self.cache_dir,
                only_stage: self.stage,
                speculate: !self.no_speculation,
                min_workers: self.min_workers,
                log_tasks: self.log_tasks,
                description: self.announce.description.clone(),
                ..admitted
            },
            announce: self.announce.into(),
            progress_every: Duration::try_from_secs_f64(self.progress_secs)
                .unwrap_or(dipla_server::progress::PLAIN_EVERY),
            summary_json: self.summary_json,
        })
    }
}

// `audit`.
#[derive(clap::Args)]
pub struct AuditArgs {
    /// The results (JSON Lines, as `run` wrote them).
    pub results: PathBuf,
    /// The job's journal (`run --state`, or `.dipla/STEM.state` beside the manifest).
    #[arg(long, env = "DIPLA_STATE")]
    pub state: PathBuf,
    /// How many tasks to run again.
    #[arg(long, default_value_t = 20, env = "DIPLA_SAMPLE")]
    pub sample: usize,
}

// `serve`.
#[derive(clap::Args)]
pub struct ServeArgs {
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
    announce: AnnounceArgs,
}

impl ServeArgs {
    /// The server these flags describe, and its announcement.
    pub fn options(self) -> anyhow::Result<(ServeOptions, AnnounceOptions)> {
        anyhow::ensure!(
            self.driver_timeout_secs.is_finite() && self.driver_timeout_secs >= 0.2,
            "--driver-timeout-secs must be at least 0.2"
        );
        let name = self
            .announce
            .project_name
            .clone()
            .unwrap_or_else(|| "dipla".to_owned());
        anyhow::ensure!(
            !self.admission.admin_token.is_empty(),
            "serve needs --admin-token: jobs are submitted through the API"
        );
        let run = RunOptions {
            description: self.announce.description.clone(),
            local_workers: self.local_workers,
            cache_dir: self.cache_dir,
            speculate: !self.no_speculation,
            ..self.admission.options()?
        };
        let options = ServeOptions {
            listen: self.listen,
            data_dir: self.data_dir,
            name,
            run,
            driver_timeout: Duration::from_secs_f64(self.driver_timeout_secs),
        };
        Ok((options, self.announce.into()))
    }
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
    /// The largest module to serve, in MiB: a job with a larger one is refused before it
    /// starts (a Python guest is about 19). Workers keep their own limit and are refused,
    /// naming the module, when a job's module is over it.
    #[arg(long, default_value_t = dipla_protocol::DEFAULT_MAX_MODULE_MB,
          value_parser = clap::value_parser!(u32).range(1..=4096), env = "DIPLA_MAX_MODULE_MB")]
    max_module_mb: u32,
    /// For tests only: the /volunteer page honours its test hooks (`?lie`).
    #[arg(long, hide = true)]
    volunteer_test_hooks: bool,
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
            heartbeat: Duration::from_secs_f64(self.heartbeat_secs),
            max_lost: self.max_lost,
            max_workers: self.max_workers,
            max_identities_per_ip: self.max_identities_per_ip,
            max_cores_per_worker: self.max_cores_per_worker,
            max_connections_per_ip: self.max_connections_per_ip,
            max_module_mb: self.max_module_mb,
            head_timeout: Duration::from_secs_f64(self.head_timeout_secs),
            tls: self
                .tls_cert
                .zip(self.tls_key)
                .map(|(cert, key)| dipla_server::tls::TlsFiles { cert, key }),
            admin_tokens: self.admin_token,
            volunteer_test_hooks: self.volunteer_test_hooks,
            ..RunOptions::default()
        })
    }
}

/// The flags of a server that announces itself to a project directory.
#[derive(Debug, Clone, clap::Args)]
struct AnnounceArgs {
    /// Announce this project to the project directory at URL (`dipla-server directory`,
    /// such as `https://directory.example.org`) now and every --announce-secs, so volunteers
    /// can find it with `dipla-worker --directory URL`.
    #[arg(long, value_name = "URL", env = "DIPLA_ANNOUNCE", value_parser = http_url)]
    announce: Option<Url>,
    /// With --announce: the project's name in the directory, 1 to 64 characters of
    /// A-Z a-z 0-9 . _ - [default: the job's name].
    #[arg(long = "name", value_name = "NAME", env = "DIPLA_PROJECT_NAME")]
    project_name: Option<String>,
    /// What the project computes, for volunteers: shown on the /volunteer page and, with
    /// --announce, in the directory (at most 500 characters).
    #[arg(long, value_name = "TEXT", env = "DIPLA_PROJECT_DESCRIPTION")]
    description: Option<String>,
    /// With --announce: how many workers the project wants (0: as many as come).
    #[arg(
        long,
        value_name = "N",
        default_value_t = 0,
        env = "DIPLA_WANTS_WORKERS"
    )]
    wants_workers: u32,
    /// With --announce: announce again this often, in seconds (a directory forgets a
    /// project that stops announcing itself).
    #[arg(
        long,
        value_name = "SECS",
        default_value_t = DEFAULT_ANNOUNCE_SECS,
        env = "DIPLA_ANNOUNCE_SECS"
    )]
    announce_secs: f64,
    /// The ws:// or wss:// URL workers should connect to, as announced to the directory:
    /// needed when listening on 0.0.0.0 or behind a reverse proxy [default: the one derived
    /// from the listening address]. The health check announced is its /health beside /ws.
    #[arg(long, value_name = "URL", env = "DIPLA_PUBLIC_URL", value_parser = ws_url)]
    public_url: Option<Url>,
}

impl From<AnnounceArgs> for AnnounceOptions {
    fn from(args: AnnounceArgs) -> Self {
        Self {
            announce: args.announce,
            project_name: args.project_name,
            description: args.description,
            wants_workers: args.wants_workers,
            announce_secs: args.announce_secs,
            public_url: args.public_url,
        }
    }
}

/// Parses an `http://` or `https://` URL.
fn http_url(text: &str) -> Result<Url, String> {
    let url = Url::parse(text).map_err(|error| error.to_string())?;
    match url.scheme() {
        "http" | "https" if url.has_host() => Ok(url),
        _ => Err("expected an http:// or https:// URL".into()),
    }
}

/// Parses a `ws://` or `wss://` URL.
fn ws_url(text: &str) -> Result<Url, String> {
    let url = Url::parse(text).map_err(|error| error.to_string())?;
    match url.scheme() {
        "ws" | "wss" if url.has_host() => Ok(url),
        _ => Err("expected a ws:// or wss:// URL".into()),
    }
}

/// Which server the API commands call.
#[derive(clap::Args)]
pub struct Remote {
    /// The server (`serve`): http://HOST:PORT, or https:// behind TLS.
    #[arg(long, env = "DIPLA_SERVER")]
    server: String,
    /// An admin token the server accepts.
    #[arg(long, env = "DIPLA_ADMIN_TOKEN", hide_env_values = true)]
    admin_token: String,
}

impl Remote {
    /// A client of that server.
    pub fn client(&self) -> anyhow::Result<Client> {
        Ok(Client::new(&self.server, &self.admin_token)?)
    }
}

// `submit`.
#[derive(clap::Args)]
pub struct SubmitArgs {
    /// The job manifest (TOML).
    pub manifest: PathBuf,
    #[command(flatten)]
    pub remote: Remote,
    /// Wait for the job and write its results (as `results` does).
    #[arg(long, env = "DIPLA_WAIT")]
    pub wait: bool,
    /// With --wait: where to write results (default: stdout).
    #[arg(long, short, env = "DIPLA_OUT", requires = "wait")]
    pub out: Option<PathBuf>,
}

// `results`.
#[derive(clap::Args)]
pub struct ResultsArgs {
    /// The job's id (as `submit` printed it).
    pub job: String,
    #[command(flatten)]
    pub remote: Remote,
    /// Where to write results (default: stdout).
    #[arg(long, short, env = "DIPLA_OUT")]
    pub out: Option<PathBuf>,
    /// Write what exists now and stop, without waiting for the rest.
    #[arg(long, env = "DIPLA_NO_FOLLOW")]
    pub no_follow: bool,
}

// `jobs`.
#[derive(clap::Args)]
pub struct JobsArgs {
    #[command(flatten)]
    pub remote: Remote,
}

// `status` and `cancel`.
#[derive(clap::Args)]
pub struct JobArgs {
    /// The job's id.
    pub job: String,
    #[command(flatten)]
    pub remote: Remote,
}

// `inspect`.
#[derive(clap::Args)]
pub struct InspectArgs {
    /// The module (.wasm).
    pub module: PathBuf,
}

// `try`.
#[derive(clap::Args)]
pub struct TryArgs {
    /// The module (.wasm).
    pub module: PathBuf,
    /// The task's name (`inspect` lists them).
    pub task: String,
    /// The task's input as JSON: `12`, or `[12, "a"]` for a task of two parameters.
    pub input: String,
    /// The fuel the task may burn [default: a manifest's, 10000000000].
    #[arg(long)]
    pub fuel: Option<u64>,
    /// The memory the task may use, in MiB [default: a manifest's, 256].
    #[arg(long)]
    pub memory_mb: Option<u32>,
    /// Print one JSON object on stdout: output or error and kind, fuel, fuel_limit,
    /// micros, log.
    #[arg(long)]
    pub json: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Parser)]
    struct Flags {
        #[command(flatten)]
        announce: AnnounceArgs,
    }

    fn announce(line: &[&str]) -> Result<AnnounceOptions, clap::Error> {
        Flags::try_parse_from(std::iter::once("test").chain(line.iter().copied()))
            .map(|flags| flags.announce.into())
    }

    fn parse(line: &[&str]) -> Command {
        Cli::try_parse_from(std::iter::once("dipla-server").chain(line.iter().copied()))
            .unwrap()
            .command
    }

    fn run(line: &[&str]) -> RunCommand {
        let Command::Run(args) = parse(&[&["run", "job.toml"], line].concat()) else {
            panic!("not run")
        };
        args.command().unwrap()
    }

    fn serve(line: &[&str]) -> anyhow::Result<(ServeOptions, AnnounceOptions)> {
        let Command::Serve(args) = parse(&[&["serve", "--listen", "127.0.0.1:0"], line].concat())
        else {
            panic!("not serve")
        };
        args.options()
    }

    #[test]
    fn the_run_flags_make_the_run_command() {
        let plain = run(&[]);
        assert_eq!(plain.manifest, PathBuf::from("job.toml"));
        assert_eq!(plain.journal, Journal::BesideManifest);
        assert!(!plain.fresh && plain.options.speculate);
        assert_eq!(
            plain.options.local_workers,
            RunOptions::default().local_workers
        );
        assert_eq!(plain.progress_every, Duration::from_secs(5));
        assert_eq!(run(&["--listen", "127.0.0.1:0"]).options.local_workers, 0);
        assert_eq!(run(&["--no-state"]).journal, Journal::Off);
        let given = run(&[
            "--state",
            "s.state",
            "--fresh",
            "--no-speculation",
            "--progress-secs=-1",
            "--heartbeat-secs",
            "2",
        ]);
        assert_eq!(given.journal, Journal::At("s.state".into()));
        assert!(given.fresh && !given.options.speculate);
        assert_eq!(given.progress_every, dipla_server::progress::PLAIN_EVERY);
        assert_eq!(given.options.heartbeat, Duration::from_secs(2));
        let Command::Run(args) = parse(&["run", "job.toml", "--heartbeat-secs", "0"]) else {
            panic!("not run")
        };
        let error = args.command().unwrap_err().to_string();
        assert_eq!(error, "--heartbeat-secs must be at least 0.05");
    }

    #[test]
    fn serve_needs_an_admin_token_and_names_itself() {
        let error = serve(&[]).unwrap_err().to_string();
        assert_eq!(
            error,
            "serve needs --admin-token: jobs are submitted through the API"
        );
        let (options, announce) = serve(&["--admin-token", "t"]).unwrap();
        assert_eq!(options.name, "dipla");
        assert_eq!(options.run.admin_tokens, ["t"]);
        assert!(announce.announce.is_none());
        let (options, _) = serve(&["--admin-token", "t", "--name", "squares"]).unwrap();
        assert_eq!(options.name, "squares");
    }

    #[test]
    fn the_command_line_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }

    #[test]
    fn the_announce_flags_make_the_options() {
        let options = announce(&[
            "--announce",
            "http://127.0.0.1:9/prefix",
            "--name",
            "squares",
            "--description",
            "Squares",
            "--wants-workers",
            "8",
            "--announce-secs",
            "2",
            "--public-url",
            "wss://example.org/ws",
        ])
        .unwrap();
        assert_eq!(
            options.announce.unwrap().as_str(),
            "http://127.0.0.1:9/prefix"
        );
        assert_eq!(options.project_name.as_deref(), Some("squares"));
        assert_eq!(options.description.as_deref(), Some("Squares"));
        assert_eq!(options.wants_workers, 8);
        assert_eq!(options.announce_secs, 2.0);
        assert_eq!(options.public_url.unwrap().as_str(), "wss://example.org/ws");
        let defaults = announce(&[]).unwrap();
        assert!(defaults.announce.is_none());
        assert_eq!(defaults.announce_secs, DEFAULT_ANNOUNCE_SECS);
        assert!(
            announce(&["--announce", "ws://d"]).is_err(),
            "the directory is reached over http(s)"
        );
        assert!(announce(&["--public-url", "http://d"]).is_err());
    }
}
