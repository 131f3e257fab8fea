use dipla_guest::verifier;

#[verifier]
pub fn check(n: u64, factors: Vec<u64>) -> bool {
    factors.iter().product::<u64>() == n
}

fn main() {}
