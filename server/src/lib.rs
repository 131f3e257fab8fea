//! The Dipla server: the single source of truth of a job.
//!
//! It reads a job manifest ([`manifest`]) into a validated [`Job`], accepts workers over
//! WebSockets ([`transport`]), hands them tasks by content hash and measured pace
//! ([`coordinator`], which does no I/O so it can be tested deterministically), and writes the
//! results as JSON Lines in input order ([`output`]). [`Server`] ties the parts together, with
//! embedded local workers so a single machine is enough.
//!
//! It never trusts a worker: every message is parsed into typed protocol messages and checked
//! against what that worker was actually given.

pub mod announce;
mod api;
pub mod audit;
mod auth;
pub mod client;
pub mod commands;
mod dashboard;
pub mod directory;
mod door;
mod driver;
mod engine;
mod error;
mod gate;
mod health;
pub mod http;
mod hub;
mod inputs;
mod job;
mod jobs_api;
pub mod journal;
pub mod manifest;
mod metrics;
mod mirror;
pub mod output;
pub mod progress;
mod promise;
mod receipts;
pub mod serve;
mod server;
mod stage_check;
mod stage_error;
mod state;
mod stats;
pub mod task_logs;
pub mod tls;
pub mod transport;
pub mod trial;
mod trust;
pub mod types;
mod task_fit;
mod verification;
mod violation;

pub use auth::Tokens;
pub use dipla_core::{Check, Replicate, WorkerRecord};
pub use door::DEFAULT_MAX_CONNECTIONS_PER_IP;
pub use driver::{Dipla, DiplaBuilder, Input, ModuleRef, Task};
pub use error::{DriverError, ManifestError};
pub use gate::DEFAULT_MAX_CORES;
pub use inputs::Inputs;
pub use job::{Job, Module, Part, Source, Stage};
pub use promise::{Promise, Reduced};
pub use serve::{JobBrief, JobState, Serve, ServeOptions, Submission};
pub use server::{DEFAULT_MAX_WORKERS, RunOptions, Server, Summary};
pub use state::{Handle, WorkerSummary};
pub use stats::{Stats, StatsSnapshot};
pub use violation::Violation;
