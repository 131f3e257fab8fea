use dipla_guest::task;

#[task(name = "other")]
pub fn square(x: u64) -> u64 {
    x * x
}

fn main() {}
