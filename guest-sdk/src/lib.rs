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
//! - [`Flow`] lets a task end its stage early (a search that found its goal), and
//!   [`Explore`] lets a task add inputs to its own stage (a search that branches).
//! - [`log!`] writes a line to the task's log, which comes back with its result or failure
//!   (std's `println!` output goes nowhere in a guest; `use dipla_guest::println;` sends it
//!   to the log too): see [`mod@log`].
//! - A task has no clock: `Instant::now()` panics, with a message saying why and what to use
//!   instead (the time as an input; fuel to measure cost).
//!
//! The guest ABI this crate implements is documented in `docs/ARCHITECTURE.md`, so guests can
//! be written in any language that compiles to wasm.

pub use dipla_guest_macros::{task, verifier};

/// The result of a task in an `explore` stage: its output, and new inputs for the same stage
/// (the original Dipla's explorer). The server runs each new input once (an input equal to one
/// seen before is dropped), until no task is running and none is pending, or the stage's
/// `max_tasks` is reached.
///
/// ```
/// use dipla_guest::{Explore, task};
///
/// /// Collatz: the output is the number; the next input is where it leads.
/// #[task]
/// pub fn step(n: u64) -> Explore<u64, u64> {
///     let next = if n <= 1 { vec![] } else if n % 2 == 0 { vec![n / 2] } else { vec![3 * n + 1] };
///     Explore { output: n, next }
/// }
/// assert_eq!(step(6).next, vec![3]);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Explore<O, T> {
    /// This task's output (its result line).
    pub output: O,
    /// New inputs for the same stage.
    pub next: Vec<T>,
}

/// A task's result that can also end its stage early, when the goal of the job is met
/// (a password found, enough solutions): return `Flow::Stop(output)` and the server keeps this
/// output, stops handing out the stage's tasks and cancels those still running.
///
/// ```
/// use dipla_guest::{Flow, task};
///
/// #[task]
/// pub fn check(candidate: u64) -> Flow<Option<u64>> {
///     if candidate * candidate == 1369 { Flow::Stop(Some(candidate)) } else { Flow::Continue(None) }
/// }
/// assert_eq!(check(37), Flow::Stop(Some(37)));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Flow<T> {
    /// An ordinary result.
    Continue(T),
    /// A result that meets the stage's goal: stop the stage.
    Stop(T),
}

#[doc(hidden)]
pub mod __private;
pub mod arena;
pub mod log;

/// Every allocation of a wasm guest: see [`arena`].
#[cfg(all(target_arch = "wasm32", feature = "arena"))]
#[global_allocator]
static GLOBAL: arena::Arena = arena::Arena::new();

/// The version of the guest ABI this SDK implements, recorded in every module it builds.
pub const ABI_VERSION: u32 = 1;
