//! Hand-written guests that exercise each thing the pass mirrors, run both ways on several
//! inputs and at every fuel limit around the end of the task.

use dipla_protocol::FailureKind;

use crate::common::{Pair, limits};

/// What every hand-written guest has: memory, a bump allocator, the decimal argument
/// (`$arg`) and output (`$num`).
const PRELUDE: &str = r#"
    (global $heap (mut i32) (i32.const 8192))
    (func $alloc (export "cabi_realloc") (param i32 i32 i32 i32) (result i32)
        (local $p i32)
        (local.set $p (global.get $heap))
        (global.set $heap (i32.add (global.get $heap) (local.get 3)))
        (local.get $p))
    (func $num (param $v i64) (result i64)
        (local $buf i32) (local $i i32)
        (local.set $buf (call $alloc (i32.const 0) (i32.const 0) (i32.const 1) (i32.const 32)))
        (local.set $i (i32.const 31))
        (loop $l
            (i32.store8 (i32.add (local.get $buf) (local.get $i))
                (i32.add (i32.const 48) (i32.wrap_i64 (i64.rem_u (local.get $v) (i64.const 10)))))
            (local.set $v (i64.div_u (local.get $v) (i64.const 10)))
            (local.set $i (i32.sub (local.get $i) (i32.const 1)))
            (br_if $l (i64.ne (local.get $v) (i64.const 0))))
        (i32.store8 (i32.add (local.get $buf) (local.get $i)) (i32.const 0))
        (i64.or
            (i64.shl (i64.extend_i32_u (i32.add (local.get $buf) (local.get $i))) (i64.const 32))
            (i64.extend_i32_u (i32.sub (i32.const 32) (local.get $i)))))
    (func $arg (param $ptr i32) (param $len i32) (result i64)
        (local $v i64) (local $i i32)
        (block $done
            (loop $l
                (br_if $done (i32.ge_u (local.get $i) (local.get $len)))
                (local.set $v (i64.add (i64.mul (local.get $v) (i64.const 10))
                    (i64.extend_i32_u (i32.sub
                        (i32.load8_u (i32.add (local.get $ptr) (local.get $i)))
                        (i32.const 48)))))
                (local.set $i (i32.add (local.get $i) (i32.const 1)))
                (br $l)))
        (local.get $v))
"#;

/// A guest module: `memory` (given), the prelude, `body`, and a `dipla` section.
pub fn guest(memory: &str, body: &str) -> Vec<u8> {
    wat::parse_str(format!(
        r#"(module (memory (export "memory") {memory}) {PRELUDE} {body}
            (@custom "dipla" "{{\"abi\":1,\"task\":\"t\"}}\n"))"#
    ))
    .unwrap()
}

