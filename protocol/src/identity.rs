//! Identities and receipts: what a worker signs, byte for byte, so that any implementation
//! signs and checks the same thing.
//!
//! A worker has a long-lived Ed25519 key pair; its public key ([`PublicKey`]) is its identity,
//! by which the server keeps its trust record across reconnects and restarts. Joining is a
//! challenge–response: the server sends a fresh random nonce and the worker signs
//! [`join_message`], so an identity cannot be claimed without its secret key, nor a proof
//! replayed on another connection. Each `results` message carries a receipt: the worker's
//! signature over [`receipt_message`], which binds the job, each task's attempt id, module,
//! input and outcome (its output or its failure, by sha256) and fuel, so a results file can
//! later be checked against what the workers really said. Failures are signed like outputs:
//! a failure is a result, and a worker is held to it.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::{Digest, Sha256};

use crate::{ModuleHash, RawJson, TaskFailure};

/// Prefix of the signed join message (domain separation: a join proof is never a receipt).
const JOIN: &[u8] = b"dipla-join-v2\0";
/// Prefix of a signed receipt.
const RECEIPT: &[u8] = b"dipla-receipt-v3\0";
/// Prefix of the bytes a failure's digest is taken over (domain separation: a failure never
/// hashes like an output).
const FAILURE: &[u8] = b"dipla-failure\0";

/// A worker's identity: its Ed25519 public key, 64 hex digits on the wire.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PublicKey(pub [u8; 32]);

/// An Ed25519 signature, 128 hex digits on the wire.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Signature(pub [u8; 64]);

impl PublicKey {
    /// Whether `signature` is this key's over `message` (strict verification: no malleable
    /// or small-order keys).
    pub fn verifies(&self, message: &[u8], signature: &Signature) -> bool {
        let Ok(key) = ed25519_dalek::VerifyingKey::from_bytes(&self.0) else {
            return false;
        };
        let signature = ed25519_dalek::Signature::from_bytes(&signature.0);
        key.verify_strict(message, &signature).is_ok()
    }
}

/// What a worker signs to prove it holds `key`'s secret, answering the server's `nonce`.
pub fn join_message(nonce: &[u8; 32], key: &PublicKey) -> Vec<u8> {
    [JOIN, nonce, &key.0].concat()
}

/// One task's line in a receipt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReceiptEntry {
    /// The attempt id the server gave the task.
    pub id: u64,
    /// The module that ran.
    pub module: ModuleHash,
    /// sha256 of the task's input JSON, as received.
    pub input: [u8; 32],
    /// The outcome's digest ([`ReceiptEntry::outcome_digest`]): sha256 of the output JSON as
    /// sent, or of the failure ([`ReceiptEntry::failure_digest`]).
    pub output: [u8; 32],
    /// Fuel the task burnt.
    pub fuel: u64,
}

/// The length of one entry in a receipt message.
pub const RECEIPT_ENTRY_BYTES: usize = 8 + 32 + 32 + 32 + 8;

impl ReceiptEntry {
    /// sha256 of some JSON text, as receipts hash inputs and outputs.
    pub fn digest(json: &str) -> [u8; 32] {
        Sha256::digest(json.as_bytes()).into()
    }

    /// sha256 of a failure, as receipts name it: over `"dipla-failure\0" ‖ kind ‖ "\0" ‖
    /// message`, the kind as on the wire (`panic`, `out_of_fuel`, …) and the message as UTF-8.
    pub fn failure_digest(failure: &TaskFailure) -> [u8; 32] {
        let kind = serde_json::to_value(failure.kind)
            .ok()
            .and_then(|kind| kind.as_str().map(str::to_owned))
            .unwrap_or_default();
        let mut hasher = Sha256::new();
        hasher.update(FAILURE);
        hasher.update(kind.as_bytes());
        hasher.update([0]);
        hasher.update(failure.message.as_bytes());
        hasher.finalize().into()
    }

    /// The digest of a task's outcome: its output's ([`ReceiptEntry::digest`]) or its
    /// failure's ([`ReceiptEntry::failure_digest`]).
    pub fn outcome_digest(outcome: Result<&RawJson, &TaskFailure>) -> [u8; 32] {
        match outcome {
            Ok(output) => Self::digest(output.get()),
            Err(failure) => Self::failure_digest(failure),
        }
    }

