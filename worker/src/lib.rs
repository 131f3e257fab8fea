//! The Dipla worker: one generic program that runs any job's tasks, sandboxed.
//!
//! A worker connects to a server ([`run`]), says hello with what it offers, and then runs
//! whatever tasks it is sent, fetching each module by content hash the first time it needs
//! it. It trusts nothing it receives: modules are checked against their hash and the guest ABI
//! before compiling, every task runs in a fresh wasmtime store under the smaller of the
//! server's and the volunteer's limits ([`WorkerConfig::caps`]), and a module that imports
//! anything is refused.
//!
//! - [`config`]: what the volunteer decides.
//! - [`config_file`]: the options read from a TOML file, for what the command line leaves unset.
//! - [`cache`]: compiled modules by hash, in memory and on disk.
//! - [`identity`]: the key pair the worker is known by, which signs its receipts.
//! - [`polite`]: idle priority, a CPU cap, and pausing when the volunteer needs the machine.
//! - [`directory`]: finding a project's server in a project directory.
//! - [`status`]: what the running worker does, kept in a state file; [`status_report`]:
//!   `dipla-worker status`, which reads it.
//! - [`server_url`]: the URL forms a volunteer may give, and what is wrong with one.
//! - `failure`: what a failed connection attempt means, in plain words.
//! - `executor`: the threads that run tasks.
//! - `session`: one connection to a server, speaking `dipla-protocol`.

pub mod cache;
pub mod config;
pub mod config_file;
pub mod directory;
mod error;
mod executor;
mod failure;
pub mod identity;
pub mod polite;
mod reconnect;
pub mod server_url;
mod session;
pub mod status;
pub mod status_report;
pub mod tls;

pub use cache::ModuleCache;
#[cfg(feature = "test-hooks")]
pub use config::Tamper;
pub use config::WorkerConfig;
pub use error::WorkerError;
pub use identity::Identity;
pub use reconnect::{Backoff, FIRST_RETRIES, serve};
pub use session::run;
pub use status::{State, Status};
