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
    /// The server URL cannot be used.
    #[error(transparent)]
    BadUrl(#[from] crate::server_url::UrlError),
    /// Something answers at the URL, but not a Dipla worker endpoint (a web page, nothing at
    /// that path, a redirect): a wrong URL, which trying again will not mend.
    #[error("{url} is not a Dipla worker endpoint: {answer}; {advice}")]
    NotAnEndpoint {
        /// The URL tried.
        url: String,
        /// What answered, in plain words.
        answer: String,
        /// What the right URL looks like.
        advice: String,
    },
    /// The server's TLS certificate is not trusted, or TLS itself failed: trying again would
    /// meet the same certificate.
    #[error("cannot connect to {url} securely: {problem}")]
    Tls {
        /// The URL tried.
        url: String,
        /// What is wrong and how to fix it, in plain words.
        problem: String,
    },
    /// The worker never reached the server: every try, the first included, failed.
    #[error("never connected to the server at {url} ({address}), tried {tries} times: {cause}")]
    NeverConnected {
        /// The URL tried.
        url: String,
        /// The `HOST:PORT` it names.
        address: String,
        /// How many times.
        tries: u32,
        /// The last failure and its likely causes, in plain words.
        cause: String,
    },
}

impl WorkerError {
    /// Whether trying again later can help: not when the server refused this worker or broke
    /// the protocol (a server that misbehaves once is not trusted again), the sandbox cannot
    /// start, the URL is wrong (not a URL, or not a worker endpoint), or the server's
    /// certificate is not trusted.
    pub fn is_retryable(&self) -> bool {
        !matches!(
            self,
            Self::Refused(_)
                | Self::Protocol(_)
                | Self::Sandbox(_)
                | Self::BadUrl(_)
                | Self::NotAnEndpoint { .. }
                | Self::Tls { .. }
                | Self::NeverConnected { .. }
        )
    }
}
