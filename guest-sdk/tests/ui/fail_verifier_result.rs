use dipla_guest::verifier;

#[verifier]
pub fn check(n: &u64, factors: &[u64]) -> u64 {
    factors.iter().product::<u64>() - n
}

fn main() {}
