//! TLS for the server's one socket (workers' `/ws`, the API): rustls with the ring
//! provider, a certificate chain and key from PEM files (`--tls-cert`, `--tls-key`).
//!
//! [`TlsListener`] accepts TCP connections (counted by the server's door) and runs each TLS
//! handshake in its own task (with a deadline), so a slow or hostile client cannot hold up the
//! others; [`crate::net::http::serve`] serves what comes out of it exactly as it serves plain TCP.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rustls::ServerConfig;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

use crate::net::door::{self, Counted, Door};
use crate::net::http::Listener;

/// How long a client has to complete its TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Handshakes finished but not yet taken by the server.
const BACKLOG: usize = 256;

/// The certificate chain and key a server presents.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    /// PEM certificate chain, the server's certificate first.
    pub cert: PathBuf,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
}

/// Why TLS cannot be set up.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file cannot be read or holds nothing usable.
    #[error("{path}: {message}")]
    File {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// rustls refused the pair.
    #[error("the certificate and key do not make a TLS configuration: {0}")]
    Config(#[from] rustls::Error),
}

impl TlsFiles {
    /// The rustls server configuration for these files.
    ///
    /// # Errors
    /// When a file cannot be read, holds no certificate or key, or they do not match.
    pub fn config(&self) -> Result<Arc<ServerConfig>, TlsError> {
        let file = |path: &Path, message: String| TlsError::File {
            path: path.to_owned(),
            message,
        };
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&self.cert)
            .map_err(|e| file(&self.cert, e.to_string()))?
            .collect::<Result<_, _>>()
            .map_err(|e| file(&self.cert, e.to_string()))?;
        if certs.is_empty() {
            return Err(file(&self.cert, "no PEM certificate in it".into()));
        }
        let key = PrivateKeyDer::from_pem_file(&self.key)
            .map_err(|e| file(&self.key, format!("no PEM private key in it ({e})")))?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_single_cert(certs, key)?;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Arc::new(config))
    }
}

/// A listener whose connections come out TLS-decrypted.
pub(crate) struct TlsListener {
    ready: mpsc::Receiver<(TlsStream<Counted<TcpStream>>, SocketAddr)>,
}

impl TlsListener {
    /// Accepts on `listener` what `door` admits, handshaking with `config`.
    pub(crate) fn new(listener: TcpListener, config: Arc<ServerConfig>, door: Arc<Door>) -> Self {
        let acceptor = TlsAcceptor::from(config);
        let (done, ready) = mpsc::channel(BACKLOG);
        tokio::spawn(async move {
            loop {
                let (stream, peer) = tokio::select! {
                    accepted = door::accept(&listener, &door) => accepted,
                    // The listener is gone: stop accepting (and free the port).
                    () = done.closed() => return,
                };
                let (acceptor, sender) = (acceptor.clone(), done.clone());
                tokio::spawn(async move {
                    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                        Ok(Ok(tls)) => {
                            let _ = sender.send((tls, peer)).await;
                        }
                        Ok(Err(error)) => tracing::debug!(%peer, %error, "TLS handshake failed"),
                        Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                    }
                });
            }
        });
        Self { ready }
    }
}

impl Listener for TlsListener {
    type Io = TlsStream<Counted<TcpStream>>;

    async fn accept(&mut self) -> (Self::Io, SocketAddr) {
        match self.ready.recv().await {
            Some(accepted) => accepted,
            // The accept loop only ends once this listener is gone.
            None => std::future::pending().await,
        }
    }
}