/// Control flow of every kind, with the task's argument steering it.
pub const CONTROL: &str = r#"
    (type $binop (func (param i64 i64) (result i64)))
    (table 4 4 funcref)
    (elem (i32.const 0) $add $mul $sub $fib)
    (func $add (param i64 i64) (result i64) (i64.add (local.get 0) (local.get 1)))
    (func $mul (param i64 i64) (result i64) (i64.mul (local.get 0) (local.get 1)))
    (func $sub (param i64 i64) (result i64) (i64.sub (local.get 0) (local.get 1)))
    (func $fib (param i64 i64) (result i64)
        (if (result i64) (i64.lt_u (local.get 0) (i64.const 2))
            (then (local.get 0))
            (else (i64.add
                (call $fib (i64.sub (local.get 0) (i64.const 1)) (i64.const 0))
                (call $fib (i64.sub (local.get 0) (i64.const 2)) (i64.const 0))))))
    (func $pair (param i64) (result i64 i64)
        (i64.add (local.get 0) (i64.const 1))
        (i64.mul (local.get 0) (i64.const 3)))
    (func $tail (param i64 i64) (result i64)
        (if (i64.eqz (local.get 0)) (then (return (local.get 1))))
        (return_call $tail (i64.sub (local.get 0) (i64.const 1))
            (i64.add (local.get 1) (local.get 0))))
    (func (export "loops") (param $p i32) (param $n i32) (result i64)
        (local $x i64) (local $acc i64) (local $i i32) (local $j i32)
        (local.set $x (call $arg (local.get $p) (local.get $n)))
        (loop $outer
            (local.set $j (i32.const 0))
            (block $skip
                (br_if $skip (i64.eq (i64.rem_u (local.get $x) (i64.const 3)) (i64.const 0)))
                (loop $inner
                    (local.set $acc (i64.add (local.get $acc) (i64.extend_i32_u (local.get $j))))
                    (local.set $j (i32.add (local.get $j) (i32.const 1)))
                    (br_if $inner (i32.lt_u (local.get $j) (i32.wrap_i64 (local.get $x))))))
            (block $c (block $b (block $a
                (br_table $a $b $c (i32.wrap_i64 (i64.rem_u (local.get $acc) (i64.const 4)))))
                (local.set $acc (i64.add (local.get $acc) (i64.const 7)))
                (br $c))
                (local.set $acc (i64.mul (local.get $acc) (i64.const 3))))
            (if (i64.gt_u (local.get $acc) (i64.const 1000000))
                (then (local.set $acc (i64.rem_u (local.get $acc) (i64.const 999983))))
                (else (nop)))
            (local.set $i (i32.add (local.get $i) (i32.const 1)))
            (br_if $outer (i32.lt_u (local.get $i) (i32.const 20))))
        (call $num (local.get $acc)))
    (func (export "calls") (param $p i32) (param $n i32) (result i64)
        (local $x i64) (local $acc i64) (local $k i32)
        (local.set $x (call $arg (local.get $p) (local.get $n)))
        (loop $l
            (local.set $acc (i64.add (local.get $acc)
                (call_indirect (type $binop) (local.get $x) (i64.extend_i32_u (local.get $k))
                    (i32.rem_u (local.get $k) (i32.const 3)))))
            (local.set $k (i32.add (local.get $k) (i32.const 1)))
            (br_if $l (i32.lt_u (local.get $k) (i32.const 10))))
        (local.set $acc (i64.add (local.get $acc)
            (call_indirect (type $binop) (i64.rem_u (local.get $x) (i64.const 16)) (i64.const 0)
                (i32.const 3))))
        (call $num (i64.add (local.get $acc)
            (call $tail (i64.rem_u (local.get $x) (i64.const 50)) (i64.const 0)))))
    (func (export "multi") (param $p i32) (param $n i32) (result i64)
        (local $x i64) (local $k i64)
        (local.set $x (call $arg (local.get $p) (local.get $n)))
        local.get $x
        block (param i64) (result i64 i64)
            call $pair
            local.get $x
            i64.eqz
            br_if 0
        end
        i64.add
        (i64.rem_u (local.get $x) (i64.const 50))
        loop $l (param i64 i64) (result i64)
            local.set $k
            local.get $k
            i64.add
            local.get $k
            i64.eqz
            if (param i64) (result i64)
            else
                local.get $k
                i64.const 1
                i64.sub
                br $l
            end
        end
        call $num)
    (func (export "fib") (param $p i32) (param $n i32) (result i64)
        (call $num (call $fib (call $arg (local.get $p) (local.get $n)) (i64.const 0))))
"#;

#[test]
fn control_flow_calls_and_multi_value_agree() {
    let module = guest("1", CONTROL);
    let pair = Pair::new(&module);
    for input in ["0", "1", "2", "5", "7", "30", "123"] {
        for export in ["loops", "calls", "multi"] {
            pair.agree(export, input, &limits(10_000_000));
        }
    }
    assert_eq!(
        pair.agree("fib", "20", &limits(10_000_000)).output(),
        "6765"
    );
}

