//! What the volunteer running a worker decides.

use dipla_protocol::Benchmark;
use dipla_sandbox::Limits;

/// How a worker runs.
#[derive(Clone)]
pub struct WorkerConfig {
    /// The server's WebSocket URL, such as `ws://host:7070/ws`.
    pub server: String,
    /// A name for logs and dashboards.
    pub name: String,
    /// How many tasks to run at once (one thread each).
    pub cores: usize,
    /// The volunteer's caps: a task never gets more than these, whatever the server asks.
    pub caps: Limits,
    /// The largest module, in MiB, the worker downloads and compiles: a server whose job has
    /// a larger one refuses the worker when it joins, and a larger module received anyway is
    /// refused unread.
    pub max_module_mb: u32,
    /// The self-benchmark to report when joining, if one ran.
    pub benchmark: Option<Benchmark>,
    /// For tests and benchmarks: every task takes this many times as long (1: as fast as
    /// the machine goes).
    pub throttle: u32,
    /// The token to present to a server that admits only known workers.
    pub token: Option<String>,
    /// TLS settings for `wss://` servers (`None`: the system's roots, no pinning).
    pub tls: Option<std::sync::Arc<rustls::ClientConfig>>,
    /// Who the worker is: its key pair (see [`crate::identity`]).
    pub identity: std::sync::Arc<crate::Identity>,
    /// Where the worker records what it does (`dipla-worker status` reads it); by default,
    /// in memory only.
    pub status: crate::Status,
    /// How politely it runs: priority, CPU cap, pauses (see [`crate::polite`]).
    pub polite: crate::polite::Polite,
    /// For tests of the server's checks only (the `test-hooks` feature): rewrites each
    /// result before it is sent, to play a lying worker. The `dipla-worker` program never
    /// sets it.
    #[cfg(feature = "test-hooks")]
    pub tamper: Option<Tamper>,
}

/// Rewrites a result before it is sent (see [`WorkerConfig::tamper`]; the `test-hooks`
/// feature).
#[cfg(feature = "test-hooks")]
pub type Tamper = std::sync::Arc<dyn Fn(&mut dipla_protocol::TaskResult) + Send + Sync>;

/// What rewrites a result before it is sent: a test's [`WorkerConfig::tamper`], never set
/// without the `test-hooks` feature.
pub(crate) type Rewrite = std::sync::Arc<dyn Fn(&mut dipla_protocol::TaskResult) + Send + Sync>;

impl WorkerConfig {
    /// A worker for `server` with every core, the default caps and a new identity (kept in
    /// memory only: set [`WorkerConfig::identity`] to keep one across runs).
    pub fn new(server: impl Into<String>) -> Self {
        Self {
            server: server.into(),
            name: default_name(),
            cores: std::thread::available_parallelism().map_or(1, usize::from),
            caps: Limits {
                fuel: 100_000_000_000,
                memory_bytes: 1 << 30,
                timeout: std::time::Duration::from_secs(600),
                ..Limits::default()
            },
            max_module_mb: dipla_protocol::DEFAULT_MAX_MODULE_MB,
            benchmark: None,
            throttle: 1,
            token: None,
            tls: None,
            identity: std::sync::Arc::new(crate::Identity::generate()),
            status: crate::Status::default(),
            polite: crate::polite::Polite::default(),
            #[cfg(feature = "test-hooks")]
            tamper: None,
        }
    }

    /// What rewrites each result before it is sent: a test's tamper, and never anything
    /// without the `test-hooks` feature.
    pub(crate) fn rewrite(&self) -> Option<Rewrite> {
        #[cfg(feature = "test-hooks")]
        return self.tamper.clone();
        #[cfg(not(feature = "test-hooks"))]
        return None;
    }
}

/// `hostname-pid`.
fn default_name() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|name| name.trim().to_owned())
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "worker".to_owned());
    format!("{host}-{}", std::process::id())
}

impl std::fmt::Debug for WorkerConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut debug = f.debug_struct("WorkerConfig");
        debug
            .field("server", &self.server)
            .field("name", &self.name)
            .field("cores", &self.cores)
            .field("caps", &self.caps)
            .field("throttle", &self.throttle)
            .field("identity", &self.identity)
            .field("polite", &self.polite);
        #[cfg(feature = "test-hooks")]
        debug.field("tamper", &self.tamper.is_some());
        debug.finish_non_exhaustive()
    }
}
