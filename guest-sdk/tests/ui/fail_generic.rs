use dipla_guest::task;

#[task]
pub fn identity<T>(value: T) -> T {
    value
}

fn main() {}
