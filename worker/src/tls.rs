//! TLS for `wss://` servers: rustls with the ring provider, trusting the system's roots by
//! default or only what `--ca-cert` gives (a private CA, or the server's own self-signed
//! certificate, which is trusted when presented exactly, whatever its CA flag), and
//! optionally pinning each server's certificate on first use (`--pin`): a server whose
//! certificate later changes is refused, loudly, until its pin is removed.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};
use sha2::{Digest, Sha256};

/// Why TLS cannot be set up.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// The CA file cannot be read or holds no certificate.
    #[error("{path}: {message}")]
    CaFile {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// The system has no root certificates to trust.
    #[error("no system root certificates found ({0}); give --ca-cert FILE")]
    NoRoots(String),
    /// rustls refused the configuration.
    #[error("cannot configure TLS: {0}")]
    Config(String),
}

/// The client configuration: roots from `ca_cert` (or the system's), and certificates
/// pinned in `pins` if given.
///
/// # Errors
/// When the CA file cannot be used, the system has no roots, or rustls refuses them.
pub fn client_config(
    ca_cert: Option<&Path>,
    pins: Option<PathBuf>,
) -> Result<Arc<ClientConfig>, TlsError> {
    let mut roots = RootCertStore::empty();
    let mut given = Vec::new();
    match ca_cert {
        Some(path) => {
            let fail = |message: String| TlsError::CaFile {
                path: path.to_owned(),
                message,
            };
            let certs = CertificateDer::pem_file_iter(path)
                .map_err(|e| fail(e.to_string()))?
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| fail(e.to_string()))?;
            if certs.is_empty() {
                return Err(fail("no PEM certificate in it".into()));
            }
            for cert in &certs {
                roots.add(cert.clone()).map_err(|e| fail(e.to_string()))?;
            }
            given = certs;
        }
        None => {
            let found = rustls_native_certs::load_native_certs();
            let (added, _) = roots.add_parsable_certificates(found.certs);
            if added == 0 {
                let why = found
                    .errors
                    .first()
                    .map_or("none installed".to_owned(), ToString::to_string);
                return Err(TlsError::NoRoots(why));
            }
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Config(e.to_string()))?;
    let webpki = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider)
        .build()
        .map_err(|e| TlsError::Config(e.to_string()))?;
    let mut verifier: Arc<dyn ServerCertVerifier> = if given.is_empty() {
        webpki
    } else {
        Arc::new(Exact {
            certs: given,
            inner: webpki,
        })
    };
    if let Some(pins) = pins {
        verifier = Arc::new(Pinned {
            inner: verifier,
            pins,
        });
    }
    let config = builder
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// `$XDG_CONFIG_HOME/dipla/pins`, or `~/.config/dipla/pins`.
pub fn default_pins_path() -> Option<PathBuf> {
    crate::identity::default_identity_path().map(|path| path.with_file_name("pins"))
}

/// Trusts a server presenting exactly one of the certificates given with `--ca-cert`, as a
/// pin, whatever its CA flag, names and dates (the volunteer chose that very certificate: the
/// usual self-signed one, `openssl req -x509 ...`, is a CA certificate, which the usual
/// checks refuse as a server's own); verifies any other as usual, against those as roots.
#[derive(Debug)]
struct Exact {
    certs: Vec<CertificateDer<'static>>,
    inner: Arc<WebPkiServerVerifier>,
}

impl ServerCertVerifier for Exact {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if self
            .certs
            .iter()
            .any(|cert| cert.as_ref() == end_entity.as_ref())
        {
            // The handshake's signatures are still checked against this certificate's key
            // (below), so only its holder can present it.
            return Ok(ServerCertVerified::assertion());
        }
        self.inner
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// A pinned server presented another certificate.
#[derive(Debug, thiserror::Error)]
#[error(
    "the server's certificate for {name} has CHANGED since it was pinned (sha256 {pinned}, \
     now {presented}): someone may be posing as the server; if its operator really replaced \
     the certificate, delete the line for {name} from {pins}"
)]
pub struct PinChanged {
    /// The server name.
    pub name: String,
    /// The SHA-256 of the pinned certificate, in hex.
    pub pinned: String,
    /// The SHA-256 of the certificate presented, in hex.
    pub presented: String,
    /// The pins file.
    pub pins: String,
}

/// Verifies as usual, then checks the certificate against the one pinned for its server
/// name (pinning it if it is the first).
#[derive(Debug)]
struct Pinned {
    inner: Arc<dyn ServerCertVerifier>,
    /// The pins file: one `NAME SHA256` line per server.
    pins: PathBuf,
}

impl Pinned {
    fn read(&self) -> BTreeMap<String, String> {
        std::fs::read_to_string(&self.pins)
            .unwrap_or_default()
            .lines()
            .filter_map(|line| {
                let (name, sha) = line.trim().split_once(' ')?;
                Some((name.to_owned(), sha.to_owned()))
            })
            .collect()
    }
}

impl ServerCertVerifier for Pinned {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let verified = self.inner.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        )?;
        let name = server_name.to_str().into_owned();
        let fingerprint: String = Sha256::digest(end_entity.as_ref())
            .iter()
            .map(|byte| format!("{byte:02x}"))
            .collect();
        let mut pins = self.read();
        match pins.get(&name) {
            Some(pinned) if *pinned == fingerprint => Ok(verified),
            Some(pinned) => {
                tracing::error!(
                    server = %name,
                    pinned = %pinned,
                    presented = %fingerprint,
                    pins = %self.pins.display(),
                    "THE SERVER'S CERTIFICATE HAS CHANGED since it was pinned: refusing it. \
                     If the operator really replaced it, delete its line from the pins file."
                );
                let changed = PinChanged {
                    name,
                    pinned: pinned.clone(),
                    presented: fingerprint,
                    pins: self.pins.display().to_string(),
                };
                Err(rustls::Error::InvalidCertificate(
                    rustls::CertificateError::Other(rustls::OtherError(Arc::new(changed))),
                ))
            }
            None => {
                tracing::warn!(server = %name, sha256 = %fingerprint, "pinned the server's certificate on first use");
                pins.insert(name, fingerprint);
                let text: String = pins
                    .iter()
                    .map(|(name, sha)| format!("{name} {sha}\n"))
                    .collect();
                if let Some(dir) = self.pins.parent() {
                    let _ = std::fs::create_dir_all(dir);
                }
                std::fs::write(&self.pins, text).map_err(|e| {
                    rustls::Error::General(format!(
                        "cannot record the pin in {}: {e}",
                        self.pins.display()
                    ))
                })?;
                Ok(verified)
            }
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}
