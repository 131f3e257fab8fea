//! Write Dipla task functions in plain Rust.
//!
//! ```
//! use dipla_guest::task;
//!
//! /// Prime factors of `n`, smallest first.
//! #[task]
//! pub fn factorise(mut n: u64) -> Vec<u64> {
//!     let mut factors = Vec::new();
//!     let mut d = 2;
//!     while d * d <= n {
//!         while n % d == 0 {
//!             factors.push(d);
//!             n /= d;
//!         }
//!         d += 1;
//!     }
//!     if n > 1 {
//!         factors.push(n);
//!     }
//!     factors
//! }
//!
//! // The function is still an ordinary function: test it natively.
//! assert_eq!(factorise(12), vec![2, 2, 3]);
//! ```
//!
//! Built for `wasm32-unknown-unknown` (as a `cdylib`), every `#[task]` becomes an export that
//! Dipla workers call, with arguments and results crossing the boundary as JSON:
//!
//! - Arguments are any types implementing serde's `Deserialize`. A task with one parameter
//!   takes the JSON of that value; a task with several takes a JSON array of them, in order.
//! - The result is any type implementing `Serialize`, or `Result<T, E>` with `T: Serialize`
//!   and `E: Display`: an `Err` becomes a task failure carrying `E`'s message, and so does a
//!   panic (its message and location).
//!
//! The guest ABI this crate implements is documented in `docs/ARCHITECTURE.md`, so guests can
//! be written in any language that compiles to wasm.

pub use dipla_guest_macros::task;

#[doc(hidden)]
pub mod __private;

/// The version of the guest ABI this SDK implements, recorded in every module it builds.
pub const ABI_VERSION: u32 = 1;
