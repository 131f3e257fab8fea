;; Unpredictable branches: which way each goes depends on bits of a pseudo-random sequence.
(module
  (func (export "init"))
  (func (export "run") (param $n i64) (result i64)
    (local $x i64) (local $a i64) (local $b i64)
    (local.set $x (i64.const 88172645463325252))
    (block $done
      (loop $next
        (br_if $done (i64.eqz (local.get $n)))
        ;; xorshift64
        (local.set $x (i64.xor (local.get $x) (i64.shl (local.get $x) (i64.const 13))))
        (local.set $x (i64.xor (local.get $x) (i64.shr_u (local.get $x) (i64.const 7))))
        (local.set $x (i64.xor (local.get $x) (i64.shl (local.get $x) (i64.const 17))))
        (if (i64.eqz (i64.and (local.get $x) (i64.const 1)))
          (then (local.set $a (i64.add (local.get $a) (i64.shr_u (local.get $x) (i64.const 40)))))
          (else (local.set $b (i64.xor (local.get $b) (local.get $x)))))
        (if (i64.eqz (i64.and (local.get $x) (i64.const 0x100)))
          (then (local.set $a (i64.sub (local.get $a) (i64.const 3))))
          (else (local.set $b (i64.rotl (local.get $b) (i64.const 1)))))
        (local.set $n (i64.sub (local.get $n) (i64.const 1)))
        (br $next)))
    (i64.xor (local.get $a) (local.get $b))))
