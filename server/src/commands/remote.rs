//! The commands that call a server started with `serve` ([`crate::driver::client`]): `submit`,
//! `results`, `jobs`, `status` and `cancel`.

use std::path::Path;

use super::{CreateError, results_writer};
use crate::JobBrief;
use crate::driver::client::{Client, ClientError};

/// Why a call to a server, or writing what it answered, failed.
#[derive(Debug, thiserror::Error)]
pub enum RemoteError {
    /// The call failed.
    #[error(transparent)]
    Client(#[from] ClientError),
    /// The results file cannot be created.
    #[error(transparent)]
    Create(#[from] CreateError),
    /// What the server answered cannot be written as JSON.
    #[error(transparent)]
    Json(#[from] serde_json::Error),
}

/// Submits the manifest at `manifest` with the files it names; prints the job's id on
/// stdout, and what was submitted on stderr.
///
/// # Errors
/// When a file cannot be read or the server refuses the job.
pub async fn submit(client: &Client, manifest: &Path) -> Result<JobBrief, RemoteError> {
    let job = client.submit(manifest).await?;
    println!("{}", job.id);
    eprintln!(
        "dipla-server: submitted {} as job {} ({} tasks)",
        manifest.display(),
        job.id,
        job.tasks
    );
    Ok(job)
}

/// Writes job `id`'s results as JSON Lines to the file `out` (or stdout): those written so
/// far, and with `follow` the rest until the job ends. Returns the job as it is then.
///
/// # Errors
/// When `out` cannot be created or written, or the call fails.
pub async fn results(
    client: &Client,
    id: &str,
    follow: bool,
    out: Option<&Path>,
) -> Result<JobBrief, RemoteError> {
    Ok(client
        .results(id, follow, &mut results_writer(out)?)
        .await?)
}

/// Says on stderr how a job ended: its state and its summary.
pub fn report_end(brief: &JobBrief) {
    let state = serde_json::to_value(brief.state).unwrap_or_default();
    let state = state.as_str().unwrap_or("ended");
    match &brief.summary {
        Some(summary) => eprintln!("dipla-server: job {} {state}: {summary}", brief.id),
        None => eprintln!("dipla-server: job {} {state}", brief.id),
    }
}

/// Prints the server's jobs on stdout, one line each under a header.
///
/// # Errors
/// When the call fails.
pub async fn jobs(client: &Client) -> Result<(), RemoteError> {
    let jobs = client.jobs().await?;
    println!(
        "{:<28} {:<10} {:>10} {:>10} {:>8} {:>8}",
        "ID", "STATE", "DONE", "TASKS", "FAILED", "WORKERS"
    );
    for job in jobs {
        let state = serde_json::to_value(job.state)?;
        println!(
            "{:<28} {:<10} {:>10} {:>10} {:>8} {:>8}",
            job.id,
            state.as_str().unwrap_or("?"),
            job.done,
            job.tasks,
            job.failed,
            job.workers
        );
    }
    Ok(())
}

/// Prints job `id`'s status on stdout as pretty JSON.
///
/// # Errors
/// When the call fails.
pub async fn status(client: &Client, id: &str) -> Result<(), RemoteError> {
    let status = client.status(id).await?;
    println!("{}", serde_json::to_string_pretty(&status)?);
    Ok(())
}

/// Cancels job `id`, and says so on stderr.
///
/// # Errors
/// When the call fails (the job is unknown or has ended).
pub async fn cancel(client: &Client, id: &str) -> Result<(), RemoteError> {
    client.cancel(id).await?;
    eprintln!("dipla-server: job {id} cancelled");
    Ok(())
}
