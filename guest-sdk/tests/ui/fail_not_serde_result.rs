use dipla_guest::task;

pub struct Opaque;

#[task]
pub fn give(value: u64) -> Opaque {
    let _ = value;
    Opaque
}

fn main() {}