/// Bulk operators with constant counts (small and large, directly, through locals and
/// block results) and dynamic ones, passive data, tables.
pub const BULK: &str = r#"
    (data $words "dipla dipla dipla dipla dipla dipla dipla dipla dipla dipla dipla dipla dipla")
    (table $t 2 10 funcref)
    (elem declare func $bulk_helper)
    (global $big i32 (i32.const 300))
    (func $bulk_helper)
    (func (export "bulk") (param $p i32) (param $n i32) (result i64)
        (local $x i32) (local $len i32) (local $zero i32) (local $i i32)
        (local.set $x (i32.wrap_i64 (call $arg (local.get $p) (local.get $n))))
        ;; constant, small and large
        (memory.fill (i32.const 1024) (i32.const 7) (i32.const 100))
        (memory.fill (i32.const 1024) (i32.const 8) (i32.const 129))
        (memory.fill (i32.const 1024) (i32.const 9) (global.get $big))
        ;; through a local, and a local never set
        (local.set $len (i32.const 200))
        (memory.copy (i32.const 2048) (i32.const 1024) (local.get $len))
        (memory.copy (i32.const 2048) (i32.const 1024) (local.get $zero))
        ;; through a block's result and a join
        (memory.copy (i32.const 3072) (i32.const 1024)
            (block (result i32) (i32.const 150)))
        (if (local.get $x) (then (local.set $len (i32.const 200))))
        (memory.fill (i32.const 1024) (i32.const 1) (local.get $len))
        (if (local.get $x) (then (local.set $len (i32.const 10))))
        (memory.fill (i32.const 1024) (i32.const 1) (local.get $len))
        ;; in a loop: not a constant while the loop header is open
        (loop $l
            (memory.fill (i32.const 1024) (i32.const 2) (local.get $len))
            (memory.copy (i32.const 4096) (i32.const 1024) (local.get $x))
            (local.set $i (i32.add (local.get $i) (i32.const 1)))
            (br_if $l (i32.lt_u (local.get $i) (i32.const 3))))
        (memory.fill (i32.const 1024) (i32.const 3) (local.get $len))
        ;; dynamic
        (memory.fill (i32.const 1024) (i32.const 4) (local.get $x))
        (memory.init $words (i32.const 5000) (i32.const 0) (i32.rem_u (local.get $x) (i32.const 60)))
        (memory.init $words (i32.const 5000) (i32.const 0) (i32.const 40))
        ;; tables
        (drop (table.grow $t (ref.func $bulk_helper) (i32.rem_u (local.get $x) (i32.const 4))))
        (drop (table.grow $t (ref.null func) (i32.const 1)))
        (table.fill $t (i32.const 0) (ref.func $bulk_helper) (table.size $t))
        (table.copy $t $t (i32.const 0) (i32.const 1) (i32.const 1))
        (call $num (i64.add (i64.extend_i32_u (table.size $t))
            (i64.extend_i32_u (i32.load8_u (i32.const 1500))))))
"#;

/// Bulk operators after the task's last call and loop, then an output written inline: at a
/// fuel limit that runs out here, wasmtime stops only at a check, so the outcome says whether
/// the checks are where wasmtime puts them.
pub const TAIL: &str = r#"
    (func (export "tail") (param $p i32) (param $n i32) (result i64)
        (local $x i32) (local $len i32) (local $zero i32)
        (local.set $x (i32.wrap_i64 (call $arg (local.get $p) (local.get $n))))
        (memory.fill (i32.const 1024) (i32.const 7) (i32.const 100))
        (memory.fill (i32.const 1024) (i32.const 7) (i32.const 200))
        (local.set $len (i32.const 50))
        (memory.copy (i32.const 2048) (i32.const 1024) (local.get $len))
        (memory.fill (i32.const 1024) (local.get $x) (local.get $x))
        (memory.copy (i32.const 2048) (i32.const 1024) (block (result i32) (i32.const 60)))
        (drop (memory.grow (i32.const 0)))
        (drop (memory.grow (local.get $zero)))
        (drop (memory.grow (i32.and (local.get $x) (i32.const 0))))
        (memory.fill (i32.const 1024) (i32.const 7) (i32.const 90))
        (if (local.get $x) (then (local.set $len (i32.const 40))))
        (memory.fill (i32.const 1024) (i32.const 7) (local.get $len))
        (memory.fill (i32.const 1024) (i32.const 7) (i32.const 70))
        ;; a constant before a loop is not one inside it (the header is open), but is after
        (local.set $len (i32.const 50))
        (loop $once
            (memory.fill (i32.const 1024) (i32.const 1) (i32.const 100))
            (memory.fill (i32.const 1024) (i32.const 1) (local.get $len))
            (br_if $once (i32.const 0)))
        (memory.fill (i32.const 1024) (i32.const 1) (local.get $len))
        (memory.fill (i32.const 1024) (i32.const 1) (i32.const 100))
        (i32.store16 (i32.const 100) (i32.const 0x3100))
        (i64.const 0x6400000002))
"#;

