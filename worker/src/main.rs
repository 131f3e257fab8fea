//! `dipla-worker`: volunteer this machine's cores to a Dipla server.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};
use dipla_sandbox::{Sandbox, bench};
use dipla_worker::config_file::{self, ParseError};
use dipla_worker::polite::{Hours, OnBattery, PauseRules, Polite, Priority, monitor};
use dipla_worker::{
    Identity, ModuleCache, State, Status, WorkerConfig, WorkerError, cache::default_cache_dir,
    identity, server_url, status, status_report, tls,
};

#[derive(Parser)]
#[command(
    version,
    about = "The Dipla worker: runs tasks from a Dipla server in a wasm sandbox.",
    after_help = "Every option can also be set by the environment variable shown, or as a \
                  key of the config file (see --config): the command line wins over the \
                  environment, which wins over the file. Exit codes: \
                  0 the server finished its job and said goodbye, or --directory without \
                  --project listed the projects; 1 the server refused this worker or broke \
                  the protocol, the server was never reached (10 tries, about two minutes, \
                  or --max-retries), reconnecting after a lost connection gave up \
                  (--max-retries), or the directory could not be read; 2 bad arguments: a \
                  server URL that is not one or does not lead to a worker endpoint, a \
                  --project the directory does not list, an identity or CA file that cannot \
                  be used, a config file that cannot be used; 3 the server's TLS certificate is not trusted (or TLS failed).",
    args_conflicts_with_subcommands = true,
    group = clap::ArgGroup::new("join").required(true).args(["server", "directory"])
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    /// Read options from this TOML file, whose keys are the long option names
    /// (`server = "ws://HOST:PORT/ws"`, `cores = 2`, `max-memory-mb = 512`, `pin = true`);
    /// options given as flags or in the environment win over it [default:
    /// ~/.config/dipla/worker.toml, if it exists].
    #[arg(long, value_name = "FILE", env = "DIPLA_CONFIG")]
    config: Option<PathBuf>,
    /// The server's worker URL, as the server prints it: ws://HOST:PORT/ws (wss:// with
    /// TLS). Its web address, http://HOST:PORT or https://..., is understood too.
    #[arg(long, env = "DIPLA_WORKER_SERVER")]
    server: Option<String>,
    /// Find the server in the project directory at URL (`dipla-server directory`, such as
    /// https://directory.example.org): without --project, print the projects it lists and
    /// exit.
    #[arg(
        long,
        value_name = "URL",
        env = "DIPLA_DIRECTORY",
        conflicts_with = "server"
    )]
    directory: Option<String>,
    /// With --directory: join the project of this name, as if its URL were given as
    /// --server.
    #[arg(
        long,
        value_name = "NAME",
        env = "DIPLA_PROJECT",
        requires = "directory"
    )]
    project: Option<String>,
    /// Tasks to run at once [default: every core].
    #[arg(long, env = "DIPLA_CORES")]
    cores: Option<usize>,
    /// A name for the server's logs [default: hostname-pid].
    #[arg(long, env = "DIPLA_NAME")]
    name: Option<String>,
    /// The most memory one task may use, in MiB, whatever the server asks.
    #[arg(long, default_value_t = 1024, env = "DIPLA_MAX_MEMORY_MB")]
    max_memory_mb: usize,
    /// The most fuel one task may burn, whatever the server asks.
    #[arg(long, default_value_t = 100_000_000_000, env = "DIPLA_MAX_FUEL")]
    max_fuel: u64,
    /// The largest module to download and compile, in MiB (a Python guest is about 19); a
    /// server whose job has a larger one refuses this worker when it joins, naming it.
    #[arg(long, default_value_t = dipla_protocol::DEFAULT_MAX_MODULE_MB,
          value_parser = clap::value_parser!(u32).range(1..=4096), env = "DIPLA_MAX_MODULE_MB")]
    max_module_mb: u32,
    /// The longest one task may run, in seconds, whatever the server asks.
    #[arg(long, default_value_t = 600, env = "DIPLA_MAX_TASK_SECS")]
    max_task_secs: u64,
    /// Where to cache compiled modules [default: ~/.cache/dipla/modules].
    #[arg(long, env = "DIPLA_CACHE_DIR")]
    cache_dir: Option<PathBuf>,
    /// Keep compiled modules in memory only.
    #[arg(long, conflicts_with = "cache_dir", env = "DIPLA_NO_DISK_CACHE")]
    no_disk_cache: bool,
    /// Join without running the benchmark (about a second); the server then ranks this
    /// worker only by the work it does.
    #[arg(long, env = "DIPLA_NO_BENCH")]
    no_bench: bool,
    /// Give up after this many failed reconnections in a row [default: never give up once
    /// connected; 10 (about two minutes) while the server was never reached].
    #[arg(long, env = "DIPLA_MAX_RETRIES")]
    max_retries: Option<u32>,
    /// The longest wait between reconnections, in seconds.
    #[arg(long, default_value_t = 30, env = "DIPLA_MAX_RETRY_SECS")]
    max_retry_secs: u64,
    /// The token the server asks workers for, if it admits only known ones.
    #[arg(long, env = "DIPLA_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// Trust only this CA (PEM) for wss:// servers, such as a private CA or a self-signed
    /// certificate [default: the system's roots].
    #[arg(long, env = "DIPLA_CA_CERT")]
    ca_cert: Option<PathBuf>,
    /// Pin each wss:// server's certificate on first use (in ~/.config/dipla/pins) and
    /// refuse it, loudly, if it ever changes.
    #[arg(long, env = "DIPLA_PIN")]
    pin: bool,
    /// The file holding this worker's identity (an Ed25519 key pair, made on first run,
    /// owner-only) [default: ~/.config/dipla/identity].
    #[arg(long, env = "DIPLA_IDENTITY")]
    identity: Option<PathBuf>,
    /// Keep what this worker is doing in this JSON file, which `dipla-worker status` reads
    /// [default: $STATE_DIRECTORY/status.json under systemd, else
    /// ~/.local/state/dipla/status.json].
    #[arg(long, value_name = "FILE", env = "DIPLA_STATE_FILE")]
    state_file: Option<PathBuf>,
    /// For tests and benchmarks: make every task take N times as long, as a slow machine
    /// would.
    #[arg(long, hide = true, default_value_t = 1)]
    throttle: u32,
    /// How task threads (and module compiles) are scheduled: idle runs them only on CPU
    /// time no other program wants (Linux SCHED_IDLE, or nice 19 where that is refused), so
    /// the volunteer's own programs always come first.
    #[arg(long, value_enum, default_value_t = Priority::Idle, env = "DIPLA_PRIORITY")]
    priority: Priority,
    /// Let each task thread use at most N% (1 to 100) of the time, averaged over a few
    /// seconds, so the worker uses at most N% of the cores it runs on [default: no cap].
    #[arg(long, value_name = "N", env = "DIPLA_CPU_PERCENT",
          value_parser = clap::value_parser!(u8).range(1..=100))]
    cpu_percent: Option<u8>,
    /// Pause while other programs use more than PCT% of the machine's CPU (read from
    /// /proc/stat every second: after 2 seconds above PCT; resuming after 5 seconds below
    /// PCT minus 10 points). A pause stops the running tasks, and the server gives them to
    /// other workers at once.
    #[arg(long, value_name = "PCT", env = "DIPLA_PAUSE_WHEN_BUSY",
          value_parser = clap::value_parser!(u8).range(1..=100))]
    pause_when_busy: Option<u8>,
    /// Pause or run while the machine runs on battery (read from /sys/class/power_supply).
    #[arg(long, value_enum, default_value_t = OnBattery::Pause, env = "DIPLA_ON_BATTERY")]
    on_battery: OnBattery,
    /// Run only between these local times, START-END in 24-hour time (22-07 runs through
    /// the night; 08:30-17:00), pausing outside them [default: at all hours].
    #[arg(long, value_name = "START-END", env = "DIPLA_HOURS")]
    hours: Option<Hours>,
    /// Test hook: read the machine's CPU counters from FILE instead of /proc/stat.
    #[arg(long, hide = true, value_name = "FILE", env = "DIPLA_PROC_STAT")]
    proc_stat: Option<PathBuf>,
    /// Test hook: read the power supplies from DIR instead of /sys/class/power_supply.
    #[arg(long, hide = true, value_name = "DIR", env = "DIPLA_POWER_SUPPLY_DIR")]
    power_supply_dir: Option<PathBuf>,
    /// Test hook: sample what the pause rules read every MS milliseconds (not every second).
    #[arg(long, hide = true, value_name = "MS", env = "DIPLA_PAUSE_SAMPLE_MS")]
    pause_sample_ms: Option<u64>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the benchmark the worker reports when it joins, and print its figures.
    Bench {
        /// Print `{"score": .., "kernels": [{"name", "fuel", "micros", "checksum"}, ..]}`.
        #[arg(long, env = "DIPLA_JSON")]
        json: bool,
    },
    /// Say what the worker running on this machine is doing: its server, job, tasks done,
    /// whether it is paused and why, its CPU cap.
    #[command(
        after_help = "Without --state-file, reads the state file of a worker run by \
                            this user (~/.local/state/dipla/status.json), then the \
                            service's (/var/lib/dipla/status.json). Exit codes: 0 a worker \
                            is running; 3 none is (it stopped, its process is gone, or no \
                            state file was found); 1 the state file cannot be read."
    )]
    Status {
        /// Print the state file's fields as JSON, with `running`, `file` (the file read,
        /// or null) and `looked` (where, when none was found).
        #[arg(long, env = "DIPLA_JSON")]
        json: bool,
        /// The state file of the worker to ask about, as given to it with --state-file.
        #[arg(long, value_name = "FILE", env = "DIPLA_STATE_FILE")]
        state_file: Option<PathBuf>,
    },
}

