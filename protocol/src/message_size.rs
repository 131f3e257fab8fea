//! How large one WebSocket message may be, each way. Both sides cap what they read (a message
//! over the cap ends the connection), so the limits are part of the protocol: a worker that
//! sends more than the server reads is closed with code 1009 (message too big).

/// The largest message a worker may send (a `results` message with its outputs, a `hello`):
/// 16 MiB. The server closes a connection whose message is larger with code 1009 and the
/// reason `message over 16 MiB`.
pub const MAX_WORKER_MESSAGE_BYTES: usize = 16 << 20;

/// The largest message a server may send (a module, a batch of tasks with their inputs):
/// 64 MiB. A worker reads no larger message.
pub const MAX_SERVER_MESSAGE_BYTES: usize = 64 << 20;
