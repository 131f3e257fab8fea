;; Sequential memory: 8-byte loads streaming through 4 MiB, wrapping around.
(module
  (memory 64)
  (func (export "init")
    (local $p i32)
    (block $done
      (loop $next
        (br_if $done (i32.ge_u (local.get $p) (i32.const 0x40_0000)))
        (i64.store (local.get $p) (i64.mul (i64.extend_i32_u (local.get $p)) (i64.const 0x9E37_79B9)))
        (local.set $p (i32.add (local.get $p) (i32.const 8)))
        (br $next))))
  (func (export "run") (param $n i64) (result i64)
    (local $p i32) (local $sum i64)
    (block $done
      (loop $next
        (br_if $done (i64.eqz (local.get $n)))
        (local.set $sum (i64.add (local.get $sum) (i64.load (local.get $p))))
        (local.set $p (i32.and (i32.add (local.get $p) (i32.const 8)) (i32.const 0x3F_FFFF)))
        (local.set $n (i64.sub (local.get $n) (i64.const 1)))
        (br $next)))
    (local.get $sum)))
