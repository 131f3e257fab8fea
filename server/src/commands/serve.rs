//! `dipla-server serve`: a long-lived server taking jobs over its API ([`crate::Serve`])
//! until interrupted.

use std::future::Future;

use crate::directory::announce::AnnounceOptions;
use crate::{Serve, ServeOptions};

/// Why a server stopped short.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The server cannot start (its address, its data folder, its TLS files...).
    #[error("cannot start the server")]
    Start(#[source] std::io::Error),
    /// The announcement is not one a directory would take.
    #[error(transparent)]
    Announce(Box<dyn std::error::Error + Send + Sync>),
    /// Waiting for the interruption failed.
    #[error(transparent)]
    Interrupt(std::io::Error),
}

/// Serves as `options` say, announced to a directory as `announce` says, until `interrupt`
/// completes (Ctrl-C); then stops, leaving running jobs to resume when the server starts
/// again. Says on stderr where jobs are kept and where the API, the dashboard and workers
/// connect.
///
/// # Errors
/// [`ServeError`].
pub async fn serve(
    options: ServeOptions,
    announce: AnnounceOptions,
    interrupt: impl Future<Output = std::io::Result<()>>,
) -> Result<(), ServeError> {
    let data_dir = options.data_dir.clone();
    let name = options.name.clone();
    let server = Serve::start(options).await.map_err(ServeError::Start)?;
    let addr = server.local_addr();
    eprintln!("dipla-server: keeping jobs in {}", data_dir.display());
    eprintln!("dipla-server: API and dashboard on http://{addr}/");
    let url = server.worker_url();
    eprintln!("dipla-server: workers connect to {url}");
    let announcer = announce
        .announcer(&name, &url)
        .map_err(|error| ServeError::Announce(error.into()))?;
    if let Some(announcer) = announcer {
        crate::directory::announce::spawn(announcer, server.worker_count());
    }
    interrupt.await.map_err(ServeError::Interrupt)?;
    eprintln!("dipla-server: stopping; running jobs resume when the server starts again");
    server.shutdown().await;
    Ok(())
}
