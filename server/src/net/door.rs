//! Who may open a connection: at most so many sockets from one address, and never so many in
//! all that the process runs out of file descriptors.
//!
//! Sockets are counted when they are accepted, by a [`Ticket`] that lives as long as the
//! socket ([`Counted`] carries it through TLS, HTTP and a WebSocket upgrade). The descriptor
//! budget has two margins below the process's limit on open files:
//!
//! - past `limit - SPARE` (descriptors kept for files: the journal, the module cache, the
//!   local workers' own ends) a new socket is closed at once, so `accept` never fails for
//!   want of a descriptor;
//! - past `limit - SPARE - RESERVE` a WebSocket upgrade is refused with 503 ([`Door::crowded`]),
//!   so that the reserve keeps `/health`, the API and the dashboard answering however many
//!   workers come.

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};

/// The most connections open at once from one IP address unless told otherwise.
pub const DEFAULT_MAX_CONNECTIONS_PER_IP: usize = 64;

/// Descriptors kept for everything but connections.
const SPARE: usize = 64;

/// Connections kept for HTTP (the health check, the API, the dashboard) when workers would
/// take every other.
const RESERVE: usize = 64;

/// At most one line per this period about refused sockets or failing `accept`.
const LOG_EVERY: Duration = Duration::from_secs(5);

/// The process's limit on open files, raised once from the soft limit to the hard one.
pub(crate) fn open_files_limit() -> usize {
    static LIMIT: OnceLock<usize> = OnceLock::new();
    *LIMIT.get_or_init(|| {
        let limit = match rlimit::increase_nofile_limit(u64::MAX) {
            Ok(limit) => limit,
            Err(error) => {
                tracing::warn!(%error, "cannot raise the limit on open files");
                rlimit::getrlimit(rlimit::Resource::NOFILE).map_or(1024, |(soft, _)| soft)
            }
        };
        tracing::info!(limit, "open files allowed");
        usize::try_from(limit).unwrap_or(usize::MAX)
    })
}

/// The connection counts of one server and the caps they are held to.
pub(crate) struct Door {
    /// The process's limit on open files.
    limit: usize,
    /// The most connections from one address.
    per_ip: AtomicUsize,
    /// Connections loopback may open beyond `per_ip`: the server's own local workers.
    local: AtomicUsize,
    /// How long a connection has to send each request head.
    head_timeout: Mutex<Duration>,
    /// Connections open now, in all and by address. (A std mutex: never held across an
    /// `.await`.)
    open: Mutex<(usize, HashMap<IpAddr, usize>)>,
    /// Limits the log lines about refused sockets.
    refusals: Throttle,
    /// Limits the log lines about `accept` failing.
    failures: Throttle,
}

impl Default for Door {
    fn default() -> Self {
        Self::new(open_files_limit())
    }
}

