//! The worker's identity: a long-lived Ed25519 key pair whose public key the server keys its
//! trust record by (credibility, untrusted marks, measured speed), across reconnects and
//! server restarts. It is made on first run and kept in the volunteer's config directory
//! (`~/.config/dipla/identity`), readable by its owner only; `--identity FILE` chooses
//! another. It signs the server's join challenge and every results message's receipt
//! ([`dipla_protocol::identity`]).

use std::io::Write;
use std::path::{Path, PathBuf};

use dipla_protocol::{PublicKey, Signature};
use ed25519_dalek::{Signer, SigningKey};

/// The first line of an identity file.
const HEADER: &str = "dipla identity v1 (an Ed25519 secret key: keep it private)";

/// A worker's key pair.
pub struct Identity {
    key: SigningKey,
}

/// Why an identity file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    /// It cannot be read or written.
    #[error("cannot use the identity file {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// It is not an identity file.
    #[error("{path} is not a Dipla identity file (expected {HEADER:?} then 64 hex digits)")]
    Malformed {
        /// The file.
        path: PathBuf,
    },
    /// Others may read it: the secret may be known.
    #[error(
        "the identity file {path} may be read by other users (mode {mode:o}); \
         make it private with `chmod 600 {path}`"
    )]
    Exposed {
        /// The file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
}

impl Identity {
    /// A new random identity (kept in memory only).
    pub fn generate() -> Self {
        Self {
            key: SigningKey::generate(&mut rand_core::OsRng),
        }
    }

    /// The identity kept in `path`, made there (owner-only) if the file does not exist.
    ///
    /// # Errors
    /// When the file cannot be read or made, is not an identity file, or others may read it.
    pub fn load_or_create(path: &Path) -> Result<Self, IdentityError> {
        let io = |source| IdentityError::Io {
            path: path.to_owned(),
            source,
        };
        match std::fs::read_to_string(path) {
            Ok(text) => {
                check_private(path)?;
                let malformed = || IdentityError::Malformed {
                    path: path.to_owned(),
                };
                let mut lines = text.lines();
                if lines.next() != Some(HEADER) {
                    return Err(malformed());
                }
                let secret = lines.next().and_then(unhex).ok_or_else(malformed)?;
                Ok(Self {
                    key: SigningKey::from_bytes(&secret),
                })
            }
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                if let Some(dir) = path.parent().filter(|dir| !dir.as_os_str().is_empty()) {
                    std::fs::create_dir_all(dir).map_err(io)?;
                }
                let identity = Self::generate();
                let mut options = std::fs::OpenOptions::new();
                options.write(true).create_new(true);
                #[cfg(unix)]
                std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
                let mut file = options.open(path).map_err(io)?;
                let secret: String = identity
                    .key
                    .to_bytes()
                    .iter()
                    .map(|byte| format!("{byte:02x}"))
                    .collect();
                writeln!(file, "{HEADER}\n{secret}").map_err(io)?;
                file.sync_all().map_err(io)?;
                tracing::info!(
                    path = %path.display(),
                    identity = %identity.public(),
                    "made a new identity"
                );
                Ok(identity)
            }
            Err(error) => Err(io(error)),
        }
    }

    /// The public key: who this worker is.
    pub fn public(&self) -> PublicKey {
        PublicKey(self.key.verifying_key().to_bytes())
    }

    /// Signs `message`.
    pub fn sign(&self, message: &[u8]) -> Signature {
        Signature(self.key.sign(message).to_bytes())
    }
}

impl std::fmt::Debug for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Identity({})", self.public())
    }
}

/// `$XDG_CONFIG_HOME/dipla/identity`, or `~/.config/dipla/identity`.
pub fn default_identity_path() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_CONFIG_HOME")
        .filter(|dir| !dir.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".config")))?;
    Some(base.join("dipla").join("identity"))
}

#[cfg(unix)]
fn check_private(path: &Path) -> Result<(), IdentityError> {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(path)
        .map_err(|source| IdentityError::Io {
            path: path.to_owned(),
            source,
        })?
        .permissions()
        .mode();
    if mode & 0o077 != 0 {
        return Err(IdentityError::Exposed {
            path: path.to_owned(),
            mode: mode & 0o777,
        });
    }
    Ok(())
}

#[cfg(not(unix))]
fn check_private(_: &Path) -> Result<(), IdentityError> {
    Ok(())
}

fn unhex(text: &str) -> Option<[u8; 32]> {
    let text = text.trim();
    if text.len() != 64 || !text.is_ascii() {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&text[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_identity_is_made_private_once_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub").join("identity");
        let made = Identity::load_or_create(&path).unwrap();
        let again = Identity::load_or_create(&path).unwrap();
        assert_eq!(made.public(), again.public());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
            let error = Identity::load_or_create(&path).unwrap_err().to_string();
            assert!(error.contains("chmod 600"), "{error}");
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        }
        std::fs::write(&path, "not a key\n").unwrap();
        let error = Identity::load_or_create(&path).unwrap_err().to_string();
        assert!(error.contains("not a Dipla identity file"), "{error}");
        let message = b"hello";
        assert!(made.public().verifies(message, &made.sign(message)));
        assert!(
            !Identity::generate()
                .public()
                .verifies(message, &made.sign(message))
        );
    }
}
