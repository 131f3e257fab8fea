//! Worker tokens: a server can admit only workers that present one it knows.
//!
//! Tokens are kept as sha256 digests and compared in constant time (every byte of every
//! known digest is compared, whatever matches), so neither the comparison's timing nor the
//! server's memory gives a token away. They are never logged.

use sha2::{Digest, Sha256};

/// The tokens a server accepts; empty: every worker is admitted.
#[derive(Debug, Default, Clone)]
pub struct Tokens {
    digests: Vec<[u8; 32]>,
}

impl Tokens {
    /// Accepts these tokens (empty strings are ignored).
    pub fn new<S: AsRef<str>>(tokens: impl IntoIterator<Item = S>) -> Self {
        let digests = tokens
            .into_iter()
            .filter(|token| !token.as_ref().is_empty())
            .map(|token| Sha256::digest(token.as_ref().as_bytes()).into())
            .collect();
        Self { digests }
    }

    /// Reads tokens from a file, one per line (blank lines and `#` comments skipped).
    ///
    /// # Errors
    /// When the file cannot be read.
    pub fn read_file(path: &std::path::Path) -> std::io::Result<Vec<String>> {
        let text = std::fs::read_to_string(path)?;
        Ok(text
            .lines()
            .map(str::trim)
            .filter(|line| !line.is_empty() && !line.starts_with('#'))
            .map(str::to_owned)
            .collect())
    }

    /// Whether any token is required.
    pub fn required(&self) -> bool {
        !self.digests.is_empty()
    }

    /// Whether `token` admits a worker: always when no token is required.
    pub fn admits(&self, token: Option<&str>) -> bool {
        if !self.required() {
            return true;
        }
        let Some(token) = token else {
            return false;
        };
        let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        let mut found = 0u8;
        for known in &self.digests {
            let difference = known
                .iter()
                .zip(&digest)
                .fold(0u8, |acc, (a, b)| acc | (a ^ b));
            found |= u8::from(difference == 0);
        }
        found == 1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_known_tokens_are_admitted_once_any_is_required() {
        assert!(Tokens::default().admits(None));
        let tokens = Tokens::new(["alpha", "beta", ""]);
        assert!(tokens.admits(Some("alpha")));
        assert!(tokens.admits(Some("beta")));
        assert!(!tokens.admits(Some("alph")));
        assert!(!tokens.admits(Some("")));
        assert!(!tokens.admits(None));
    }

    #[test]
    fn a_token_file_skips_blanks_and_comments() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tokens");
        std::fs::write(&path, "# workers\nalpha\n\n  beta  \n").unwrap();
        let tokens = Tokens::read_file(&path).unwrap();
        assert_eq!(tokens, ["alpha", "beta"]);
    }
}
