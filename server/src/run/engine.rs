//! What runs a job, whoever describes it: the worker endpoint served on a bound socket, and
//! the local workers inside this process. The manifest runner ([`crate::Server`]) and the
//! driver API ([`crate::Dipla`]) both start one.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use dipla_sandbox::{Limits, Sandbox};
use dipla_worker::{ModuleCache, WorkerConfig};
use tokio::net::TcpListener;
use tokio::task::{JoinHandle, JoinSet};

use crate::net::http::{self, Listener, PlainListener};
use crate::net::state::Handle;
use crate::net::tls::TlsListener;
use crate::net::transport::{self, Venue};
use crate::web::health::{self, HealthInfo};
use crate::{
    Module,
    run::{dashboard, volunteer},
    web::api,
};

/// How long connections get to close once the server shuts down.
const FAREWELL: Duration = Duration::from_secs(5);

/// Workers run inside the server process.
#[derive(Debug, Clone)]
pub(crate) struct LocalWorkers {
    /// How many, one core each.
    pub(crate) count: usize,
    /// Where they cache compiled modules (`None`: in memory only).
    pub(crate) cache_dir: Option<PathBuf>,
    /// Caps for their tasks.
    pub(crate) caps: Limits,
    /// The token they present, if the server requires one.
    pub(crate) token: Option<String>,
}

/// A running worker endpoint with its local workers.
pub(crate) struct Engine {
    venue: Venue,
    /// The sockets served: the public one, and with TLS a plain loopback one for the local
    /// workers.
    served: Vec<Served>,
    workers: JoinSet<()>,
    /// The local workers' module cache, seeded with every module the server admits.
    cache: Option<ModuleCache>,
}

/// One socket being served.
struct Served {
    task: JoinHandle<()>,
    /// Stops accepting connections and lets HTTP requests in flight finish.
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Served {
    /// Serves `app` on `listener`, giving connections `head_timeout` for each request head.
    fn start<L: Listener>(listener: L, app: axum::Router, head_timeout: Duration) -> Self {
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(http::serve(listener, app, head_timeout, async {
            let _ = stopped.await;
        }));
        Self {
            task,
            stop: Some(stop),
        }
    }
}

/// The URL workers connect to (`ws://ADDR/ws`, or `wss://` with TLS; loopback for an
/// unspecified address).
pub(crate) fn worker_url(mut addr: SocketAddr, tls: bool) -> String {
    if addr.ip().is_unspecified() {
        addr.set_ip(Ipv4Addr::LOCALHOST.into());
    }
    let scheme = if tls { "wss" } else { "ws" };
    format!("{scheme}://{addr}/ws")
}

/// The routes of a one-job server: the worker endpoint, the operator's API, the dashboard,
/// the health check and the volunteer page.
pub(crate) fn job_routes(handle: &Handle) -> axum::Router {
    transport::router(Venue::Job(handle.clone()))
        .merge(api::router(handle.clone()))
        .merge(dashboard::router(handle.clone()))
        .merge(health::router(HealthInfo::of_job(handle)))
        .merge(volunteer::router(volunteer::of_job(handle)))
}

impl Engine {
    /// Serves `app` (the worker endpoint of `venue`, and more) on `listener`, and starts the
    /// local workers, which get `modules` compiled already ([`Engine::seed`] for those added
    /// later).
    pub(crate) fn start(
        listener: TcpListener,
        tls: Option<Arc<rustls::ServerConfig>>,
        venue: Venue,
        app: axum::Router,
        modules: &[Module],
        sandbox: &Sandbox,
        local: &LocalWorkers,
    ) -> std::io::Result<Self> {
        let public = worker_url(listener.local_addr()?, tls.is_some());
        let door = venue.gate().door.clone();
        // Local workers join over loopback: they never count against its cap.
        door.allow_local(local.count);
        let head_timeout = door.head_timeout();
        let plain = |listener| {
            Served::start(
                PlainListener::new(listener, door.clone()),
                app.clone(),
                head_timeout,
            )
        };
        let mut served = Vec::new();
        let url = match tls {
            None => {
                served.push(plain(listener));
                public.clone()
            }
            Some(config) => {
                served.push(Served::start(
                    TlsListener::new(listener, config, door.clone()),
                    app.clone(),
                    head_timeout,
                ));
                // Local workers are in this process: they join over plain loopback.
                let loopback = std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
                loopback.set_nonblocking(true)?;
                let loopback = TcpListener::from_std(loopback)?;
                let url = worker_url(loopback.local_addr()?, false);
                served.push(plain(loopback));
                url
            }
        };
        tracing::info!(url = %public, "accepting workers");

        let mut workers = JoinSet::new();
        let mut cache = None;
        if local.count > 0 {
            let local_cache = ModuleCache::new(sandbox.clone(), local.cache_dir.clone())?;
            for module in modules {
                seed(&local_cache, module);
            }
            for i in 0..local.count {
                // The server's own identities: their failures need no one to confirm them.
                let identity = dipla_worker::Identity::generate();
                venue.gate().add_own(identity.public());
                let config = WorkerConfig {
                    identity: Arc::new(identity),
                    server: url.clone(),
                    name: format!("local-{i}"),
                    cores: 1,
                    caps: local.caps,
                    token: local.token.clone(),
                    // Seeded with the server's own compilations: no module is downloaded.
                    max_module_mb: u32::MAX,
                    ..WorkerConfig::new("")
                };
                let cache = local_cache.clone();
                workers.spawn(async move {
                    if let Err(error) = dipla_worker::run(&config, &cache).await {
                        tracing::warn!(worker = %config.name, %error, "local worker stopped");
                    }
                });
            }
            cache = Some(local_cache);
        }
        Ok(Self {
            venue,
            served,
            workers,
            cache,
        })
    }

    /// Gives the local workers a module the server has compiled, so they need not fetch and
    /// compile it again.
    pub(crate) fn seed(&self, module: &Module) {
        if let Some(cache) = &self.cache {
            seed(cache, module);
        }
    }

    /// Says goodbye to every worker, waits a little for them to leave, and stops serving.
    pub(crate) async fn shutdown(mut self) {
        self.venue.finish();
        let venue = self.venue.clone();
        let farewell = async {
            venue.emptied().await;
            while self.workers.join_next().await.is_some() {}
        };
        if tokio::time::timeout(FAREWELL, farewell).await.is_err() {
            tracing::debug!("some workers did not leave in time");
        }
        // Answer the HTTP requests in flight (an API call that ended the job), then stop.
        for served in &mut self.served {
            if let Some(stop) = served.stop.take() {
                let _ = stop.send(());
            }
        }
        for served in &mut self.served {
            let _ = tokio::time::timeout(Duration::from_secs(1), &mut served.task).await;
            served.task.abort();
        }
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        // Dropped without a shutdown (the owner was dropped or its task cancelled): stop
        // serving at once; connections see `done` and say goodbye.
        self.venue.finish();
        for served in &self.served {
            served.task.abort();
        }
    }
}

/// Compiles `module` once for the local workers' `cache`. One that does not compile is left
/// out: a local worker then fetches it like a remote one and reports why it cannot run it.
fn seed(cache: &ModuleCache, module: &Module) {
    match module.guest.compiled() {
        Ok(guest) => cache.seed(module.hash, guest.clone()),
        Err(error) => tracing::warn!(module = %module.hash, %error, "cannot compile the module"),
    }
}