#[test]
fn checks_are_where_wasmtime_puts_them() {
    let module = guest("1", TAIL);
    let pair = Pair::new(&module);
    for input in ["0", "5", "100"] {
        let needed = pair.sandbox("tail", input, &limits(100_000_000)).fuel;
        let mut outcomes = Vec::new();
        for fuel in needed.saturating_sub(1200)..=needed + 1 {
            let kind = pair.agree("tail", input, &limits(fuel)).kind();
            if !outcomes.contains(&kind) {
                outcomes.push(kind);
            }
        }
        // Some limits end out of fuel, others let the task finish on its last fuel.
        assert_eq!(outcomes.len(), 2, "{outcomes:?}");
    }
}

#[test]
fn bulk_operators_agree() {
    let module = guest("1", BULK);
    let pair = Pair::new(&module);
    for input in ["0", "1", "3", "40", "300", "5000"] {
        pair.agree("bulk", input, &limits(10_000_000));
    }
    // Out of bounds at run time, after some work.
    let ran = pair.agree("bulk", "70000", &limits(10_000_000));
    assert_eq!(ran.kind(), Some(FailureKind::Trap));
}

/// Floats whose raw results are NaNs of other bit patterns than the canonical one.
pub const FLOATS: &str = r#"
    (func $hex (param $bits i64) (result i64) (call $num (local.get $bits)))
    (func (export "nan") (param $p i32) (param $n i32) (result i64)
        (local $x f64) (local $y f32) (local $v v128) (local $acc i64)
        (local.set $x (f64.convert_i64_u (call $arg (local.get $p) (local.get $n))))
        (local.set $y (f32.demote_f64 (local.get $x)))
        ;; 0/0 computed at run time: x86 gives a negative NaN
        (local.set $acc (i64.reinterpret_f64 (f64.div (f64.sub (local.get $x) (local.get $x))
            (f64.sub (local.get $x) (local.get $x)))))
        (local.set $acc (i64.xor (local.get $acc) (i64.extend_i32_u (i32.reinterpret_f32
            (f32.sqrt (f32.neg (f32.add (local.get $y) (f32.const 1))))))))
        (local.set $acc (i64.add (local.get $acc) (i64.reinterpret_f64
            (f64.promote_f32 (f32.div (f32.const 0) (f32.sub (local.get $y) (local.get $y)))))))
        (local.set $acc (i64.add (local.get $acc) (i64.reinterpret_f64
            (f64.min (f64.const nan:0x4) (local.get $x)))))
        (local.set $acc (i64.add (local.get $acc) (i64.extend_i32_u (i32.reinterpret_f32
            (f32.demote_f64 (f64.const nan:0x1234567))))))
        ;; SIMD lanes
        (local.set $v (f32x4.div (f32x4.splat (f32.sub (local.get $y) (local.get $y)))
            (f32x4.splat (f32.const 0))))
        (local.set $acc (i64.add (local.get $acc) (i64.extend_i32_u (i32x4.extract_lane 2 (local.get $v)))))
        (local.set $v (f64x2.sqrt (f64x2.splat (f64.neg (local.get $x)))))
        (local.set $acc (i64.add (local.get $acc) (i64x2.extract_lane 1 (local.get $v))))
        (local.set $v (f64x2.promote_low_f32x4 (f32x4.splat (f32.const nan:0x200))))
        (local.set $acc (i64.add (local.get $acc) (i64x2.extract_lane 0 (local.get $v))))
        (local.set $v (f32x4.max (f32x4.splat (f32.const nan:0x7)) (f32x4.splat (local.get $y))))
        (local.set $acc (i64.add (local.get $acc) (i64.extend_i32_u (i32x4.extract_lane 0 (local.get $v)))))
        ;; operators that move bits unchanged keep a non-canonical NaN
        (local.set $acc (i64.add (local.get $acc) (i64.reinterpret_f64 (f64.neg (f64.const nan:0x5)))))
        (call $hex (local.get $acc)))
    (func (export "zero_div") (param $p i32) (param $n i32) (result i64)
        (local $x f64)
        (local.set $x (f64.convert_i64_u (call $arg (local.get $p) (local.get $n))))
        (call $hex (i64.reinterpret_f64 (f64.div (f64.sub (local.get $x) (local.get $x))
            (f64.sub (local.get $x) (local.get $x))))))
"#;

