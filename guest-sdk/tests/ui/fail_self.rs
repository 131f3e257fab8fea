use dipla_guest::task;

pub struct Counter(u64);

impl Counter {
    #[task]
    pub fn get(&self) -> u64 {
        self.0
    }
}

fn main() {}
