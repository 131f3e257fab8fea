;; Floating point: a dependent chain of multiplies, adds, divisions and square roots, all
;; exact IEEE 754 operations (the same bits on every machine).
(module
  (func (export "init"))
  (func (export "run") (param $n i64) (result i64)
    (local $x f64) (local $y f64)
    (local.set $x (f64.const 1))
    (local.set $y (f64.const 0.5))
    (block $done
      (loop $next
        (br_if $done (i64.eqz (local.get $n)))
        (local.set $x
          (f64.add (f64.mul (local.get $x) (f64.const 0.9999995)) (f64.const 0.5)))
        (local.set $y
          (f64.sqrt
            (f64.add
              (f64.mul (local.get $y) (f64.const 0.5))
              (f64.div (local.get $x) (f64.add (local.get $y) (f64.const 1))))))
        (local.set $n (i64.sub (local.get $n) (i64.const 1)))
        (br $next)))
    (i64.xor (i64.reinterpret_f64 (local.get $x)) (i64.reinterpret_f64 (local.get $y)))))
