//! `dipla-server inspect`: what a guest module holds.

use std::path::{Path, PathBuf};

use dipla_protocol::ModuleHash;
use dipla_sandbox::{Sandbox, SandboxError};

/// Why a module cannot be inspected.
#[derive(Debug, thiserror::Error)]
pub enum InspectError {
    /// The file cannot be read.
    #[error("cannot read {}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The sandbox cannot start.
    #[error("cannot start the sandbox")]
    Sandbox(#[source] SandboxError),
    /// The file is not a module the sandbox runs.
    #[error("{} is not a runnable Dipla guest: {why}", path.display())]
    NotGuest {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        why: String,
    },
}

/// Prints on stdout the module at `path`'s hash, size, starting memory and its tasks'
/// signatures, with a warning for a debug build.
///
/// # Errors
/// [`InspectError`].
pub fn inspect(path: &Path) -> Result<(), InspectError> {
    let bytes = std::fs::read(path).map_err(|source| InspectError::Read {
        path: path.to_owned(),
        source,
    })?;
    let sandbox = Sandbox::new().map_err(InspectError::Sandbox)?;
    let guest = sandbox
        .admit(bytes.clone())
        .map_err(|e| InspectError::NotGuest {
            path: path.to_owned(),
            why: e.to_string(),
        })?;
    let info = guest.info();
    println!("module  {}", path.display());
    println!("sha256  {}", ModuleHash::of(&bytes));
    println!("size    {} bytes", bytes.len());
    println!(
        "memory  {} KiB at start (memory_mb must be above it)",
        info.initial_memory / 1024
    );
    if let Some(warning) = info.debug_warning() {
        println!("warning {warning}");
    }
    println!("tasks:");
    for task in &info.tasks {
        if task.params.is_none() {
            println!("  {task}  (types not recorded: inputs are not checked at load)");
        } else {
            println!("  {task}");
        }
    }
    Ok(())
}
