//! Every setting that decides what a guest may do, in one place.
//!
//! The engine is configured so that the same module and input give bit-identical results on
//! every worker (fuel metering, NaN canonicalisation, no threads, no relaxed SIMD), and so
//! that a guest can reach nothing outside its own linear memory (no imports are ever
//! provided: see [`crate::abi`]). Per-task limits (fuel, memory, time) are in
//! [`crate::Limits`].

use std::time::Duration;

use wasmtime::{Config, OptLevel, Strategy};

/// The wasm stack a guest may use. 512 KiB gave about 10,900 frames of a small recursive
/// function on x86-64; a deeper recursion fails with a stack overflow.
pub const MAX_WASM_STACK: usize = 512 * 1024;

/// How often the epoch ticker advances: the resolution of the wall-clock backstop.
pub const EPOCH_TICK: Duration = Duration::from_millis(10);

/// The most table elements a guest may have (function pointer tables of Rust guests hold a
/// few hundred).
pub const MAX_TABLE_ELEMENTS: usize = 100_000;

/// The wasmtime configuration of every Dipla sandbox.
pub fn engine_config() -> Config {
    let mut config = Config::new();
    config
        .strategy(Strategy::Cranelift)
        .cranelift_opt_level(OptLevel::Speed)
        // Limits: fuel is the deterministic one; the epoch is a wall-clock backstop.
        .consume_fuel(true)
        .epoch_interruption(true)
        .max_wasm_stack(MAX_WASM_STACK)
        // Determinism: NaN bit patterns differ between CPUs unless canonicalised; threads and
        // relaxed SIMD are nondeterministic by design (threads are compiled out: no `threads`
        // feature).
        .cranelift_nan_canonicalization(true)
        .wasm_relaxed_simd(false)
        // What rustc's wasm32 output uses.
        .wasm_simd(true)
        .wasm_bulk_memory(true)
        .wasm_multi_value(true)
        // Nothing else: fewer features, less attack surface (GC, components, stack switching and
        // threads are not even compiled in: see the `wasmtime` features in Cargo.toml).
        .wasm_memory64(false)
        .wasm_multi_memory(false);
    config
}