/// Why a socket was closed as soon as it was accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// Its address has as many connections open as it may.
    PerIp,
    /// The process is near its limit on open files.
    Full,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Door {
    /// A door for a process that may open `limit` files.
    pub(crate) fn new(limit: usize) -> Self {
        Self {
            limit,
            per_ip: AtomicUsize::new(DEFAULT_MAX_CONNECTIONS_PER_IP),
            local: AtomicUsize::new(0),
            head_timeout: Mutex::new(crate::net::http::HEAD_TIMEOUT),
            open: Mutex::default(),
            refusals: Throttle::default(),
            failures: Throttle::default(),
        }
    }

    /// Accepts at most `count` connections at once from one address.
    pub(crate) fn set_per_ip(&self, count: usize) {
        self.per_ip.store(count.max(1), Ordering::Relaxed);
    }

    /// Lets loopback open `count` more connections (the server's local workers), and keeps
    /// a descriptor for each of their own ends.
    pub(crate) fn allow_local(&self, count: usize) {
        self.local.fetch_add(count, Ordering::Relaxed);
    }

    /// Gives connections `timeout` to send each request head.
    pub(crate) fn set_head_timeout(&self, timeout: Duration) {
        *lock(&self.head_timeout) = timeout;
    }

    /// How long a connection has to send each request head.
    pub(crate) fn head_timeout(&self) -> Duration {
        *lock(&self.head_timeout)
    }

    /// The most connections open at once before sockets are refused.
    fn max_open(&self) -> usize {
        self.limit
            .saturating_sub(SPARE + self.local.load(Ordering::Relaxed))
            .max(1)
    }

    /// Counts in a connection from `ip`, unless its address or the process is full.
    pub(crate) fn admit(self: &Arc<Self>, ip: IpAddr) -> Result<Ticket, Refusal> {
        let ip = ip.to_canonical();
        let mut cap = self.per_ip.load(Ordering::Relaxed);
        if ip.is_loopback() {
            cap = cap.saturating_add(self.local.load(Ordering::Relaxed));
        }
        let max_open = self.max_open();
        let mut open = lock(&self.open);
        let (total, by_ip) = &mut *open;
        if *total >= max_open {
            return Err(Refusal::Full);
        }
        let count = by_ip.entry(ip).or_default();
        if *count >= cap {
            return Err(Refusal::PerIp);
        }
        *count += 1;
        *total += 1;
        Ok(Ticket {
            door: self.clone(),
            ip,
        })
    }

    /// Whether the server is so near its limit on open files that new workers are refused
    /// (with 503), keeping the rest for HTTP.
    pub(crate) fn crowded(&self) -> bool {
        let open = lock(&self.open).0;
        let crowded = open >= self.max_open().saturating_sub(RESERVE);
        if crowded && let Some(skipped) = self.refusals.pass() {
            tracing::warn!(
                open,
                limit = self.limit,
                not_logged = skipped,
                "refused a worker: too many connections open for the limit on open files"
            );
        }
        crowded
    }

    /// Connections open now.
    #[cfg(test)]
    fn open(&self) -> usize {
        lock(&self.open).0
    }

    fn release(&self, ip: IpAddr) {
        let mut open = lock(&self.open);
        let (total, by_ip) = &mut *open;
        *total -= 1;
        if let Some(count) = by_ip.get_mut(&ip) {
            *count -= 1;
            if *count == 0 {
                by_ip.remove(&ip);
            }
        }
    }

    /// Notes a socket closed as soon as it was accepted (one line per [`LOG_EVERY`]).
    fn refused(&self, peer: SocketAddr, refusal: Refusal) {
        let Some(skipped) = self.refusals.pass() else {
            return;
        };
        match refusal {
            Refusal::PerIp => tracing::warn!(
                %peer,
                cap = self.per_ip.load(Ordering::Relaxed),
                not_logged = skipped,
                "refused a connection: too many open from its address (--max-connections-per-ip)"
            ),
            Refusal::Full => tracing::warn!(
                %peer,
                limit = self.limit,
                not_logged = skipped,
                "refused a connection: too many open for the limit on open files"
            ),
        }
    }
}

/// One accepted connection, counted until dropped.
pub(crate) struct Ticket {
    door: Arc<Door>,
    ip: IpAddr,
}

impl Drop for Ticket {
    fn drop(&mut self) {
        self.door.release(self.ip);
    }
}

