//! Makes a Dipla guest module compute, in any WebAssembly engine, what it computes in the
//! sandbox: the same output bits, the same fuel, the same stops at the fuel and memory limits.
//!
//! A browser's engine neither meters fuel nor canonicalises NaNs, and replication compares
//! outputs and fuel bit for bit, so a browser volunteer runs [`instrument`]ed modules. The
//! pass mirrors what wasmtime 48 compiles for the sandbox (`dipla_sandbox::config`):
//!
//! - `fuel`: fuel counted by the module itself, with the increments, saves, reloads and
//!   checks Cranelift emits, at the same places and of the same amounts (bulk operators
//!   included: `ssa` tells, as Cranelift's frontend does, which counts are constants).
//! - `nan`: NaN results canonicalised after the operators Cranelift canonicalises.
//! - `memory`: `memory.grow` and `table.grow` checked against the task's limits first, as the
//!   sandbox's limiter does; accesses wasmtime knows will trap save the fuel first.
//! - `startup`: modules whose instantiation would cost fuel in wasmtime are refused.
//! - `module`: the module read, validated and written back with the ABI below added.
//!
//! # The ABI of an instrumented module
//!
//! Nothing is imported; every original export is kept, and the module gains four exported
//! mutable globals (the names are the constants of this crate):
//!
//! - [`FUEL`] `dipla_fuel: i64`, wasmtime's representation of the fuel: the host sets it to
//!   `-min(fuel, i64::MAX)` before the first call of a task (wasmtime injects at most
//!   `i64::MAX` and keeps the rest, `reserve = fuel - min(fuel, i64::MAX)`, aside), the module
//!   adds what it burns, and a check that finds it `>= 0` stops the task
//!   ([`TrapReason::OutOfFuel`]). After the task, returned or trapped, the fuel remaining is
//!   wasmtime's `get_fuel`, `reserve.saturating_add_signed(-dipla_fuel)` (so `max(0,
//!   -dipla_fuel)` for any fuel up to `i64::MAX`), and the sandbox's `Run::fuel` is `fuel -
//!   remaining`. Its initial value is 0: a host that forgets to set it gets a task that stops
//!   at once. (A JavaScript host reads and writes these i64 globals as `BigInt`s.)
//! - [`TRAP_REASON`] `dipla_trap_reason: i32`: set just before the `unreachable` that stops a
//!   task on a limit (1 to 3), or just before a trap of the engine's that engines word alike
//!   (4 and 5, see below); 0 otherwise ([`TrapReason`]).
//! - [`MEMORY_MAX_BYTES`] `dipla_memory_max_bytes: i64`: the task's memory limit in bytes
//!   (`Limits::memory_bytes`), which the host sets before the task; `i64::MAX` (the initial
//!   value) leaves only the engine's own limits.
//! - [`TRAP_DETAIL`] `dipla_trap_detail: i64`: for a limit trap, the size asked for (bytes of
//!   memory or elements of a table), for the sandbox's message ("linear memory would grow to
//!   {detail} bytes; the limit is {limit}", "a table would grow to {detail} bytes; the limit
//!   is 100000").
//!
//! # What the host does for a task (as `dipla_sandbox::Guest::run` does)
//!
//! 1. Instantiate the module afresh. If its memory is already larger than the limit
//!    (`memory.buffer.byteLength > memory_bytes`), the task fails with a memory-limit failure
//!    and fuel 0, as the sandbox's instantiation does (the instance never runs).
//! 2. Set `dipla_fuel = -min(fuel, i64::MAX)` and `dipla_memory_max_bytes = memory_bytes`.
//! 3. Call `cabi_realloc(0, 0, 1, len)`, write the input, call the task: both share the fuel.
//! 4. On a trap, [`TRAP_REASON`] says whether it was a limit (1 to 3); otherwise the engine's
//!    trap is classified as the sandbox does: an `unreachable` with a panic message from
//!    `dipla_panic_message` is a panic, a stack overflow is one, anything else is a trap whose
//!    message is wasmtime's (below).
//! 5. Reading `dipla_panic_message` or `dipla_log` must not count against the task: save
//!    `dipla_fuel`, set it to `-1_000_000`, call, and restore it (read [`TRAP_REASON`] first:
//!    these calls are instrumented too, and may run out of their own fuel).
//! 6. Report `fuel - remaining`, remaining as above.
//!
//! # Traps, in wasmtime's words
//!
//! The sandbox reports a trap with wasmtime's description. An engine's own wording maps to it
//! one to one but for two messages, which the module disambiguates with the hints 4 and 5 of
//! [`TRAP_REASON`]. For V8 (`WebAssembly.RuntimeError` messages):
//!
//! | V8 | wasmtime |
//! |---|---|
//! | `divide by zero`, `remainder by zero` | `integer divide by zero` |
//! | `divide result unrepresentable` | `integer overflow` |
//! | `float unrepresentable in integer range` | `invalid conversion to integer` with reason 5, else `integer overflow` |
//! | `memory access out of bounds` | `out of bounds memory access` |
//! | `table index is out of bounds` | `undefined element: out of bounds table access` |
//! | `null function or function signature mismatch` | `uninitialized element` with reason 4, else `indirect call type mismatch` |
//! | `unreachable` | ``wasm `unreachable` instruction executed`` (without a panic message) |
//! | `RangeError: Maximum call stack size exceeded` | a stack overflow |
//!
//! (`tests/it/host.mjs` is this protocol in JavaScript, checked against the sandbox in V8.)
//!
//! # What cannot be matched
//!
//! Where a deep recursion overflows the stack depends on each engine's stack (the sandbox's is
//! 512 KiB; an instrumented function's frame also holds `f`, a few bytes more); a browser's `memory.grow` may fail (return -1) for want of memory where wasmtime,
//! whose memory is reserved up front, succeeds; the wall-clock limit is the host's. The fuel
//! of a task that overflows its stack or its time differs, as it does between two native
//! workers; every other outcome and its fuel is the sandbox's. With more than `i64::MAX` fuel
//! wasmtime refuels from its reserve where an instrumented module stops (2^63 fuel is
//! centuries of work). Modules with more than one table, or a table larger than the sandbox
//! allows, fail at instantiation in the sandbox and are refused.
//!
//! The pass mirrors wasmtime as it runs on the sandbox's machines (x86-64 or aarch64 Linux):
//! where wasmtime itself depends on the host, it follows the usual case. On an x86-64 without
//! SSE4.1, Cranelift calls out for `ceil`, `floor`, `trunc` and `nearest` and does not
//! canonicalise their NaNs; where it cannot map a module's data copy-on-write (no `memfd`), it
//! initialises memory under the task's fuel. Both would make such a machine disagree with the
//! other native workers too.

