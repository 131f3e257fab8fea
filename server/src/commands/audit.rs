//! `dipla-server audit`: a job's results checked against its workers' signed receipts, a
//! sample of its tasks run again here ([`crate::store::audit`]).

use std::path::Path;

use dipla_sandbox::{Sandbox, SandboxError};

use crate::store::audit::{AuditError, AuditReport};

/// The most problems listed one per line; the rest are counted.
const LISTED: usize = 20;

/// Why an audit cannot run.
#[derive(Debug, thiserror::Error)]
pub enum AuditCommandError {
    /// The sandbox cannot start.
    #[error("cannot start the sandbox")]
    Sandbox(#[source] SandboxError),
    /// The results or the journal cannot be read.
    #[error(transparent)]
    Audit(#[from] AuditError),
}

/// Audits `results` against the journal `state`, re-running `sample` tasks; lists the first
/// problems on stderr and the report on stdout.
///
/// # Errors
/// When the sandbox cannot start or a file cannot be read (a failed check is a problem in
/// the report).
pub fn audit(
    results: &Path,
    state: &Path,
    sample: usize,
) -> Result<AuditReport, AuditCommandError> {
    let sandbox = Sandbox::new().map_err(AuditCommandError::Sandbox)?;
    let report = crate::store::audit::audit(results, state, sample, &sandbox)?;
    for problem in report.problems.iter().take(LISTED) {
        eprintln!("dipla-server audit: {problem}");
    }
    if report.problems.len() > LISTED {
        eprintln!(
            "dipla-server audit: ... and {} more",
            report.problems.len() - LISTED
        );
    }
    println!("{report}");
    Ok(report)
}
