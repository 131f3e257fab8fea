//! Serving HTTP on a socket, for every server of the crate (`run`, `serve`, the driver, the
//! directory): each connection has [`HEAD_TIMEOUT`] to send each request head (the WebSocket
//! upgrade included), handlers see the peer's address (`ConnectInfo<Peer>`), WebSocket
//! upgrades work, and shutdown is graceful (requests in flight are answered).
//!
//! Connections are counted at accept by the [`Door`] a listener is given.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Extension;
use axum::extract::ConnectInfo;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tower_layer::Layer;

use crate::net::door::{self, Counted, Door};

/// How long a connection has to send a request head, the WebSocket upgrade included.
pub const HEAD_TIMEOUT: Duration = Duration::from_secs(10);

/// The address of a connection's peer, as handlers see it (`ConnectInfo<Peer>`), whatever
/// the listener.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Peer(pub(crate) SocketAddr);

/// Where connections come from: plain TCP or TLS.
pub(crate) trait Listener: Send + 'static {
    /// A connection's stream.
    type Io: AsyncRead + AsyncWrite + Unpin + Send + 'static;

    /// The next connection and its peer's address.
    fn accept(&mut self) -> impl Future<Output = (Self::Io, SocketAddr)> + Send;
}

/// Plain TCP, counted by a door.
pub(crate) struct PlainListener {
    listener: TcpListener,
    door: Arc<Door>,
}

impl PlainListener {
    /// Accepts on `listener` what `door` admits.
    pub(crate) fn new(listener: TcpListener, door: Arc<Door>) -> Self {
        Self { listener, door }
    }
}

impl Listener for PlainListener {
    type Io = Counted<TcpStream>;

    async fn accept(&mut self) -> (Self::Io, SocketAddr) {
        door::accept(&self.listener, &self.door).await
    }
}

/// Serves `app` on the connections of `listener`, giving each `head_timeout` for each request
/// head, until `stop`; then stops accepting, lets the requests in flight be answered, and
/// returns once every connection is closed (upgraded ones live on in their own tasks).
/// Dropping the future closes every connection at once.
pub(crate) async fn serve<L: Listener>(
    mut listener: L,
    app: axum::Router,
    head_timeout: Duration,
    stop: impl Future<Output = ()>,
) {
    let (closing, closed) = watch::channel(false);
    let mut connections = JoinSet::new();
    let mut stop = std::pin::pin!(stop);
    loop {
        tokio::select! {
            (io, peer) = listener.accept() => {
                connections.spawn(connection(io, peer, app.clone(), head_timeout, closed.clone()));
            }
            // Forget the connections that ended.
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            () = &mut stop => break,
        }
    }
    drop(listener);
    closing.send_replace(true);
    while connections.join_next().await.is_some() {}
}

/// Serves one connection until it ends, or until `closing` once its request in flight is
/// answered.
async fn connection<Io>(
    io: Io,
    peer: SocketAddr,
    app: axum::Router,
    head_timeout: Duration,
    mut closing: watch::Receiver<bool>,
) where
    Io: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service = TowerToHyperService::new(Extension(ConnectInfo(Peer(peer))).layer(app));
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(head_timeout);
    let served = builder
        .serve_connection(TokioIo::new(io), service)
        .with_upgrades();
    let mut served = std::pin::pin!(served);
    let mut told = false;
    loop {
        tokio::select! {
            ended = served.as_mut() => {
                if let Err(error) = ended {
                    tracing::debug!(%peer, %error, "HTTP connection ended");
                }
                return;
            }
            _ = closing.wait_for(|closing| *closing), if !told => {
                told = true;
                served.as_mut().graceful_shutdown();
            }
        }
    }
}
