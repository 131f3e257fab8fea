//! How large one WebSocket message may be, each way. Both sides cap what they read (a message
//! over the cap ends the connection), so the limits are part of the protocol: a worker that
//! sends more than the server reads is closed with code 1009 (message too big).

/// The largest message a worker may send (a `results` message with its outputs, a `hello`):
/// 16 MiB. The server closes a connection whose message is larger with code 1009 and the
/// reason `message over 16 MiB`.
pub const MAX_WORKER_MESSAGE_BYTES: usize = 16 << 20;

/// The largest message a server may send (a batch of tasks with their inputs, a module):
/// 64 MiB. A worker reads no larger message, except a module when its volunteer allows larger
/// ones (`dipla-worker --max-module-mb`).
pub const MAX_SERVER_MESSAGE_BYTES: usize = 64 << 20;

/// The largest module, in MiB, a worker takes and a server serves unless told otherwise
/// (`dipla-worker --max-module-mb`, `dipla-server run|serve --max-module-mb`). A module is
/// sent whole, in one binary message, checked against its sha256 before it is compiled; a
/// Python guest (CPython in a component) is about 19 MB.
pub const DEFAULT_MAX_MODULE_MB: u32 = 64;

/// `mb` MiB of module, in bytes (saturating: a limit past the address space is no limit).
pub fn module_limit_bytes(mb: u32) -> usize {
    usize::try_from(mb)
        .unwrap_or(usize::MAX)
        .saturating_mul(1 << 20)
}