#[test]
fn nans_are_canonical_as_in_the_sandbox() {
    let module = guest("1", FLOATS);
    let pair = Pair::new(&module);
    for input in ["0", "1", "4", "1000"] {
        pair.agree("nan", input, &limits(1_000_000));
    }
    let ran = pair.agree("zero_div", "3", &limits(1_000_000));
    assert_eq!(
        ran.output(),
        u64::from_str_radix("7ff8000000000000", 16)
            .unwrap()
            .to_string()
    );
    // Without the pass the engine gives the hardware's NaN: the test means something.
    let raw = wasmtime::Module::new(crate::common::browser(), &module).unwrap();
    let uninstrumented = crate::common::in_browser_raw(&raw, "zero_div", "3");
    assert_ne!(uninstrumented, ran.output());
}

/// Tasks that fail after some work.
pub const FAILING: &str = r#"
    (type $v (func))
    (type $iv (func (param i32)))
    (type $vi (func (result i64)))
    (table 10 funcref)
    (elem (i32.const 1) $nothing)
    (func $nothing)
    (func $divide_by (param i64) (result i64) (i64.rem_u (i64.const 7) (local.get 0)))
    (func (export "traps") (param $p i32) (param $n i32) (result i64)
        (local $x i64)
        (local.set $x (call $arg (local.get $p) (local.get $n)))
        (local.set $x (i64.add (local.get $x) (i64.const 0)))
        (if (i64.eq (local.get $x) (i64.const 0))
            (then (call_indirect (type $v) (i32.const 0))))
        (if (i64.eq (local.get $x) (i64.const 1))
            (then (call_indirect (type $iv) (i32.const 7) (i32.const 1))))
        (if (i64.eq (local.get $x) (i64.const 2))
            (then (call_indirect (type $v) (i32.const 12))))
        (if (i64.eq (local.get $x) (i64.const 3))
            (then (drop (call $divide_by (i64.sub (local.get $x) (i64.const 3))))))
        (if (i64.eq (local.get $x) (i64.const 4))
            (then (drop (i32.div_s (i32.const 0x80000000)
                (i32.wrap_i64 (i64.sub (local.get $x) (i64.const 5)))))))
        (if (i64.eq (local.get $x) (i64.const 5))
            (then (drop (i32.trunc_f64_s (f64.convert_i64_u (i64.shl (local.get $x) (i64.const 40)))))))
        (if (i64.eq (local.get $x) (i64.const 6))
            (then (drop (i32.div_u (i32.const 1) (i32.wrap_i64 (i64.sub (local.get $x) (i64.const 6)))))))
        (if (i64.eq (local.get $x) (i64.const 8))
            (then (drop (i64.trunc_f32_u (f32.div (f32.convert_i64_u (local.get $x))
                (f32.const 0))))))
        (if (i64.eq (local.get $x) (i64.const 9))
            (then (drop (i64.trunc_f64_s (f64.sqrt (f64.neg (f64.convert_i64_u (local.get $x))))))))
        (if (i64.eq (local.get $x) (i64.const 7))
            (then (return_call_indirect (type $vi) (i32.const 0))))
        (call $num (local.get $x)))
    (func $work (param $x i64) (result i64)
        (local $i i64)
        (loop $l
            (local.set $i (i64.add (local.get $i) (i64.const 1)))
            (br_if $l (i64.lt_u (local.get $i) (local.get $x))))
        (local.get $i))
    (func (export "divide") (param $p i32) (param $n i32) (result i64)
        (local $x i64)
        (local.set $x (call $work (call $arg (local.get $p) (local.get $n))))
        (local.set $x (i64.add (local.get $x) (i64.const 5)))
        (call $num (i64.div_u (i64.const 100) (i64.sub (local.get $x) (i64.const 15)))))
    (func (export "load") (param $p i32) (param $n i32) (result i64)
        (local $x i64)
        (local.set $x (call $work (call $arg (local.get $p) (local.get $n))))
        (local.set $x (i64.mul (local.get $x) (i64.const 4096)))
        (call $num (i64.load (i32.wrap_i64 (local.get $x)))))
    (func (export "crash") (param $p i32) (param $n i32) (result i64)
        (local $x i64)
        (local.set $x (call $work (call $arg (local.get $p) (local.get $n))))
        (if (i64.gt_u (local.get $x) (i64.const 3)) (then
            (local.set $x (i64.add (local.get $x) (i64.const 1)))
            (unreachable)))
        (call $num (local.get $x)))
    (func (export "spin") (param $p i32) (param $n i32) (result i64)
        (loop $l (br $l))
        (unreachable))
    (func (export "grow") (param $p i32) (param $n i32) (result i64)
        (loop $l (br_if $l (i32.ne (memory.grow (i32.const 16)) (i32.const -1))))
        (call $num (i64.const 0)))
    (func (export "grow_past_max") (param $p i32) (param $n i32) (result i64)
        (call $num (i64.extend_i32_s
            (memory.grow (i32.wrap_i64 (call $arg (local.get $p) (local.get $n)))))))
    (func $deep (param i64) (result i64)
        (if (result i64) (i64.eqz (local.get 0)) (then (i64.const 0))
            (else (i64.add (i64.const 1) (call $deep (i64.sub (local.get 0) (i64.const 1)))))))
    (func (export "deep") (param $p i32) (param $n i32) (result i64)
        (call $num (call $deep (call $arg (local.get $p) (local.get $n)))))
