use dipla_guest::task;

pub struct Opaque;

#[task]
pub fn take(value: Opaque) -> u64 {
    let _ = value;
    1
}

fn main() {}
