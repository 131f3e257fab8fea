//! The Dipla wire protocol: every message a server and a worker exchange.
//!
//! A worker connects to the server's WebSocket endpoint (`/ws`) and the two speak JSON text
//! frames, one message per frame, each an object with a single key naming the message,
//! `{"tasks": {...}}` (serde's externally tagged form, which passes task inputs and outputs
//! through as raw JSON without buffering):
//!
//! - [`WorkerMessage`]: `hello` first (with the worker's identity), `proof` in answer to the
//!   challenge, then `fetch_module` and `results` (each with a signed receipt), and `pause`
//!   and `resume` to a server whose `welcome` says it understands them.
//! - [`ServerMessage`]: `challenge` in answer to `hello`, `welcome` once the proof checks,
//!   then `tasks`, `cancel` and finally `goodbye`; to a browser worker (a hello with
//!   [`Agent::Browser`]), `instrumented` before each module's bytes.
//!
//! What is signed is defined byte for byte in [`identity`].
//!
//! Module bytes are the one exception: the server sends them as a binary frame holding exactly
//! the module, and the worker recognises them by their sha256 ([`ModuleHash`]), which it must
//! have asked for. Nothing else is ever sent as binary.
//!
//! Each side reads messages up to a size ([`MAX_WORKER_MESSAGE_BYTES`] from a worker,
//! [`MAX_SERVER_MESSAGE_BYTES`] from a server) and ends the connection on a larger one.
//!
//! The crate is serde-only so both sides (and tests, and third-party workers) share one
//! definition; `tests/golden.rs` pins the JSON of every message.

mod hash;
pub mod identity;
mod limits;
mod message_size;
pub mod present;
mod server;
pub mod text;
mod worker;

pub use hash::{ModuleHash, ParseHashError};
pub use identity::{Nonce, PublicKey, Signature};
pub use limits::TaskLimits;
pub use message_size::{
    DEFAULT_MAX_MODULE_MB, MAX_SERVER_MESSAGE_BYTES, MAX_WORKER_MESSAGE_BYTES, module_limit_bytes,
};
pub use server::{ServerMessage, TaskBatch, TaskItem, Welcome};
pub use worker::{
    Agent, Benchmark, FailureKind, Hello, KernelRun, MAX_FAILURE_MESSAGE_BYTES, MAX_LOG_BYTES,
    MAX_PAUSE_REASON_CHARS, Secret, TaskFailure, TaskResult, WorkerMessage,
};

/// The protocol version this crate speaks. A server refuses a `hello` with another version.
pub const PROTOCOL_VERSION: u32 = 3;

/// Raw JSON text, passed through without being parsed into a value (task inputs and outputs).
pub type RawJson = serde_json::value::RawValue;