/// Accepts the next connection `door` admits on `listener`, with Nagle's algorithm off
/// (small messages must not wait 40 ms for delayed ACKs). Others are closed at once.
pub(crate) async fn accept(
    listener: &TcpListener,
    door: &Arc<Door>,
) -> (Counted<TcpStream>, SocketAddr) {
    loop {
        match listener.accept().await {
            Ok((stream, peer)) => match door.admit(peer.ip()) {
                Ok(ticket) => {
                    if let Err(error) = stream.set_nodelay(true) {
                        tracing::debug!(%error, "cannot set TCP_NODELAY");
                    }
                    return (
                        Counted {
                            inner: stream,
                            _ticket: ticket,
                        },
                        peer,
                    );
                }
                Err(refusal) => door.refused(peer, refusal),
            },
            Err(error) => {
                // Out of descriptors despite the margins, say: wait rather than spin.
                if let Some(skipped) = door.failures.pass() {
                    tracing::warn!(%error, not_logged = skipped, "accepting a connection failed");
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

/// A stream counted by its door for as long as it is open.
pub(crate) struct Counted<S> {
    inner: S,
    _ticket: Ticket,
}

impl<S: AsyncRead + Unpin> AsyncRead for Counted<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Counted<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// Lets one event through per [`LOG_EVERY`] and counts the others.
#[derive(Default)]
struct Throttle {
    last: Mutex<Option<Instant>>,
    skipped: AtomicU64,
}

impl Throttle {
    /// `Some(how many were held back since the last)` when this one may be logged.
    fn pass(&self) -> Option<u64> {
        let mut last = lock(&self.last);
        if last.is_some_and(|last| last.elapsed() < LOG_EVERY) {
            self.skipped.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        *last = Some(Instant::now());
        Some(self.skipped.swap(0, Ordering::Relaxed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOME: IpAddr = IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);
    const AWAY: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 7));

    #[test]
    fn an_address_is_held_to_its_cap_until_a_connection_closes() {
        let door = Arc::new(Door::new(100_000));
        door.set_per_ip(2);
        let first = door.admit(AWAY).unwrap();
        let _second = door.admit(AWAY).unwrap();
        assert_eq!(door.admit(AWAY).err(), Some(Refusal::PerIp));
        // Others are not affected.
        let _home = door.admit(HOME).unwrap();
        drop(first);
        assert!(door.admit(AWAY).is_ok());
    }

    #[test]
    fn local_workers_are_allowed_on_top_of_the_loopback_cap() {
        let door = Arc::new(Door::new(100_000));
        door.set_per_ip(1);
        door.allow_local(3);
        let tickets: Vec<_> = (0..4).map(|_| door.admit(HOME).unwrap()).collect();
        assert_eq!(door.admit(HOME).err(), Some(Refusal::PerIp));
        let _away = door.admit(AWAY).unwrap();
        assert_eq!(door.admit(AWAY).err(), Some(Refusal::PerIp));
        drop(tickets);
        assert_eq!(door.open(), 1);
    }

    #[test]
    fn ipv4_mapped_addresses_count_as_the_ipv4_address() {
        let door = Arc::new(Door::new(100_000));
        door.set_per_ip(1);
        let _v4 = door.admit(AWAY).unwrap();
        let IpAddr::V4(away) = AWAY else {
            unreachable!()
        };
        let mapped = IpAddr::V6(away.to_ipv6_mapped());
        assert_eq!(door.admit(mapped).err(), Some(Refusal::PerIp));
    }

    #[test]
    fn workers_are_refused_before_the_reserve_and_sockets_before_the_spare() {
        let limit = SPARE + RESERVE + 10;
        let door = Arc::new(Door::new(limit));
        door.set_per_ip(usize::MAX);
        let mut tickets = Vec::new();
        for _ in 0..10 {
            assert!(!door.crowded());
            tickets.push(door.admit(AWAY).unwrap());
        }
        // Workers are refused now; HTTP still has the reserve.
        assert!(door.crowded());
        for _ in 0..RESERVE {
            tickets.push(door.admit(AWAY).unwrap());
        }
        // The spare is for files.
        assert_eq!(door.admit(HOME).err(), Some(Refusal::Full));
        assert_eq!(door.open(), limit - SPARE);
        tickets.truncate(9);
        assert!(!door.crowded());
    }

    #[test]
    fn a_flood_of_refusals_is_logged_once_per_period() {
        let throttle = Throttle::default();
        assert_eq!(throttle.pass(), Some(0));
        assert_eq!(throttle.pass(), None);
        assert_eq!(throttle.pass(), None);
        *lock(&throttle.last) = Some(Instant::now() - LOG_EVERY);
        assert_eq!(throttle.pass(), Some(2));
    }

    #[test]
    fn the_limit_on_open_files_is_raised_and_read_once() {
        let limit = open_files_limit();
        assert!(limit >= 64);
        assert_eq!(open_files_limit(), limit);
    }
}
