//! The sandbox that runs untrusted Dipla guest modules.
//!
//! Workers run every task here, and the server uses the same code to admit modules (and later
//! to run users' verifier functions), so a guest sees exactly the same machine everywhere.
//!
//! - [`abi`]: the guest ABI: what a module must export, and [`abi::inspect`], which reads it
//!   without compiling anything.
//! - [`Sandbox`]: one wasmtime engine configured for determinism and confinement (the whole
//!   configuration is in [`config`]), with the wall-clock ticker behind its timeouts.
//! - [`Guest`]: a compiled module; [`Guest::run`] runs one task in a fresh store under
//!   [`Limits`] and reports a [`Run`].
//! - [`LazyGuest`]: a module checked like a [`Guest`] but compiled only when first needed
//!   ([`Sandbox::admit`]), as a server holds the modules it ships.
//! - Python guests are WebAssembly components (`component`), run with a closed,
//!   deterministic WASI context.
//! - [`bench`]: the workers' self-benchmark, fuel-metered WAT kernels run in this same
//!   configuration, and the check a server makes of one.

pub mod abi;
pub mod bench;
mod component;
pub mod config;
mod exports;
mod guest;
mod lazy;
mod limits;
mod sandbox;

pub use guest::{Guest, Pace, Run};
pub use lazy::LazyGuest;
pub use limits::Limits;
pub use sandbox::{Sandbox, SandboxError};
