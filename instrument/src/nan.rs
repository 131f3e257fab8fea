//! NaN canonicalisation, as Cranelift's `cranelift_nan_canonicalization` does it.
//!
//! Cranelift's pass (`cranelift-codegen`'s `nan_canonicalization.rs`) rewrites every CLIF
//! `fadd`, `fsub`, `fmul`, `fdiv`, `fmin`, `fmax`, `sqrt`, `ceil`, `floor`, `trunc`, `nearest`,
//! `fdemote`, `fpromote`, `fvdemote`, `fvpromote_low` and `fma` so that a NaN result becomes
//! the canonical quiet NaN, `0x7fc00000` or `0x7ff8000000000000`, in every lane. wasmtime's
//! translator emits those instructions for exactly the wasm operators listed in
//! [`canonicalised`] (relaxed SIMD, the only source of `fma`, is off in the sandbox, and
//! `pmin`/`pmax` are translated to compares and selects, not `fmin`/`fmax`). Every other
//! operator either cannot produce a NaN or moves its bits unchanged on every engine (`neg`,
//! `abs`, `copysign`, loads, stores, `select`, lanes), so canonicalising after these is all a
//! browser needs to give the sandbox's bits.
//!
//! The inserted code is `x == x ? x : canonical` (a `select`, or a `bitselect` on a lane
//! mask), which changes nothing but NaNs and is never charged fuel.

use wasm_encoder::{Ieee32, Ieee64, InstructionSink};
use wasmparser::Operator;

/// The canonical `f32` NaN.
pub const F32_NAN: u32 = 0x7fc0_0000;
/// The canonical `f64` NaN.
pub const F64_NAN: u64 = 0x7ff8_0000_0000_0000;

/// The type of a result to canonicalise.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Float {
    F32,
    F64,
    F32x4,
    F64x2,
}

/// The type whose NaNs Cranelift canonicalises after `op`, if it does.
pub(crate) fn canonicalised(op: &Operator) -> Option<Float> {
    use Operator::*;
    Some(match op {
        F32Add | F32Sub | F32Mul | F32Div | F32Min | F32Max | F32Sqrt | F32Ceil | F32Floor
        | F32Trunc | F32Nearest | F32DemoteF64 => Float::F32,
        F64Add | F64Sub | F64Mul | F64Div | F64Min | F64Max | F64Sqrt | F64Ceil | F64Floor
        | F64Trunc | F64Nearest | F64PromoteF32 => Float::F64,
        F32x4Add | F32x4Sub | F32x4Mul | F32x4Div | F32x4Min | F32x4Max | F32x4Sqrt | F32x4Ceil
        | F32x4Floor | F32x4Trunc | F32x4Nearest | F32x4DemoteF64x2Zero => Float::F32x4,
        F64x2Add | F64x2Sub | F64x2Mul | F64x2Div | F64x2Min | F64x2Max | F64x2Sqrt | F64x2Ceil
        | F64x2Floor | F64x2Trunc | F64x2Nearest | F64x2PromoteLowF32x4 => Float::F64x2,
        _ => return None,
    })
}

/// The operand type of a float-to-integer conversion that traps on a NaN, if `op` is one.
pub(crate) fn trapping_conversion(op: &Operator) -> Option<wasm_encoder::ValType> {
    use Operator::*;
    match op {
        I32TruncF32S | I32TruncF32U | I64TruncF32S | I64TruncF32U => {
            Some(wasm_encoder::ValType::F32)
        }
        I32TruncF64S | I32TruncF64U | I64TruncF64S | I64TruncF64U => {
            Some(wasm_encoder::ValType::F64)
        }
        _ => None,
    }
}

/// Emits the canonicalisation of the value on top of the stack, of type `float`, using the
/// scratch local `tmp` of that type.
pub(crate) fn emit(sink: &mut InstructionSink<'_>, float: Float, tmp: u32) {
    sink.local_tee(tmp);
    match float {
        Float::F32 => {
            sink.f32_const(Ieee32::new(F32_NAN))
                .local_get(tmp)
                .local_get(tmp)
                .f32_eq()
                .select();
        }
        Float::F64 => {
            sink.f64_const(Ieee64::new(F64_NAN))
                .local_get(tmp)
                .local_get(tmp)
                .f64_eq()
                .select();
        }
        Float::F32x4 => {
            let lanes = (0..4).fold(0u128, |acc, i| acc | (u128::from(F32_NAN) << (32 * i)));
            sink.v128_const(lanes as i128)
                .local_get(tmp)
                .local_get(tmp)
                .f32x4_eq()
                .v128_bitselect();
        }
        Float::F64x2 => {
            let lanes = u128::from(F64_NAN) | (u128::from(F64_NAN) << 64);
            sink.v128_const(lanes as i128)
                .local_get(tmp)
                .local_get(tmp)
                .f64x2_eq()
                .v128_bitselect();
        }
    }
}
