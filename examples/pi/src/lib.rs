//! Monte Carlo pi: each task throws [`SAMPLES`] points at the unit square with its own seed
//! and counts those inside the quarter circle; a reduce adds the counts; pi ≈ 4 × hits / throws.
//!
//! Floating point on purpose: with the sandbox's NaN canonicalisation and no relaxed SIMD, every
//! worker computes bit-identical counts, so the total is the same on every run.

use dipla_guest::task;

/// Points thrown by one task.
pub const SAMPLES: u64 = 1_000_000;

/// How many of [`SAMPLES`] pseudo-random points from `seed` fall inside the quarter circle.
///
/// A point is `(a / 2^53, b / 2^53)` for 53-bit integers `a` and `b` drawn with xorshift64*,
/// and it is inside when `x * x + y * y <= 1.0` in `f64`. Scaling by a power of two commutes
/// with rounding, so the test is computed as `a * a + b * b <= 2^106` on the integers as
/// `f64`: the same roundings, bit for bit, with two multiplications fewer.
#[task]
pub fn hits(seed: u64) -> u64 {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut next = move || {
        // xorshift64*, keeping the top 53 bits: exactly representable in an f64.
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        (state.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11) as f64
    };
    let one = (1u128 << 106) as f64;
    let mut inside = 0;
    for _ in 0..SAMPLES {
        let (a, b) = (next(), next());
        if a * a + b * b <= one {
            inside += 1;
        }
    }
    inside
}

/// Addition, to reduce the counts.
#[task]
pub fn add(a: u64, b: u64) -> u64 {
    a + b
}

/// Pi from a total count of hits over `tasks` tasks.
#[task]
pub fn estimate(total: u64, tasks: u64) -> f64 {
    4.0 * total as f64 / (tasks * SAMPLES) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn about_pi() {
        let total: u64 = (1..=4).map(hits).sum();
        let pi = estimate(total, 4);
        assert!((pi - std::f64::consts::PI).abs() < 0.01, "{pi}");
    }
}
