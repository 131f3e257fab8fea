use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// Traffic counters of a server, updated as it runs.
#[derive(Debug, Default)]
pub struct Stats {
    module_transfers: AtomicU64,
    module_bytes: AtomicU64,
    messages_sent: AtomicU64,
    bytes_sent: AtomicU64,
    bytes_received: AtomicU64,
    workers_joined: AtomicU64,
}

/// A copy of [`Stats`] at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct StatsSnapshot {
    /// Modules sent to workers (each at most once per connection).
    pub module_transfers: u64,
    /// Bytes of those modules.
    pub module_bytes: u64,
    /// Protocol messages sent, modules included.
    pub messages_sent: u64,
    /// Bytes of protocol messages sent, modules included.
    pub bytes_sent: u64,
    /// Bytes of protocol messages received.
    pub bytes_received: u64,
    /// Workers that completed the handshake.
    pub workers_joined: u64,
}

impl Stats {
    pub(crate) fn module_sent(&self, bytes: usize) {
        self.module_transfers.fetch_add(1, Relaxed);
        self.module_bytes.fetch_add(bytes as u64, Relaxed);
        self.sent(bytes);
    }

    pub(crate) fn sent(&self, bytes: usize) {
        self.messages_sent.fetch_add(1, Relaxed);
        self.bytes_sent.fetch_add(bytes as u64, Relaxed);
    }

    pub(crate) fn received(&self, bytes: usize) {
        self.bytes_received.fetch_add(bytes as u64, Relaxed);
    }

    pub(crate) fn joined(&self) {
        self.workers_joined.fetch_add(1, Relaxed);
    }

    /// The counters now.
    pub fn snapshot(&self) -> StatsSnapshot {
        StatsSnapshot {
            module_transfers: self.module_transfers.load(Relaxed),
            module_bytes: self.module_bytes.load(Relaxed),
            messages_sent: self.messages_sent.load(Relaxed),
            bytes_sent: self.bytes_sent.load(Relaxed),
            bytes_received: self.bytes_received.load(Relaxed),
            workers_joined: self.workers_joined.load(Relaxed),
        }
    }
}