"#;

#[test]
fn traps_mid_task_report_the_same_fuel() {
    let module = guest("1 20", FAILING);
    let pair = Pair::new(&module);
    let ran = pair.agree("divide", "10", &limits(1_000_000));
    assert_eq!(ran.kind(), Some(FailureKind::Trap), "{ran:?}");
    assert!(ran.fuel > 0);
    pair.agree("divide", "100", &limits(1_000_000));
    for input in ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9", "10"] {
        pair.agree("traps", input, &limits(1_000_000));
    }
    for input in ["0", "20", "100"] {
        pair.agree("load", input, &limits(1_000_000));
    }
    for input in ["2", "50"] {
        pair.agree("crash", input, &limits(1_000_000));
    }
    assert_eq!(
        pair.agree("deep", "100", &limits(1_000_000)).output(),
        "100"
    );
}

#[test]
fn infinite_loops_and_memory_bombs_stop_at_the_limits() {
    let module = guest("1 20", FAILING);
    let pair = Pair::new(&module);
    let ran = pair.agree("spin", "0", &limits(1_000_000));
    assert_eq!(ran.kind(), Some(FailureKind::OutOfFuel));
    assert_eq!(ran.fuel, 1_000_000);
    let tight = dipla_sandbox::Limits {
        memory_bytes: 10 << 16,
        ..limits(1_000_000)
    };
    let ran = pair.agree("grow", "0", &tight);
    assert_eq!(ran.kind(), Some(FailureKind::MemoryLimit));
    // Past the module's maximum within the limit: -1; past both: the limit.
    for pages in ["5", "19", "20", "30"] {
        pair.agree("grow_past_max", pages, &limits(1_000_000));
        pair.agree("grow_past_max", pages, &tight);
    }
}

#[test]
fn a_memory_over_the_limit_fails_before_running() {
    let module = guest("4", FAILING);
    let pair = Pair::new(&module);
    let tight = dipla_sandbox::Limits {
        memory_bytes: 3 << 16,
        ..limits(1_000_000)
    };
    let ran = pair.agree("divide", "1", &tight);
    assert_eq!(ran.kind(), Some(FailureKind::MemoryLimit));
    assert_eq!(ran.fuel, 0);
}

#[test]
fn deep_recursion_overflows_the_stack_both_ways() {
    let module = guest("1", FAILING);
    let pair = Pair::new(&module);
    let native = pair.sandbox("deep", "10000000", &limits(u64::MAX / 2));
    let instrumented = pair.browser("deep", "10000000", &limits(u64::MAX / 2));
    assert_eq!(native.kind(), Some(FailureKind::StackOverflow));
    assert_eq!(instrumented.kind(), Some(FailureKind::StackOverflow));
}

/// At every fuel limit around what a task needs, both stop (or finish) alike: the checks are
/// where wasmtime's are.
#[test]
fn every_fuel_limit_near_the_end_gives_the_same_outcome() {
    for (body, memory, export, input) in [
        (CONTROL, "1", "loops", "7"),
        (CONTROL, "1", "calls", "9"),
        (CONTROL, "1", "multi", "3"),
        (BULK, "1", "bulk", "300"),
        (FAILING, "1 20", "divide", "10"),
        (FAILING, "1 20", "crash", "9"),
    ] {
        let module = guest(memory, body);
        let pair = Pair::new(&module);
        let needed = pair.sandbox(export, input, &limits(100_000_000)).fuel;
        for fuel in needed.saturating_sub(400)..=needed + 2 {
            pair.agree(export, input, &limits(fuel));
        }
    }
}

