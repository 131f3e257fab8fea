//! The light Dipla driver: run a job on a long-running `dipla-server serve` from a Rust
//! program, the way the original Dipla was used from Python, without compiling the server
//! (no wasmtime, no SQLite). Apply a task to inputs or to the promise of an earlier task, and
//! get the results:
//!
//! ```no_run
//! # async fn demo() -> Result<(), dipla_driver::DriverError> {
//! let dipla = dipla_driver::Dipla::builder()
//!     .remote("http://127.0.0.1:7070", "ADMIN-TOKEN")
//!     .start()
//!     .await?;
//! let m = dipla.module("target/wasm32-unknown-unknown/release/factorise.wasm")?;
//! let factors = m.task("factorise").map(1_000_000_000_000u64..1_000_000_002_000);
//! let counts = m.task("count").map(&factors);
//! // `get::<T>()`: T is the type of ONE output; a promise gives a Vec<T>.
//! let per_number: Vec<u64> = counts.get::<u64>().await?;
//! // A reduce has one output: its `get::<T>()` gives a T.
//! let total: u64 = m.task("sum").reduce(&counts).get().await?;
//! # Ok(()) }
//! ```
//!
//! Each application adds a stage to the running job at once and returns a [`Promise`]
//! without waiting: `counts` starts as soon as the first factors exist (pipelining). The
//! server checks every stage as it is made; a mistake (no such task, wrong arity, empty
//! inputs) is returned by the promise's `get` as [`DriverError::Invalid`], and by every
//! promise made from it.
//!
//! The job is closed when the [`Dipla`] and everything made from it are dropped, or at
//! [`Dipla::shutdown`]; a driver killed before that is noticed by the server, which cancels
//! the job once the driver's heartbeats stop.
//!
//! To run the server inside the program instead (local workers, no server to start), enable
//! the `local` feature and use [`DiplaBuilder::local_workers`]: the same driver then talks to
//! a `serve` of its own on loopback. That compiles the whole server (wasmtime, SQLite);
//! `dipla_server::Dipla` is the same API over the server's engine directly, without HTTP.

mod api;
mod dipla;
mod error;
mod event;
mod link;
#[cfg(feature = "local")]
mod local;
mod promise;
mod signature;
mod store;
mod task;

pub use dipla::{DEFAULT_LIMITS, DEFAULT_MAX_ATTEMPTS, Dipla, DiplaBuilder, ModuleRef};
pub use dipla_protocol::{FailureKind, ModuleHash, TaskFailure, TaskLimits};
pub use error::DriverError;
pub use promise::{Promise, Reduced};
pub use signature::{Param, TaskInfo};
pub use task::{DEFAULT_MAX_EXPLORE_TASKS, Input, Replicate, Task};
