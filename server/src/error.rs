use std::path::PathBuf;

use thiserror::Error;

/// Why a job manifest cannot run. Every variant names the file, key or path at fault.
#[derive(Debug, Error)]
pub enum ManifestError {
    /// The manifest file cannot be read.
    #[error("cannot read the manifest {path}: {source}")]
    Read {
        /// The manifest's path.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The manifest is not valid TOML or does not have the expected keys and types.
    #[error("{path}: {message}")]
    Syntax {
        /// The manifest's path.
        path: PathBuf,
        /// The parser's message, with the line and the key at fault.
        message: String,
    },
    /// A key has a value that cannot work.
    #[error("{path}: {key}: {message}")]
    Invalid {
        /// The manifest's path.
        path: PathBuf,
        /// The key at fault, such as `stages[0].task`.
        key: String,
        /// What is wrong.
        message: String,
    },
}