#[test]
fn accesses_past_the_largest_memory_trap_with_the_fuel_saved() {
    let body = r#"
        (func (export "far") (param $p i32) (param $n i32) (result i64)
            (local $x i64)
            (local.set $x (call $arg (local.get $p) (local.get $n)))
            (local.set $x (i64.mul (local.get $x) (i64.const 3)))
            (if (i64.gt_u (local.get $x) (i64.const 10)) (then
                (drop (i64.load offset=200000 (i32.const 0)))
                (local.set $x (i64.add (local.get $x) (i64.const 1)))))
            (call $num (local.get $x)))
    "#;
    let module = guest("1 2", body);
    let pair = Pair::new(&module);
    for input in ["1", "100"] {
        pair.agree("far", input, &limits(1_000_000));
    }
}

/// Code Cranelift knows cannot run (after `br`, `return`, `unreachable`), constructs inside
/// it, and the ends that become reachable again through a branch or an `if`'s other arm.
pub const DEAD: &str = r#"
    (type $binop (func (param i64 i64) (result i64)))
    (table 2 2 funcref)
    (elem (i32.const 0) $plus $twice)
    (func $plus (param i64 i64) (result i64) (i64.add (local.get 0) (local.get 1)))
    (func $twice (param i64 i64) (result i64)
        (if (i64.eqz (local.get 1)) (then (return (local.get 0))))
        (return_call_indirect (type $binop)
            (i64.mul (local.get 0) (i64.const 2)) (i64.sub (local.get 1) (i64.const 1))
            (i32.const 1)))
    (func (export "dead") (param $p i32) (param $n i32) (result i64)
        (local $x i64)
        (local.set $x (call $arg (local.get $p) (local.get $n)))
        (block $a
            (block $b
                (br_if $b (i64.eqz (local.get $x)))
                (local.set $x (i64.add (local.get $x) (i64.const 1)))
                (br $a)
                (loop $never (br $never))
                (if (i32.const 1) (then (nop)) (else (unreachable)))
                (block $d (br_if $d (i32.const 0)))
                (drop (i64.const 5)))
            (local.set $x (i64.mul (local.get $x) (i64.const 3))))
        (block $out
            (if (i64.gt_u (local.get $x) (i64.const 10))
                (then
                    (local.set $x (i64.sub (local.get $x) (i64.const 2)))
                    (br $out)
                    (local.set $x (i64.const 0)))
                (else (local.set $x (i64.add (local.get $x) (i64.const 5)))))
            (local.set $x (i64.add (local.get $x) (i64.const 100))))
        (if (i64.eq (local.get $x) (i64.const 8))
            (then (drop (i64.trunc_f32_u (f32.div (f32.convert_i64_u (local.get $x))
                (f32.const 0))))))
        (if (i64.eq (local.get $x) (i64.const 9))
            (then (drop (i64.trunc_f64_s (f64.sqrt (f64.neg (f64.convert_i64_u (local.get $x))))))))
        (if (i64.eq (local.get $x) (i64.const 7))
            (then (return (call $num (i64.const 7))) (drop (i32.const 0))))
        (if (i64.eq (local.get $x) (i64.const 8)) (then (unreachable)))
        (block $only
            (br_if $only (i64.ne (local.get $x) (i64.const 999)))
            (unreachable)
            (loop (nop)))
        (if (i64.eq (local.get $x) (i64.const 9))
            (then (unreachable))
            (else (return (call $num (i64.const 9)))))
        (local.set $x (call_indirect (type $binop) (local.get $x) (i64.const 5) (i32.const 1)))
        (block $m (result i64 i64)
            (i64.const 1)
            (local.get $x)
            (br_table $m $m (i32.wrap_i64 (local.get $x))))
        (local.set $x (i64.add))
        (block (result i64)
            (call $num (local.get $x))
            (br_table 0 1 0 (i32.wrap_i64 (i64.rem_u (local.get $x) (i64.const 3))))))
"#;

