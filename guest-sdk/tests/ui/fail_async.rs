use dipla_guest::task;

#[task]
pub async fn later(x: u64) -> u64 {
    x
}

fn main() {}