mod fuel;
mod memory;
mod module;
mod nan;
mod ssa;
mod startup;

pub use memory::MAX_TABLE_ELEMENTS;
pub use nan::{F32_NAN, F64_NAN};

/// The exported global holding the fuel, as wasmtime stores it (minus what is left).
pub const FUEL: &str = "dipla_fuel";
/// The exported global saying why the task stopped ([`TrapReason`]).
pub const TRAP_REASON: &str = "dipla_trap_reason";
/// The exported global the host sets to the task's memory limit in bytes.
pub const MEMORY_MAX_BYTES: &str = "dipla_memory_max_bytes";
/// The exported global holding the size a limit trap asked for.
pub const TRAP_DETAIL: &str = "dipla_trap_detail";

/// Why an instrumented module stopped a task, the value of [`TRAP_REASON`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(i32)]
pub enum TrapReason {
    /// Not stopped by the instrumentation: an ordinary trap, or no trap.
    None = 0,
    /// A fuel check found the fuel spent.
    OutOfFuel = 1,
    /// A `memory.grow` would have passed the task's memory limit.
    MemoryLimit = 2,
    /// A `table.grow` would have passed [`MAX_TABLE_ELEMENTS`].
    TableLimit = 3,
    /// Not a stop of the instrumentation: a `call_indirect` is about to trap on a null
    /// element ("uninitialized element"; without it, a trap the engine reports like a
    /// signature mismatch is wasmtime's "indirect call type mismatch").
    NullElement = 4,
    /// Not a stop of the instrumentation: a trapping float-to-integer conversion is about to
    /// trap on a NaN ("invalid conversion to integer"; without it, a conversion trap is
    /// wasmtime's "integer overflow").
    NanToInteger = 5,
}

impl TrapReason {
    /// The reason [`TRAP_REASON`] holds, if it is one.
    pub fn from_i32(value: i32) -> Option<Self> {
        Some(match value {
            0 => Self::None,
            1 => Self::OutOfFuel,
            2 => Self::MemoryLimit,
            3 => Self::TableLimit,
            4 => Self::NullElement,
            5 => Self::NanToInteger,
            _ => return None,
        })
    }
}

/// Why a module cannot be instrumented.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InstrumentError {
    /// Not a valid module with the proposals the sandbox and the pass support (an
    /// unsupported proposal shows here, as a validation error naming it).
    #[error("the module is not valid wasm for the sandbox: {0}")]
    Invalid(String),
    /// Guests may import nothing.
    #[error("the module imports something; guests may import nothing")]
    Imports,
    /// wasmtime would run code to instantiate it, at a cost in fuel the pass cannot mirror.
    #[error("the module needs code at instantiation ({0}), which the pass cannot mirror")]
    Startup(String),
    /// The module already exports a name of the ABI.
    #[error("the module already exports `{0}`")]
    NameTaken(&'static str),
    /// Something the pass cannot instrument exactly.
    #[error("cannot instrument {0}")]
    Unsupported(String),
}

impl From<wasmparser::BinaryReaderError> for InstrumentError {
    fn from(error: wasmparser::BinaryReaderError) -> Self {
        InstrumentError::Invalid(error.to_string())
    }
}

/// Instruments the guest module `module` (see the crate documentation for what the result
/// computes and the ABI it exports).
///
/// # Errors
/// When `module` is not valid wasm for the sandbox, imports anything, needs code at
/// instantiation, or already exports a name of the ABI.
pub fn instrument(module: &[u8]) -> Result<Vec<u8>, InstrumentError> {
    module::write(module::Module::read(module)?)
}
