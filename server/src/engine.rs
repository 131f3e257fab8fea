//! What runs a job, whoever describes it: the worker endpoint served on a bound socket, and
//! the local workers inside this process. The manifest runner ([`crate::Server`]) and the
//! driver API ([`crate::Dipla`]) both start one.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use axum::serve::ListenerExt;
use dipla_sandbox::{Limits, Sandbox};
use dipla_worker::{ModuleCache, WorkerConfig};
use tokio::net::TcpListener;
use tokio::task::{JoinHandle, JoinSet};

use crate::state::Handle;
use crate::{Module, api, transport};

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
    handle: Handle,
    server: JoinHandle<std::io::Result<()>>,
    /// Stops accepting connections and lets HTTP requests in flight finish.
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    workers: JoinSet<()>,
    /// The local workers' module cache, seeded with every module the server admits.
    cache: Option<ModuleCache>,
}

/// The URL workers connect to (`ws://ADDR/ws`, with loopback for an unspecified address).
pub(crate) fn worker_url(mut addr: SocketAddr) -> String {
    if addr.ip().is_unspecified() {
        addr.set_ip(Ipv4Addr::LOCALHOST.into());
    }
    format!("ws://{addr}/ws")
}

impl Engine {
    /// Serves workers on `listener` and starts the local workers, which get the modules the
    /// job has now compiled already ([`Engine::seed`] for those added later).
    pub(crate) fn start(
        listener: TcpListener,
        handle: Handle,
        sandbox: &Sandbox,
        local: &LocalWorkers,
    ) -> std::io::Result<Self> {
        let url = worker_url(listener.local_addr()?);
        // Small messages must not wait for Nagle's algorithm (40 ms stalls with delayed ACKs).
        let listener = listener.tap_io(|stream| {
            if let Err(error) = stream.set_nodelay(true) {
                tracing::debug!(%error, "cannot set TCP_NODELAY");
            }
        });
        let app = transport::router(handle.clone()).merge(api::router(handle.clone()));
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(
            axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = stopped.await;
                })
                .into_future(),
        );
        tracing::info!(%url, "accepting workers");

        let mut workers = JoinSet::new();
        let mut cache = None;
        if local.count > 0 {
            let local_cache = ModuleCache::new(sandbox.clone(), local.cache_dir.clone())?;
            for module in &handle.lock().job.modules {
                local_cache.seed(module.hash, module.guest.clone());
            }
            for i in 0..local.count {
                let config = WorkerConfig {
                    server: url.clone(),
                    name: format!("local-{i}"),
                    cores: 1,
                    caps: local.caps,
                    token: local.token.clone(),
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
            handle,
            server,
            stop: Some(stop),
            workers,
            cache,
        })
    }

    /// Gives the local workers a module the server has compiled, so they need not fetch and
    /// compile it again.
    pub(crate) fn seed(&self, module: &Module) {
        if let Some(cache) = &self.cache {
            cache.seed(module.hash, module.guest.clone());
        }
    }

    /// Says goodbye to every worker, waits a little for them to leave, and stops serving.
    pub(crate) async fn shutdown(mut self) {
        let handle = self.handle.clone();
        handle.shared.done.send_replace(true);
        let farewell = async {
            while handle.connected() > 0 {
                let closed = handle.shared.disconnected.notified();
                if handle.connected() == 0 {
                    break;
                }
                closed.await;
            }
            while self.workers.join_next().await.is_some() {}
        };
        if tokio::time::timeout(FAREWELL, farewell).await.is_err() {
            tracing::debug!("some workers did not leave in time");
        }
        // Answer the HTTP requests in flight (an API call that ended the job), then stop.
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let _ = tokio::time::timeout(Duration::from_secs(1), &mut self.server).await;
        self.server.abort();
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        // Dropped without a shutdown (the owner was dropped or its task cancelled): stop
        // serving at once; connections see `done` and say goodbye.
        self.handle.shared.done.send_replace(true);
        self.server.abort();
    }
}
