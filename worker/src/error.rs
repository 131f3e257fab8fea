use thiserror::Error;

/// Why a worker's session with a server ended badly.
#[derive(Debug, Error)]
pub enum WorkerError {
    /// The server could not be reached.
    #[error("cannot connect to {url}: {source}")]
    Connect {
        /// The URL tried.
        url: String,
        /// Why.
        #[source]
        source: tokio_tungstenite::tungstenite::Error,
    },
    /// The server closed the connection, refusing the worker or ending the session.
    #[error("the server closed the connection: {0}")]
    Closed(String),
    /// The connection broke.
    #[error("lost the connection to the server: {0}")]
    Lost(#[from] tokio_tungstenite::tungstenite::Error),
    /// The server broke the protocol.
    #[error("the server broke the protocol: {0}")]
    Protocol(String),
    /// The server did not answer in time.
    #[error("the server did not answer within {0:?}")]
    Timeout(std::time::Duration),
    /// The worker could not start its sandbox.
    #[error("cannot start the sandbox: {0}")]
    Sandbox(String),
}