fn main() -> ExitCode {
    let default_config =
        identity::default_identity_path().map(|path| path.with_file_name("worker.toml"));
    let parsed = config_file::parse(
        Cli::command(),
        std::env::args_os(),
        "config",
        default_config.as_deref(),
    );
    let parsed = match parsed {
        Ok(parsed) => Cli::from_arg_matches(&parsed.matches).map(|cli| (cli, parsed.file)),
        Err(ParseError::Clap(error)) => Err(error),
        Err(ParseError::File(error)) => {
            eprintln!("error: {error}");
            return ExitCode::from(2);
        }
    };
    let (cli, config_file) = match parsed {
        Ok(parsed) => parsed,
        Err(error) => {
            let _ = error.print();
            let missing = error.kind() == clap::error::ErrorKind::MissingRequiredArgument;
            if missing && std::env::var_os("DIPLA_SERVER").is_some() {
                eprintln!(
                    "note: DIPLA_SERVER is set, but it is the http:// address dipla-server's \
                     API commands (submit, jobs, ...) call; the worker reads \
                     DIPLA_WORKER_SERVER (or --server), such as ws://HOST:PORT/ws"
                );
            }
            return ExitCode::from(u8::try_from(error.exit_code()).unwrap_or(2));
        }
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn,dipla_worker=info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    if let Some(Command::Status { json, state_file }) = cli.command {
        return print_status(json, state_file);
    }
    if let Some(file) = &config_file {
        tracing::info!(file = %file.display(), "read the config file");
    }

    let mut server = cli.server.clone();
    if let Some(directory) = &cli.directory {
        match from_directory(directory, cli.project.as_deref()) {
            Ok(Some(url)) => server = Some(url),
            Ok(None) => return ExitCode::SUCCESS,
            Err(code) => return code,
        }
    }
    let sandbox = match Sandbox::new() {
        Ok(sandbox) => sandbox,
        Err(error) => {
            eprintln!("error: cannot start the sandbox: {error:#}");
            return ExitCode::FAILURE;
        }
    };
    if let Some(Command::Bench { json }) = cli.command {
        return print_benchmark(json);
    }
    let Some(server) = server else {
        eprintln!("error: give --server URL, --directory URL, or the bench command");
        return ExitCode::from(2);
    };
    let server = match server_url::worker_url(&server) {
        Ok(url) => url,
        Err(error) => {
            eprintln!("error: {error}");
            return ExitCode::from(2);
        }
    };
    let mut config = WorkerConfig::new(server);
    match cli.identity.or_else(identity::default_identity_path) {
        Some(path) => match Identity::load_or_create(&path) {
            Ok(identity) => config.identity = Arc::new(identity),
            Err(error) => {
                eprintln!("error: {error}");
                return ExitCode::from(2);
            }
        },
        None => tracing::warn!(
            "no home or config directory: using a new identity for this run only \
             (give --identity FILE to keep one)"
        ),
    }
    if server_is_tls(&config.server) {
        let pins = if cli.pin {
            match tls::default_pins_path() {
                Some(path) => Some(path),
                None => {
                    eprintln!("error: --pin needs a home or config directory for its pins");
                    return ExitCode::from(2);
                }
            }
        } else {
            None
        };
        match tls::client_config(cli.ca_cert.as_deref(), pins) {
            Ok(tls) => config.tls = Some(tls),
            Err(error) => {
                eprintln!("error: {error}");
                return ExitCode::from(2);
            }
        }
    }
    config.throttle = cli.throttle.max(1);
    config.token = cli.token;
    if let Some(cores) = cli.cores {
        config.cores = cores.max(1);
    }
    if let Some(name) = cli.name {
        config.name = name;
    }
    config.caps.memory_bytes = cli.max_memory_mb << 20;
    config.caps.fuel = cli.max_fuel;
    config.max_module_mb = cli.max_module_mb;
    config.caps.timeout = Duration::from_secs(cli.max_task_secs);
    // Before anything compiles: the compiler's pool is made at the task threads' priority.
    cli.priority.apply_to_compiler_pool();
    let mut rules = PauseRules {
        when_busy: cli.pause_when_busy,
        on_battery: cli.on_battery,
        hours: cli.hours,
        ..PauseRules::default()
    };
    if let Some(path) = cli.proc_stat {
        rules.proc_stat = path;
    }
    if let Some(dir) = cli.power_supply_dir {
        rules.power_supply = dir;
    }
    if let Some(ms) = cli.pause_sample_ms {
        rules.every = Duration::from_millis(ms.max(1));
    }
    let pauses = match monitor::start(rules) {
        Ok(pauses) => pauses,
        Err(error) => {
            eprintln!("error: cannot start the pause monitor: {error}");
            return ExitCode::FAILURE;
        }
    };
    config.polite = Polite {
        priority: cli.priority,
        cpu_percent: cli.cpu_percent,
        pauses: Some(pauses),
    };
    let cache_dir = if cli.no_disk_cache {
        None
    } else {
        cli.cache_dir.or_else(default_cache_dir)
    };

    if !cli.no_bench {
        let started = std::time::Instant::now();
        match bench::run() {
            Ok(benchmark) => {
                tracing::info!(
                    score = format!("{:.0}", benchmark.score),
                    secs = format!("{:.2}", started.elapsed().as_secs_f64()),
                    "benchmark"
                );
                config.benchmark = Some(benchmark);
            }
            Err(error) => tracing::warn!(%error, "the benchmark failed; joining without it"),
        }
    }
    let cache = match ModuleCache::new(sandbox, cache_dir.clone()) {
        Ok(cache) => cache,
        Err(error) => {
            let dir = cache_dir.unwrap_or_default();
            eprintln!(
                "error: cannot create the module cache {}: {error}",
                dir.display()
            );
            return ExitCode::FAILURE;
        }
    };
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    let state = State::new(&config.server, &config.name, config.cores);
    config.status = match cli.state_file.or_else(status::default_state_path) {
        Some(path) => Status::to_file(state, path),
        None => Status::in_memory(state),
    };
    config
        .status
        .set_cpu_percent(cli.cpu_percent.map(u32::from));
    config.status.set_priority(
        clap::ValueEnum::to_possible_value(&cli.priority).map(|value| value.get_name().to_owned()),
    );
    if let Some(mut pauses) = config.polite.pauses.clone() {
        // The state file says whether the worker is paused and why, connected or not.
        let status = config.status.clone();
        runtime.spawn(async move {
            loop {
                let state = pauses.borrow_and_update().clone();
                let reasons = state.reasons.iter().map(ToString::to_string).collect();
                status.set_paused(state.is_paused().then_some(reasons));
                if pauses.changed().await.is_err() {
                    break;
                }
            }
        });
    }
    let backoff = dipla_worker::Backoff {
        retries: cli.max_retries,
        first_retries: cli.max_retries.unwrap_or(dipla_worker::FIRST_RETRIES),
        max: Duration::from_secs(cli.max_retry_secs.max(1)),
        ..dipla_worker::Backoff::default()
    };
    let served = runtime.block_on(dipla_worker::serve(&config, &cache, backoff));
    config
        .status
        .finish(served.as_ref().err().map(ToString::to_string));
    match served {
        Ok(reason) => {
            eprintln!("dipla-worker: the server said goodbye: {reason}");
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("error: {error}");
            exit_code(&error)
        }
    }
}

/// The exit code for a session that ended with `error` (see the help's list).
fn exit_code(error: &WorkerError) -> ExitCode {
    match error {
        WorkerError::BadUrl(_) | WorkerError::NotAnEndpoint { .. } => ExitCode::from(2),
        WorkerError::Tls { .. } => ExitCode::from(3),
        _ => ExitCode::FAILURE,
    }
}

/// `--directory URL [--project NAME]`: the URL of the project to join, or `None` once the
/// projects are listed on stdout; the exit code on failure (2 for an unknown project).
fn from_directory(directory: &str, project: Option<&str>) -> Result<Option<String>, ExitCode> {
    use dipla_worker::directory::{self, DirectoryError};
    let projects = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|error| {
            eprintln!("error: cannot start the async runtime: {error}");
            ExitCode::FAILURE
        })?
        .block_on(directory::list(directory));
    let found = projects.and_then(|projects| {
        let Some(name) = project else {
            if projects.is_empty() {
                eprintln!("dipla-worker: the directory at {directory} lists no projects now");
            } else {
                print!("{}", directory::table(&projects));
            }
            return Ok(None);
        };
        let project = directory::find(&projects, name)?;
        eprintln!("dipla-worker: joining project {name} at {}", project.url);
        Ok(Some(project.url.clone()))
    });
    found.map_err(|error| {
        eprintln!("error: {error}");
        match error {
            DirectoryError::BadUrl(_) | DirectoryError::UnknownProject { .. } => ExitCode::from(2),
            DirectoryError::Unreadable { .. } | DirectoryError::BadProjectUrl { .. } => {
                ExitCode::FAILURE
            }
        }
    })
}