    /// Reads the entries of a receipt message made by [`receipt_message`] for `job`; `None`
    /// when it is not one.
    pub fn parse(job: &str, message: &[u8]) -> Option<Vec<Self>> {
        let rest = message
            .strip_prefix(RECEIPT)?
            .strip_prefix(&(job.len() as u64).to_le_bytes()[..])?
            .strip_prefix(job.as_bytes())?;
        if rest.len() % RECEIPT_ENTRY_BYTES != 0 {
            return None;
        }
        let entries = rest
            .chunks_exact(RECEIPT_ENTRY_BYTES)
            .map(|chunk| {
                let u64_at = |at: usize| u64::from_le_bytes(chunk[at..at + 8].try_into().unwrap());
                let bytes_at = |at: usize| -> [u8; 32] { chunk[at..at + 32].try_into().unwrap() };
                Self {
                    id: u64_at(0),
                    module: ModuleHash::from_bytes(bytes_at(8)),
                    input: bytes_at(40),
                    output: bytes_at(72),
                    fuel: u64_at(104),
                }
            })
            .collect();
        Some(entries)
    }
}

/// What a worker signs for a `results` message of job `job` (the fingerprint the server sent
/// in its welcome): a prefix, the job, then each result's entry (outputs and failures alike),
/// in the message's order, fixed-width little-endian.
pub fn receipt_message(job: &str, entries: &[ReceiptEntry]) -> Vec<u8> {
    let mut message =
        Vec::with_capacity(RECEIPT.len() + 8 + job.len() + entries.len() * RECEIPT_ENTRY_BYTES);
    message.extend_from_slice(RECEIPT);
    message.extend_from_slice(&(job.len() as u64).to_le_bytes());
    message.extend_from_slice(job.as_bytes());
    for entry in entries {
        message.extend_from_slice(&entry.id.to_le_bytes());
        message.extend_from_slice(entry.module.as_bytes());
        message.extend_from_slice(&entry.input);
        message.extend_from_slice(&entry.output);
        message.extend_from_slice(&entry.fuel.to_le_bytes());
    }
    message
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

fn unhex<const N: usize>(text: &str) -> Option<[u8; N]> {
    if text.len() != 2 * N || !text.is_ascii() {
        return None;
    }
    let mut out = [0u8; N];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&text[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(out)
}

macro_rules! hex_type {
    ($type:ident, $len:expr, $what:expr) => {
        impl fmt::Display for $type {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&hex(&self.0))
            }
        }

        impl fmt::Debug for $type {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($type), self)
            }
        }

        impl std::str::FromStr for $type {
            type Err = String;

            fn from_str(text: &str) -> Result<Self, Self::Err> {
                unhex::<$len>(text).map(Self).ok_or_else(|| {
                    let shown: String = text.chars().take(140).collect();
                    format!("{shown:?} is not {} ({} hex digits)", $what, 2 * $len)
                })
            }
        }

        impl Serialize for $type {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(&self.to_string())
            }
        }

        impl<'de> Deserialize<'de> for $type {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
                text.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}

hex_type!(PublicKey, 32, "an Ed25519 public key");
hex_type!(Signature, 64, "an Ed25519 signature");

/// A random 32-byte challenge, hex on the wire.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Nonce(pub [u8; 32]);

hex_type!(Nonce, 32, "a nonce");

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn receipts_parse_back_and_signatures_check() {
        let secret = ed25519_dalek::SigningKey::from_bytes(&[7; 32]);
        let key = PublicKey(secret.verifying_key().to_bytes());
        let entries = [ReceiptEntry {
            id: 42,
            module: ModuleHash::of(b"module"),
            input: ReceiptEntry::digest("[1,2]"),
            output: ReceiptEntry::digest("3"),
            fuel: 1234,
        }];
        let message = receipt_message("job-fingerprint", &entries);
        assert_eq!(
            ReceiptEntry::parse("job-fingerprint", &message).unwrap(),
            entries
        );
        assert!(ReceiptEntry::parse("another-job", &message).is_none());
        use ed25519_dalek::Signer;
        let signature = Signature(secret.sign(&message).to_bytes());
        assert!(key.verifies(&message, &signature));
        let mut forged = message.clone();
        *forged.last_mut().unwrap() ^= 1;
        assert!(!key.verifies(&forged, &signature));
        let text = serde_json::to_string(&key).unwrap();
        assert_eq!(serde_json::from_str::<PublicKey>(&text).unwrap(), key);
        assert!(serde_json::from_str::<PublicKey>("\"abc\"").is_err());
    }
}
