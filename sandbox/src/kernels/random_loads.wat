;; Dependent random loads: a pointer chase through 16 MiB. Entry i holds (a * i + c) mod 2^22,
;; a full-period generator, so the chase visits every entry in a scrambled order. `init`
;; writes (and so touches) every page before anything is timed.
(module
  (memory 256)
  (func (export "init")
    (local $i i32)
    (block $done
      (loop $next
        (br_if $done (i32.ge_u (local.get $i) (i32.const 0x40_0000)))
        (i32.store
          (i32.shl (local.get $i) (i32.const 2))
          (i32.and
            (i32.add (i32.mul (local.get $i) (i32.const 1_664_525)) (i32.const 1_013_904_223))
            (i32.const 0x3F_FFFF)))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $next))))
  (func (export "run") (param $n i64) (result i64)
    (local $p i32) (local $sum i64)
    (block $done
      (loop $next
        (br_if $done (i64.eqz (local.get $n)))
        (local.set $p (i32.load (i32.shl (local.get $p) (i32.const 2))))
        (local.set $sum (i64.add (local.get $sum) (i64.extend_i32_u (local.get $p))))
        (local.set $n (i64.sub (local.get $n) (i64.const 1)))
        (br $next)))
    (local.get $sum)))