#[test]
fn unreachable_code_and_tail_calls_agree() {
    let module = guest("1", DEAD);
    let pair = Pair::new(&module);
    for input in [
        "0", "1", "2", "3", "4", "7", "8", "9", "11", "998", "999", "1000",
    ] {
        pair.agree("dead", input, &limits(1_000_000));
    }
    let needed = pair.sandbox("dead", "12", &limits(1_000_000)).fuel;
    for fuel in needed - 200..=needed {
        pair.agree("dead", "12", &limits(fuel));
    }
}

#[test]
fn tables_grow_up_to_the_sandbox_s_limit() {
    let body = r#"
        (table $t 10 funcref)
        (func (export "table_bomb") (param $p i32) (param $n i32) (result i64)
            (local $step i32)
            (local.set $step (i32.wrap_i64 (call $arg (local.get $p) (local.get $n))))
            (loop $l
                (br_if $l (i32.ne (table.grow $t (ref.null func) (local.get $step)) (i32.const -1))))
            (call $num (i64.extend_i32_u (table.size $t))))
    "#;
    let module = guest("1", body);
    let pair = Pair::new(&module);
    let ran = pair.agree("table_bomb", "30000", &limits(1_000_000_000));
    assert_eq!(ran.kind(), Some(FailureKind::MemoryLimit), "{ran:?}");
}

#[test]
fn fuel_beyond_what_wasmtime_injects_is_reported_alike() {
    let module = guest("1", CONTROL);
    let pair = Pair::new(&module);
    for fuel in [u64::MAX / 2, u64::MAX / 2 + 1, u64::MAX] {
        pair.agree("loops", "5", &limits(fuel));
    }
}

#[test]
fn the_instrumented_module_reads_as_the_same_guest() {
    let module = guest("1", CONTROL);
    let instrumented = dipla_instrument::instrument(&module).unwrap();
    let (before, after) = (
        dipla_sandbox::abi::inspect(&module).unwrap(),
        dipla_sandbox::abi::inspect(&instrumented).unwrap(),
    );
    assert_eq!(before.tasks, after.tasks);
    assert!(after.imports.is_empty());
    // The sandbox itself accepts it (its fuel then counts both ways, of course).
    crate::common::sandbox().compile(&instrumented).unwrap();
}

#[test]
fn what_cannot_be_mirrored_is_refused() {
    use dipla_instrument::{InstrumentError, instrument};
    let refused = |body: &str| instrument(&guest("1", body)).unwrap_err();
    assert!(matches!(
        refused("(func $s) (start $s)"),
        InstrumentError::Startup(_)
    ));
    assert!(matches!(
        refused("(global i32 (i32.add (i32.const 1) (i32.const 2)))"),
        InstrumentError::Startup(_)
    ));
    assert!(matches!(
        refused("(table 1 funcref) (func $f) (elem func $f)"),
        InstrumentError::Startup(_)
    ));
    assert!(matches!(
        refused(r#"(data (i32.const 70000) "x")"#),
        InstrumentError::Startup(_)
    ));
    assert!(matches!(
        refused(r#"(global (export "dipla_fuel") i64 (i64.const 0))"#),
        InstrumentError::NameTaken("dipla_fuel")
    ));
    assert!(matches!(
        refused("(table 200000 funcref)"),
        InstrumentError::Unsupported(_)
    ));
    // Proposals the sandbox does not enable.
    assert!(matches!(
        refused(
            "(func (param i32) (result i32) (local.get 0) (i32x4.relaxed_laneselect (v128.const i64x2 0 0) (v128.const i64x2 0 0) (v128.const i64x2 0 0)) (drop))"
        ),
        InstrumentError::Invalid(_)
    ));
    assert!(matches!(
        refused("(func (result i32) (i32.atomic.load (i32.const 0)))"),
        InstrumentError::Invalid(_)
    ));
    let imports =
        wat::parse_str(r#"(module (import "env" "f" (func)) (memory (export "memory") 1))"#)
            .unwrap();
    assert_eq!(instrument(&imports), Err(InstrumentError::Imports));
    assert!(matches!(
        instrument(b"not wasm"),
        Err(InstrumentError::Invalid(_))
    ));
}

#[test]
fn instrumenting_is_deterministic() {
    let module = guest("1", FLOATS);
    assert_eq!(
        dipla_instrument::instrument(&module).unwrap(),
        dipla_instrument::instrument(&module).unwrap()
    );
}
