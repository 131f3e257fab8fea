//! The job manifest (TOML): what to run, on what, under which limits.
//!
//! ```toml
//! name = "factorise"
//! [modules]
//! factor = "../../target/wasm32-unknown-unknown/release/factorise.wasm"  # relative to this file
//! [[stages]]
//! name = "factors"
//! task = "factor.factorise"                       # module.export
//! inputs = { range = { start = 1000000000000, end = 1000000002000 } }   # end exclusive
//! # or: inputs = { values = [12, 97, 1001] }
//! # or: inputs = { file = "numbers.jsonl" }       # one JSON value per line
//! # integers above i64::MAX (TOML's largest) as decimal strings, where the task takes an
//! # integer: { values = ["18446744073709551615"] }, { range = { start = "…", end = "…" } }
//! max_attempts = 3                                # optional: failures before giving up
//! [limits]                                        # optional; defaults are safe for volunteers
//! fuel = 10_000_000_000
//! memory_mb = 256
//! timeout_secs = 300
//! ```
//!
//! [`load`] checks everything before a worker is accepted: each module is read, hashed and
//! validated against the guest ABI (compiled only if the server runs it), each stage's task
//! must be a task export of its module, and each input file must be valid JSON Lines. Where
//! the modules record their tasks' types, every input value and every edge between stages is
//! type-checked ([`crate::manifest::types`]); `check_types = false` on a stage turns that off. Errors
//! name the key, file and line at fault.
//!
//! The checks run in this order, one file each, and the first fault found is the one
//! reported: the `[limits]` (`limits.rs`), the `[modules]` (`modules.rs`), how the stages
//! read each other (`graph.rs`), what each stage's inputs resolve to (`sources.rs`,
//! `inputs.rs`), then each stage's own settings (`stage.rs`: retries, explore and early stops
//! in `explore.rs`, replication and verifiers in `checks.rs`, deadlines). The TOML as written
//! is `schema.rs`.

mod checks;
pub(crate) mod error;
mod explore;
mod graph;
mod inputs;
pub(crate) mod job;
pub(crate) mod job_inputs;
mod limits;
mod modules;
mod schema;
mod sources;
mod stage;
pub(crate) mod stage_error;
pub(crate) mod task_fit;
pub mod types;

use std::path::{Path, PathBuf};

use dipla_protocol::TaskLimits;
use dipla_sandbox::Sandbox;
use dipla_sandbox::abi::TaskInfo;

use crate::{Job, ManifestError};
use schema::File;

/// Failures a task may have before it is reported as failed, unless a stage says otherwise.
pub const DEFAULT_MAX_ATTEMPTS: u32 = 3;

/// The limits a task gets unless the manifest says otherwise.
pub const DEFAULT_LIMITS: TaskLimits = TaskLimits {
    fuel: 10_000_000_000,
    memory_mb: 256,
    timeout_ms: 300_000,
};

/// The most tasks an explore stage grows to unless it says otherwise.
pub const DEFAULT_MAX_EXPLORE_TASKS: u64 = 1_000_000;

/// Why a file a manifest names (a module, an input file) cannot be had.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// The file cannot be read.
    #[error("cannot read {}: {why}", path.display())]
    Io {
        /// The file, as read (joined to the manifest's folder).
        path: PathBuf,
        /// Why not.
        why: std::io::Error,
    },
    /// The file was not sent with the manifest (a job submitted with its files).
    #[error("{} was not sent with the manifest", path.display())]
    NotSent {
        /// The file, as the manifest names it.
        path: PathBuf,
    },
}

/// Reads the files a manifest names (modules, input files), given their paths as written.
pub type ReadFile<'a> = dyn Fn(&Path) -> Result<Vec<u8>, ReadError> + 'a;

/// What is wrong in a manifest, before the manifest's path is added: the key at fault (such
/// as `stages[0].task`) and why.
#[derive(Debug)]
struct Fault {
    key: String,
    message: String,
}

