;; Calls: a direct call and an indirect call through a table on every iteration.
(module
  (type $step (func (param i64) (result i64)))
  (table 2 funcref)
  (elem (i32.const 0) $mix $turn)
  (func $mix (type $step)
    (i64.add (i64.xor (local.get 0) (i64.const 0x5bd1e995)) (i64.const 1)))
  (func $turn (type $step)
    (i64.rotl (local.get 0) (i64.const 5)))
  (func (export "init"))
  (func (export "run") (param $n i64) (result i64)
    (local $x i64)
    (local.set $x (i64.const 7))
    (block $done
      (loop $next
        (br_if $done (i64.eqz (local.get $n)))
        (local.set $x (call $mix (local.get $x)))
        (local.set $x
          (call_indirect (type $step)
            (local.get $x)
            (i32.wrap_i64 (i64.and (local.get $n) (i64.const 1)))))
        (local.set $n (i64.sub (local.get $n) (i64.const 1)))
        (br $next)))
    (local.get $x)))
