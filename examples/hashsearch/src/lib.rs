//! Proof-of-work search, the original Dipla's double SHA-256 example: find nonces such that
//! `sha256(sha256(data || nonce))` ends in two zero bytes. The nonce range is scattered over
//! tasks; a task that finds one stops with `Flow::Stop`, and the job stops the search after the
//! first few finds (`stop_after`), cancelling the tasks still running.
//!
//! Each find carries the hash, so a verifier can check it without searching again.

use dipla_guest::{Flow, task};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// What to search: the data, and the nonce range `[start, end)` the tasks split between them.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Search {
    /// The data hashed before the nonce.
    pub data: String,
    /// The first nonce.
    pub start: u64,
    /// One past the last nonce.
    pub end: u64,
}

/// A nonce that meets the target, with its hash in hex.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Find {
    /// The nonce.
    pub nonce: u64,
    /// `sha256(sha256(data || nonce as 8 little-endian bytes))`, in hex.
    pub hash: String,
}

/// The double SHA-256 of `data` followed by `nonce` (8 bytes, little-endian).
pub fn double_sha256(data: &[u8], nonce: u64) -> [u8; 32] {
    let first = Sha256::new()
        .chain_update(data)
        .chain_update(nonce.to_le_bytes())
        .finalize();
    Sha256::digest(first).into()
}

/// Whether a hash meets the target: its last two bytes are zero.
pub fn meets_target(hash: &[u8; 32]) -> bool {
    hash[30] == 0 && hash[31] == 0
}

/// The nonces of `search`'s slice `index` of `count` that meet the target; stops the stage
/// when there is one.
#[task]
pub fn slice(search: Search, index: u64, count: u64) -> Flow<Vec<Find>> {
    let (start, end) = bounds(&search, index, count);
    let finds: Vec<Find> = (start..end)
        .filter_map(|nonce| {
            let hash = double_sha256(search.data.as_bytes(), nonce);
            meets_target(&hash).then(|| Find {
                nonce,
                hash: hex(&hash),
            })
        })
        .collect();
    if finds.is_empty() {
        Flow::Continue(finds)
    } else {
        Flow::Stop(finds)
    }
}

/// The nonce range of slice `index` of `count`.
pub fn bounds(search: &Search, index: u64, count: u64) -> (u64, u64) {
    let span = search.end.saturating_sub(search.start);
    let at = |i: u64| search.start + (span as u128 * i as u128 / count.max(1) as u128) as u64;
    (at(index), at(index + 1))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slices_cover_the_range_without_overlap() {
        let search = Search {
            data: "x".into(),
            start: 10,
            end: 1000,
        };
        let mut next = 10;
        for i in 0..7 {
            let (start, end) = bounds(&search, i, 7);
            assert_eq!(start, next);
            next = end;
        }
        assert_eq!(next, 1000);
    }

    #[test]
    fn finds_meet_the_target() {
        let search = Search {
            data: "dipla".into(),
            start: 0,
            end: 300_000,
        };
        let Flow::Stop(finds) = slice(search, 0, 1) else {
            panic!("expected finds")
        };
        for find in finds {
            assert!(meets_target(&double_sha256(b"dipla", find.nonce)));
            assert!(find.hash.ends_with("0000"));
        }
    }
}
