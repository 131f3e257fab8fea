//! Optional raw JSON fields whose value may be `null`: a field that is present holds a value,
//! whatever it is, and only a field that is missing is `None`.
//!
//! serde reads `Option<T>` from `null` as `None`, which for a task's output conflates "the
//! task returned `null`" (`Option::None`, `()`, a NaN float) with "there is no output". Fields
//! that carry task outputs use [`deserialize`] instead:
//!
//! ```
//! use dipla_protocol::RawJson;
//! use serde::Deserialize;
//!
//! #[derive(Deserialize)]
//! struct Line {
//!     #[serde(default, deserialize_with = "dipla_protocol::present::deserialize")]
//!     output: Option<Box<RawJson>>,
//! }
//!
//! let null: Line = serde_json::from_str(r#"{"output":null}"#).unwrap();
//! assert_eq!(null.output.unwrap().get(), "null");
//! let absent: Line = serde_json::from_str("{}").unwrap();
//! assert!(absent.output.is_none());
//! ```
//!
//! Serialising needs nothing special: `Some` of a raw `null` is written as `null`.

use serde::{Deserialize, Deserializer};

use crate::RawJson;

/// Reads a present field as `Some` of its raw JSON, `null` included. Use with
/// `#[serde(default, deserialize_with = "dipla_protocol::present::deserialize")]` so that a
/// missing field is `None`.
///
/// # Errors
/// When the value is not JSON (only a `serde_json` deserializer can read raw JSON).
pub fn deserialize<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<Box<RawJson>>, D::Error> {
    Box::<RawJson>::deserialize(deserializer).map(Some)
}
