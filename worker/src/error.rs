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
    /// The server closed the connection, ending the session.
    #[error("the server closed the connection: {0}")]
    Closed(String),
    /// The server refused this worker (a bad token, another protocol version, a broken
    /// rule): connecting again would be refused again.
    #[error("the server refused this worker: {0}")]
    Refused(String),
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

impl WorkerError {
    /// Whether trying again later can help: not when the server refused this worker or broke
    /// the protocol (a server that misbehaves once is not trusted again), or the sandbox
    /// cannot start.
    pub fn is_retryable(&self) -> bool {
        !matches!(
            self,
            Self::Refused(_) | Self::Protocol(_) | Self::Sandbox(_)
        )
    }
}
