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
//!
//! # The map
//!
//! The modules are layers, each a folder; a layer uses only the ones above it in this list,
//! never one below (`tests/layers.rs` keeps it so):
//!
//! 1. `manifest/`: the job model (`job`, its `job_inputs`, `types`, the errors) and reading a
//!    manifest into it, with the pure checks of a task's fit (`task_fit`, `stage_error`).
//! 2. `store/`: what is kept: `journal`, `output`, `audit`, `trust`, `task_logs`.
//! 3. `net/`: serving workers: `door`, `http` (connection serving), `tls`, `auth`, `gate` and its
//!    `metrics` registry, the job's shared `state` and `stats`, `hub`, and the `transport` with
//!    its `receipts`, `verification` and `violation`. The shared state sits here because the
//!    gate and the transport both hold it.
//! 4. `directory/`: the project directory and `announce` (a server posting to one).
//! 5. `web/`: the read-only faces: `api`, `health`, `progress`, and the remote driver's `mirror`
//!    records.
//! 6. `run/`: running jobs: `engine`, `server` (the manifest runner), `serve` (many jobs) with
//!    its `jobs_api` and `dashboard` (they share the service's types, so they live with it),
//!    `stage_check` (a driver's stage against its job) and `trial`.
//! 7. `driver/`: the driver API ([`Dipla`]), its `promise`s and the remote `client`.
//! 8. `commands/`: the subcommands of the binary, over everything.
//!
//! The binary (`bin/dipla-server/`: `main.rs`, `cli.rs`) may use every layer.

pub mod commands;
pub mod directory;
mod driver;
pub mod manifest;
mod net;
mod run;
mod store;
mod web;

pub use directory::announce;
pub use driver::client;
pub use manifest::types;
pub use net::{http, tls, transport};
pub use run::{serve, trial};
pub use store::{audit, journal, output, task_logs};
pub use web::progress;

pub use dipla_core::{Check, Replicate, WorkerRecord};
pub use driver::promise::{Promise, Reduced};
pub use driver::{Dipla, DiplaBuilder, Input, ModuleRef, Task};
pub use manifest::error::{DriverError, ManifestError};
pub use manifest::job::{Job, Module, ModuleTooLarge, Part, Source, Stage};
pub use manifest::job_inputs::Inputs;
pub use net::auth::Tokens;
pub use net::door::DEFAULT_MAX_CONNECTIONS_PER_IP;
pub use net::gate::DEFAULT_MAX_CORES;
pub use net::state::{Handle, WorkerSummary};
pub use net::stats::{Stats, StatsSnapshot};
pub use net::violation::Violation;
pub use run::serve::{JobBrief, JobState, Serve, ServeOptions, Submission};
pub use run::server::{DEFAULT_MAX_WORKERS, RunOptions, Server, Summary};
