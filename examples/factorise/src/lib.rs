//! The prime factorisation job from the original Dipla, as a Dipla guest.
//!
//! Build with `just build-guests` and run with `just demo`.

use dipla_guest::{task, verifier};

/// The prime factors of `n`, smallest first, with multiplicity (`12` gives `[2, 2, 3]`).
///
/// Plain trial division: odd divisors only after 2, up to the square root of what is left.
/// `0` and `1` have no prime factors.
#[task]
pub fn factorise(mut n: u64) -> Vec<u64> {
    let mut factors = Vec::new();
    if n < 2 {
        return factors;
    }
    while n.is_multiple_of(2) {
        factors.push(2);
        n /= 2;
    }
    // One division per step: the remainder comes from the quotient (wasm has no instruction
    // giving both, and Cranelift does not merge a division with a remainder as LLVM does, so
    // `d <= n / d` and `n % d` would cost two).
    let mut d = 3;
    loop {
        let quotient = n / d;
        if d > quotient {
            break;
        }
        if n - quotient * d == 0 {
            factors.push(d);
            n = quotient;
        } else {
            d += 2;
        }
    }
    if n > 1 {
        factors.push(n);
    }
    factors
}

/// Checks a factorisation cheaply: the factors are at least 2, smallest first, and multiply
/// to `n` (a worker's wrong answer would have to be a wrong factorisation of `n` whose
/// product is still `n`, with factors out of order or below 2, or else a composite factor:
/// this verifier does not test primality, which would cost as much as the task).
#[verifier]
pub fn check(n: &u64, factors: &[u64]) -> bool {
    if *n < 2 {
        return factors.is_empty();
    }
    let ordered = factors.windows(2).all(|pair| pair[0] <= pair[1]);
    let product = factors
        .iter()
        .try_fold(1u64, |product, &factor| product.checked_mul(factor));
    ordered && factors.iter().all(|&f| f >= 2) && product == Some(*n)
}

/// How many prime factors a factorisation has (with multiplicity).
#[task]
pub fn count(factors: Vec<u64>) -> u64 {
    factors.len() as u64
}

/// Addition, used to reduce the counts to a total.
#[task]
pub fn sum(a: u64, b: u64) -> u64 {
    a + b
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_verifier_accepts_factorisations_and_refuses_the_rest() {
        for n in [0u64, 1, 2, 12, 97, 1_000_000_000_039] {
            assert!(check(&n, &factorise(n)), "{n}");
        }
        assert!(!check(&12, &[2, 6, 1]));
        assert!(!check(&12, &[3, 2, 2]));
        assert!(!check(&12, &[2, 2, 4]));
        assert!(!check(&u64::MAX, &[u64::MAX, 2]));
    }

    #[test]
    fn small_numbers() {
        assert_eq!(factorise(0), Vec::<u64>::new());
        assert_eq!(factorise(1), Vec::<u64>::new());
        assert_eq!(factorise(2), vec![2]);
        assert_eq!(factorise(12), vec![2, 2, 3]);
        assert_eq!(factorise(97), vec![97]);
        assert_eq!(factorise(1001), vec![7, 11, 13]);
    }

    #[test]
    fn factors_multiply_back_and_are_prime() {
        for n in 1_000_000_000_000u64..1_000_000_000_050 {
            let factors = factorise(n);
            assert_eq!(factors.iter().product::<u64>(), n);
            assert!(factors.windows(2).all(|w| w[0] <= w[1]));
            for &p in &factors {
                assert_eq!(factorise(p), vec![p], "{p} is not prime");
            }
        }
    }

    #[test]
    fn large_primes_and_squares() {
        assert_eq!(
            factorise(u64::MAX),
            vec![3, 5, 17, 257, 641, 65537, 6700417]
        );
        assert_eq!(
            factorise(4_294_967_291 * 4_294_967_291),
            vec![4_294_967_291; 2]
        );
    }
}
