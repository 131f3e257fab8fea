use dipla_guest::task;

#[task]
pub fn length(text: &str) -> usize {
    text.len()
}

fn main() {}
