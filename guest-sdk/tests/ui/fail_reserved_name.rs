use dipla_guest::task;

#[task]
pub fn cabi_realloc(x: u64) -> u64 {
    x
}

fn main() {}
