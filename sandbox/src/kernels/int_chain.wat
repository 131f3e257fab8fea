;; Integer ALU: a dependent chain of multiplies, adds, shifts, xors and rotates.
(module
  (func (export "init"))
  (func (export "run") (param $n i64) (result i64)
    (local $x i64) (local $y i64)
    (local.set $x (i64.const 0x1234_5678_9abc_def1))
    (local.set $y (i64.const 1))
    (block $done
      (loop $next
        (br_if $done (i64.eqz (local.get $n)))
        (local.set $x
          (i64.add
            (i64.mul (local.get $x) (i64.const 6364136223846793005))
            (i64.const 1442695040888963407)))
        (local.set $y
          (i64.rotl
            (i64.xor (local.get $y) (i64.shr_u (local.get $x) (i64.const 29)))
            (i64.const 7)))
        (local.set $n (i64.sub (local.get $n) (i64.const 1)))
        (br $next)))
    (i64.xor (local.get $x) (local.get $y))))
