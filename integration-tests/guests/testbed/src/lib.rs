//! Guest tasks for Dipla's tests and benchmarks: tiny ones, slow ones, and hostile ones that
//! try to escape or exhaust the sandbox.

use std::collections::BTreeMap;

use dipla_guest::{Explore, Flow, task, verifier};

pub mod debugging;

/// The tiny task of the throughput benchmarks.
#[task]
pub fn square(x: u64) -> u64 {
    x.wrapping_mul(x)
}

/// The second map of the chained benchmark.
#[task]
pub fn add_one(x: u64) -> u64 {
    x.wrapping_add(1)
}

/// Several parameters arrive as a JSON array.
#[task]
pub fn describe(name: String, count: u32, tags: Vec<String>) -> String {
    format!("{name} x{count} [{}]", tags.join(","))
}

/// Addition: a reducer (two parameters of the result's type).
#[task]
pub fn add(a: u64, b: u64) -> u64 {
    a.wrapping_add(b)
}

/// How many values a list has.
#[task]
pub fn count(values: Vec<u64>) -> u64 {
    values.len() as u64
}

/// One part of a scattered input: `(value, index, count)`.
#[task]
pub fn part(value: String, index: u32, count: u32) -> String {
    format!("{value}:{index}/{count}")
}

/// Searches: after some work, `x` meets the goal when it ends in 777.
#[task]
pub fn seek(x: u64) -> Flow<u64> {
    burn(x, 20_000);
    if x % 1000 == 777 {
        Flow::Stop(x)
    } else {
        Flow::Continue(x)
    }
}

/// Explores the numbers reachable from `n` by +1 and *2, up to 100.
#[task]
pub fn reach(n: u64) -> Explore<u64, u64> {
    let next = [n + 1, n * 2].into_iter().filter(|&m| m <= 100).collect();
    Explore { output: n, next }
}

/// Burns about `rounds` iterations of integer work, then returns `seed` (a slow task).
#[task]
pub fn burn(seed: u64, rounds: u64) -> u64 {
    let mut x = seed;
    for _ in 0..rounds {
        x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
    }
    std::hint::black_box(x);
    seed
}

/// Returns an error for odd numbers.
#[task]
pub fn even_only(x: u64) -> Result<u64, String> {
    if x.is_multiple_of(2) {
        Ok(x / 2)
    } else {
        Err(format!("{x} is odd"))
    }
}

/// `Option::None` (JSON `null`) for odd numbers, the number for even ones.
#[task]
pub fn maybe(x: u64) -> Option<u64> {
    x.is_multiple_of(2).then_some(x)
}

/// Accepts what [`maybe`] returns, `null` included.
#[verifier]
pub fn maybe_right(x: &u64, output: &Option<u64>) -> bool {
    *output == maybe(*x)
}

/// A `null` input read back: the number, or 0 for `null` (chains after [`maybe`]).
#[task]
pub fn or_zero(x: Option<u64>) -> u64 {
    x.unwrap_or(0)
}

/// Returns nothing: its output is `()`, JSON `null`.
#[task]
pub fn nothing(_x: u64) {}

/// Floats serde writes as `null`: NaN for 0, infinity for 1, minus infinity for 2, else `x`.
#[task]
pub fn unbounded(x: u64) -> f64 {
    match x {
        0 => f64::NAN,
        1 => f64::INFINITY,
        2 => f64::NEG_INFINITY,
        _ => x as f64,
    }
}

/// Nulls inside an output: `[[null, x], {"gap": null, "x": x}]`.
#[task]
pub fn holes(x: u64) -> (Vec<Option<u64>>, BTreeMap<String, Option<u64>>) {
    let object = BTreeMap::from([("gap".to_owned(), None), ("x".to_owned(), Some(x))]);
    (vec![None, Some(x)], object)
}

/// Never returns.
#[task]
pub fn spin(_x: u64) -> u64 {
    let mut i = 0u64;
    loop {
        i = std::hint::black_box(i.wrapping_add(1));
    }
}

/// Allocates `mb` MiB and touches every page.
#[task]
pub fn hog(mb: u64) -> u64 {
    let mut blocks = Vec::new();
    for _ in 0..mb {
        let mut block = vec![0u8; 1 << 20];
        for page in block.iter_mut().step_by(4096) {
            *page = 1;
        }
        blocks.push(block);
    }
    blocks.iter().map(|b| b.len() as u64).sum()
}

/// Recurses `depth` levels deep.
#[task]
pub fn recurse(depth: u64) -> u64 {
    fn down(n: u64) -> u64 {
        if n == 0 {
            0
        } else {
            1 + std::hint::black_box(down(std::hint::black_box(n - 1)))
        }
    }
    down(depth)
}

/// Panics with a message.
#[task]
pub fn explode(x: u64) -> u64 {
    panic!("exploded on {x}")
}

/// Reads far outside linear memory: a wasm trap that is not a panic.
#[task]
pub fn wild_read(address: u32) -> u64 {
    // SAFETY: none; this is the point. In wasm the read traps instead of doing harm.
    unsafe { std::ptr::read_volatile(address as usize as *const u64) }
}

/// Returns `len` bytes of output.
#[task]
pub fn flood(len: usize) -> String {
    "x".repeat(len)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tasks_run_natively() {
        assert_eq!(square(12), 144);
        assert_eq!(add(2, 3), 5);
        assert_eq!(seek(1777), Flow::Stop(1777));
        assert_eq!(seek(12), Flow::Continue(12));
        assert_eq!(count(vec![1, 2]), 2);
        assert_eq!(part("x".into(), 1, 3), "x:1/3");
        assert_eq!(
            describe("a".into(), 2, vec!["x".into(), "y".into()]),
            "a x2 [x,y]"
        );
        assert_eq!(burn(7, 1000), 7);
        assert_eq!(even_only(4), Ok(2));
        assert_eq!(even_only(3), Err("3 is odd".into()));
        assert_eq!(recurse(100), 100);
        assert_eq!(hog(2), 2 << 20);
        assert_eq!(flood(3), "xxx");
        assert_eq!(maybe(3), None);
        assert!(maybe_right(&3, &None) && !maybe_right(&4, &None));
        assert_eq!(or_zero(None), 0);
        assert!(unbounded(0).is_nan());
        assert_eq!(holes(2).0, vec![None, Some(2)]);
    }

    #[test]
    #[should_panic(expected = "exploded on 3")]
    fn explode_panics() {
        explode(3);
    }
}

/// Float-heavy work whose bits must match on every worker: a chain of multiplies, divisions
/// and square roots seeded by `seed`.
#[task]
pub fn wobble(seed: u64) -> f64 {
    let mut x = (seed % 1000) as f64 * 0.001 + 0.5;
    let mut y = 1.0f64;
    for i in 0..2000 {
        x = (x * 1.000_001 + f64::from(i) * 1e-9).sqrt() + 0.25;
        y = y / (x + 1.0) + x * 0.5;
    }
    x * y
}
