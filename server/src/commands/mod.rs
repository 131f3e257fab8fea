//! What the `dipla-server` subcommands do once the binary has read their flags, one file
//! each: [`run`] a job from its manifest to its summary, [`serve`] jobs submitted over the
//! API until interrupted, [`remote`] calls to such a server (submit, results, jobs, status,
//! cancel), [`inspect`] a module, [`audit`] a job's results. (`directory` is
//! [`crate::directory::run`], `try` is [`crate::run::trial`].)
//!
//! They write what an operator reads: results on stdout or in a file, progress and how the
//! job ended on stderr, as lines starting `dipla-server:`. They return what the binary turns
//! into an exit code, and typed errors it prints.

pub mod audit;
pub mod inspect;
pub mod remote;
pub mod run;
pub mod serve;

use std::io::Write;
use std::path::{Path, PathBuf};

/// A file to write to cannot be created.
#[derive(Debug, thiserror::Error)]
#[error("cannot create {}", path.display())]
pub struct CreateError {
    /// The file.
    pub path: PathBuf,
    /// Why.
    #[source]
    pub source: std::io::Error,
}

/// Where to write results: the file `out` (created, or emptied), or stdout; buffered.
///
/// # Errors
/// When the file cannot be created.
pub fn results_writer(out: Option<&Path>) -> Result<Box<dyn Write>, CreateError> {
    Ok(match out {
        Some(path) => Box::new(std::io::BufWriter::new(
            std::fs::File::create(path).map_err(|source| CreateError {
                path: path.to_owned(),
                source,
            })?,
        )),
        None => Box::new(std::io::BufWriter::new(std::io::stdout().lock())),
    })
}