impl Fault {
    fn new(key: impl Into<String>, message: impl ToString) -> Self {
        Self {
            key: key.into(),
            message: message.to_string(),
        }
    }

    /// The fault in the manifest at `path`.
    fn at(self, path: &Path) -> ManifestError {
        ManifestError::Invalid {
            path: path.to_owned(),
            key: self.key,
            message: self.message,
        }
    }
}

/// The files the manifest `text` names (modules, then input files), as written, to send
/// with it when submitting it to a server.
///
/// # Errors
/// When the text is not a manifest.
pub fn named_files(text: &str) -> Result<Vec<PathBuf>, toml::de::Error> {
    let file: File = toml::from_str(text)?;
    let mut files: Vec<PathBuf> = file.modules.into_values().collect();
    for stage in &file.stages {
        if let Some(inputs) = &stage.inputs {
            inputs.files(&mut files);
        }
    }
    files.dedup();
    Ok(files)
}

/// Reads, checks and resolves the manifest at `path`, compiling its modules with `sandbox`.
///
/// # Errors
/// [`ManifestError`], naming the key, file and line at fault.
pub fn load(path: &Path, sandbox: &Sandbox) -> Result<Job, ManifestError> {
    let text = std::fs::read_to_string(path).map_err(|source| ManifestError::Read {
        path: path.to_owned(),
        source,
    })?;
    parse(&text, path, sandbox)
}

/// Like [`load`], with the manifest's text given; relative paths are resolved against
/// `path`'s folder.
///
/// # Errors
/// [`ManifestError`], naming the key, file and line at fault.
pub fn parse(text: &str, path: &Path, sandbox: &Sandbox) -> Result<Job, ManifestError> {
    let base = path.parent().unwrap_or(Path::new("."));
    let read = |file: &Path| {
        let full = base.join(file);
        std::fs::read(&full).map_err(|why| ReadError::Io { path: full, why })
    };
    parse_with(text, path, sandbox, &read)
}

/// Like [`parse`], with the files the manifest names read by `read` (for a job submitted
/// with its files, [`crate::run::serve`]); `path` names the manifest in messages.
///
/// # Errors
/// [`ManifestError`], naming the key, file and line at fault.
pub fn parse_with(
    text: &str,
    path: &Path,
    sandbox: &Sandbox,
    read: &ReadFile<'_>,
) -> Result<Job, ManifestError> {
    let file: File = toml::from_str(text).map_err(|e| ManifestError::Syntax {
        path: path.to_owned(),
        message: e.to_string(),
    })?;
    resolve(file, path, sandbox, read).map_err(|fault| fault.at(path))
}

/// Checks and resolves a manifest, part by part, in the order the faults are reported.
fn resolve(file: File, path: &Path, sandbox: &Sandbox, read: &ReadFile<'_>) -> Result<Job, Fault> {
    if file.name.trim().is_empty() {
        return Err(Fault::new("name", "the job needs a name"));
    }
    let limits = limits::limits(&file.limits)?;
    let (modules, guests) = modules::load(&file.modules, limits, path, sandbox, read)?;
    let graph = graph::Graph::of(&file.stages, &guests)?;
    let sources = sources::resolve(&file.stages, &graph, read)?;
    let stages = file
        .stages
        .into_iter()
        .zip(sources)
        .zip(&graph.tasks)
        .enumerate()
        .map(|(i, ((stage, source), task))| stage::stage(i, stage, source, task, &guests, limits))
        .collect::<Result<_, _>>()?;
    Ok(Job {
        name: file.name,
        modules,
        stages,
        sandbox: sandbox.clone(),
    })
}

/// Whether a task may meet its stage's goal and stop it early: it returns `Flow`, or its
/// module does not say what it returns.
pub fn may_stop(info: &TaskInfo) -> bool {
    info.returns.as_deref().is_none_or(|returns| {
        returns.starts_with("Flow<") || returns.starts_with("dipla_guest::Flow<")
    })
}