/// `dipla-worker status`: what the worker whose state file is `state_file` (or the user's
/// or the service's) is doing; 0 when it runs, 3 when it does not, 1 when the file cannot
/// be read.
fn print_status(json: bool, state_file: Option<PathBuf>) -> ExitCode {
    let candidates = state_file.map_or_else(status_report::default_candidates, |path| vec![path]);
    match status_report::look(&candidates, status_report::alive) {
        Ok(lookup) => {
            if json {
                println!("{}", lookup.to_json());
            } else {
                print!("{}", lookup.render(status::unix_now()));
            }
            if lookup.running() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(3)
            }
        }
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::FAILURE
        }
    }
}

/// `dipla-worker bench`: runs the suite and prints it, as a table or as JSON.
fn print_benchmark(json: bool) -> ExitCode {
    let started = std::time::Instant::now();
    let benchmark = match bench::run() {
        Ok(benchmark) => benchmark,
        Err(error) => {
            eprintln!("error: {error}");
            return ExitCode::FAILURE;
        }
    };
    if json {
        match serde_json::to_string(&benchmark) {
            Ok(text) => println!("{text}"),
            Err(error) => {
                eprintln!("error: {error}");
                return ExitCode::FAILURE;
            }
        }
        return ExitCode::SUCCESS;
    }
    println!(
        "{:<14} {:>14} {:>10} {:>12}  checksum",
        "kernel", "fuel", "micros", "fuel/µs"
    );
    for kernel in &benchmark.kernels {
        println!(
            "{:<14} {:>14} {:>10} {:>12.1}  {}",
            kernel.name,
            kernel.fuel,
            kernel.micros,
            kernel.fuel as f64 / kernel.micros.max(1) as f64,
            kernel.checksum
        );
    }
    println!(
        "score {:.1} fuel/µs per core (weighted geometric mean), in {:.2} s",
        benchmark.score,
        started.elapsed().as_secs_f64()
    );
    ExitCode::SUCCESS
}

/// Whether `url` is a `wss://` URL.
fn server_is_tls(url: &str) -> bool {
    url.get(..6)
        .is_some_and(|scheme| scheme.eq_ignore_ascii_case("wss://"))
}

/// mimalloc: the server and worker allocate many small, short-lived buffers (messages, JSON)
/// from several threads, which glibc's allocator serves markedly slower.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;
