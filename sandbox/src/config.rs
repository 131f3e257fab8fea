//! Every setting that decides what a guest may do, in one place.
//!
//! The engine is configured so that the same module and input give bit-identical results on
//! every worker (fuel metering, NaN canonicalisation, no threads, no relaxed SIMD), and so
//! that a guest can reach nothing outside its own linear memory (no imports are ever
//! provided: see [`crate::abi`]). Per-task limits (fuel, memory, time) are in
//! [`crate::Limits`].

use std::time::Duration;

use wasmtime::{
    Config, Enabled, InstanceAllocationStrategy, OptLevel, PoolingAllocationConfig, Strategy,
};

/// The wasm stack a guest may use. 512 KiB gave about 10,900 frames of a small recursive
/// function on x86-64; a deeper recursion fails with a stack overflow.
pub const MAX_WASM_STACK: usize = 512 * 1024;

/// How often the epoch ticker advances: the resolution of the wall-clock backstop.
pub const EPOCH_TICK: Duration = Duration::from_millis(10);

/// The most table elements a guest may have (function pointer tables of Rust guests hold a
/// few hundred).
pub const MAX_TABLE_ELEMENTS: usize = 100_000;

/// The most core module instances one component may hold: a componentize-py component has
/// 14 (CPython's shared libraries, dynamically linked, and shims).
pub const COMPONENT_CORE_INSTANCES: u32 = 64;
/// The most memories one component may hold (componentize-py's share one).
pub const COMPONENT_MEMORIES: u32 = 4;
/// The most tables one component may hold (componentize-py's have two).
pub const COMPONENT_TABLES: u32 = 8;

/// How many guest instances one process may have alive at once (one per running task, plus
/// verifiers). Each reserves address space for a 4 GiB memory, not physical memory.
pub const MAX_LIVE_INSTANCES: u32 = 256;

/// How much of each instance's memory stays mapped between tasks, its dirtied pages set back
/// with memset instead of being returned to the kernel. Linux's `PAGEMAP_SCAN` (6.7 and later)
/// tells which pages a task dirtied, so only those are reset: a tiny task touches the top of
/// rustc's 1 MiB stack, the guest SDK's arena and a few data pages. Measured end to end on tiny
/// tasks: 16k tasks/s with every page returned to the kernel (`madvise`), 27k with 2 MiB kept
/// resident and scanned; on kernels without the ioctl wasmtime memsets the whole 2 MiB.
pub const KEEP_RESIDENT_BYTES: usize = 2 << 20;

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
        // Components, for Python guests: componentize-py's output (14 core modules sharing
        // one memory) needs no other feature.
        .wasm_component_model(true)
        // Nothing else: fewer features, less attack surface (GC, stack switching and threads
        // are not even compiled in: see the `wasmtime` features in Cargo.toml).
        .wasm_memory64(false)
        .wasm_multi_memory(false);
    config.allocation_strategy(InstanceAllocationStrategy::Pooling(pooling()));
    config
}

/// A pool of pre-reserved instance slots: instantiating a module takes a slot instead of
/// mapping fresh memory. The per-task memory limit is enforced by the store's limiter, so
/// each slot allows the whole 4 GiB a wasm32 memory can address.
fn pooling() -> PoolingAllocationConfig {
    let mut pool = PoolingAllocationConfig::new();
    // A component takes 14 core instances, one memory and two tables of the pool.
    pool.total_core_instances(MAX_LIVE_INSTANCES * 16)
        .total_component_instances(MAX_LIVE_INSTANCES)
        .total_memories(MAX_LIVE_INSTANCES)
        .total_tables(MAX_LIVE_INSTANCES * 2)
        .max_core_instances_per_component(COMPONENT_CORE_INSTANCES)
        .max_memories_per_component(COMPONENT_MEMORIES)
        .max_tables_per_component(COMPONENT_TABLES)
        .max_memories_per_module(1)
        .max_tables_per_module(1)
        .table_elements(MAX_TABLE_ELEMENTS)
        .max_memory_size(4 << 30)
        .linear_memory_keep_resident(KEEP_RESIDENT_BYTES)
        .table_keep_resident(64 << 10)
        .pagemap_scan(Enabled::Auto);
    pool
}
