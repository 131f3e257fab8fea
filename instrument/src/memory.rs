//! The memory and table limits of the sandbox, and the accesses wasmtime knows will trap.
//!
//! The sandbox's limiter (`dipla-sandbox`'s `limits.rs`) is called by wasmtime's
//! `Memory::grow` for every `memory.grow` of a non-zero number of pages, before the module's
//! own maximum is looked at: growing past the task's limit traps, even past the module's
//! maximum; growing past the module's maximum only within the limit returns -1. Its
//! `table_growing` does the same for `table.grow` with [`MAX_TABLE_ELEMENTS`]. The helper
//! functions here make those checks in the instrumented module just before the operator, with
//! the sandbox's arithmetic (the new size in bytes or elements, compared unsigned).

use wasm_encoder::{BlockType, Function, ValType};
use wasmparser::{MemArg, MemoryType, Operator};

/// The most elements a table may grow to in the sandbox (`dipla_sandbox::config::
/// MAX_TABLE_ELEMENTS`).
pub const MAX_TABLE_ELEMENTS: u64 = 100_000;

/// Bytes in a wasm page.
const PAGE: i64 = 1 << 16;

/// The globals a guard writes.
#[derive(Debug, Clone, Copy)]
pub(crate) struct GuardGlobals {
    pub(crate) reason: u32,
    pub(crate) detail: u32,
    pub(crate) memory_max: u32,
}

/// `(func (param $delta i32) (result i32))`: traps with reason 2 when growing memory 0 by
/// `$delta` pages would pass `dipla_memory_max_bytes`, else returns `$delta`.
pub(crate) fn memory_guard(globals: GuardGlobals) -> Function {
    let mut func = Function::new([(1, ValType::I64)]);
    let mut sink = func.instructions();
    sink.local_get(0)
        .if_(BlockType::Empty)
        // desired = (memory.size + delta) * 65536, as wasmtime computes it in bytes.
        .memory_size(0)
        .i64_extend_i32_u()
        .local_get(0)
        .i64_extend_i32_u()
        .i64_add()
        .i64_const(PAGE)
        .i64_mul()
        .local_tee(1)
        .global_get(globals.memory_max)
        .i64_gt_u()
        .if_(BlockType::Empty)
        .local_get(1)
        .global_set(globals.detail)
        .i32_const(crate::TrapReason::MemoryLimit as i32)
        .global_set(globals.reason)
        .unreachable()
        .end()
        .end()
        .local_get(0)
        .end();
    func
}

/// `(func (param $delta i32) (result i32))`: traps with reason 3 when growing `table` by
/// `$delta` elements would pass [`MAX_TABLE_ELEMENTS`], else returns `$delta`.
pub(crate) fn table_guard(globals: GuardGlobals, table: u32) -> Function {
    let mut func = Function::new([(1, ValType::I64)]);
    let mut sink = func.instructions();
    sink.local_get(0)
        .if_(BlockType::Empty)
        .table_size(table)
        .i64_extend_i32_u()
        .local_get(0)
        .i64_extend_i32_u()
        .i64_add()
        .local_tee(1)
        .i64_const(MAX_TABLE_ELEMENTS as i64)
        .i64_gt_u()
        .if_(BlockType::Empty)
        .local_get(1)
        .global_set(globals.detail)
        .i32_const(crate::TrapReason::TableLimit as i32)
        .global_set(globals.reason)
        .unreachable()
        .end()
        .end()
        .local_get(0)
        .end();
    func
}

/// The memory argument and access size of a load or store.
pub(crate) fn access(op: &Operator) -> Option<(MemArg, u8)> {
    use Operator::*;
    let (memarg, size) = match *op {
        I32Load8S { memarg }
        | I32Load8U { memarg }
        | I64Load8S { memarg }
        | I64Load8U { memarg }
        | I32Store8 { memarg }
        | I64Store8 { memarg }
        | V128Load8Splat { memarg }
        | V128Load8Lane { memarg, .. }
        | V128Store8Lane { memarg, .. } => (memarg, 1),
        I32Load16S { memarg }
        | I32Load16U { memarg }
        | I64Load16S { memarg }
        | I64Load16U { memarg }
        | I32Store16 { memarg }
        | I64Store16 { memarg }
        | V128Load16Splat { memarg }
        | V128Load16Lane { memarg, .. }
        | V128Store16Lane { memarg, .. } => (memarg, 2),
        I32Load { memarg }
        | F32Load { memarg }
        | I64Load32S { memarg }
        | I64Load32U { memarg }
        | I32Store { memarg }
        | F32Store { memarg }
        | I64Store32 { memarg }
        | V128Load32Splat { memarg }
        | V128Load32Zero { memarg }
        | V128Load32Lane { memarg, .. }
        | V128Store32Lane { memarg, .. } => (memarg, 4),
        I64Load { memarg }
        | F64Load { memarg }
        | I64Store { memarg }
        | F64Store { memarg }
        | V128Load8x8S { memarg }
        | V128Load8x8U { memarg }
        | V128Load16x4S { memarg }
        | V128Load16x4U { memarg }
        | V128Load32x2S { memarg }
        | V128Load32x2U { memarg }
        | V128Load64Splat { memarg }
        | V128Load64Zero { memarg }
        | V128Load64Lane { memarg, .. }
        | V128Store64Lane { memarg, .. } => (memarg, 8),
        V128Load { memarg } | V128Store { memarg } => (memarg, 16),
        _ => return None,
    };
    Some((memarg, size))
}

/// Whether wasmtime compiles an access of `size` bytes at static offset `offset` into memory
/// `memory` as an unconditional trap (`bounds_checks.rs`: `offset + size` past the largest
/// size the memory can ever have), which it precedes with a fuel save.
pub(crate) fn always_traps(memory: &MemoryType, offset: u64, size: u8) -> bool {
    // `Memory::maximum_byte_size`: the declared maximum, or at least the 4 GiB a 32-bit index
    // can address.
    let largest = match memory.maximum {
        Some(pages) => pages.saturating_mul(PAGE as u64),
        None => (memory.initial.saturating_mul(PAGE as u64)).max(1 << 32),
    };
    offset + u64::from(size) > largest
}
