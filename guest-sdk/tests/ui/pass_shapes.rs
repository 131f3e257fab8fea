use dipla_guest::task;
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize)]
pub struct Point {
    x: f64,
    y: f64,
}

#[task]
pub fn norm(p: Point) -> f64 {
    (p.x * p.x + p.y * p.y).sqrt()
}

#[task]
pub fn checked(a: u64, b: u64) -> Result<u64, String> {
    a.checked_div(b).ok_or_else(|| "division by zero".to_owned())
}

#[task]
fn nothing() {}

#[task]
pub fn fallible(text: String) -> Result<Vec<u8>, std::num::ParseIntError> {
    text.split(',').map(str::parse).collect()
}

fn main() {
    assert!(check_square(&3, &[9]));
    assert_eq!(norm(Point { x: 3.0, y: 4.0 }), 5.0);
    assert_eq!(checked(6, 3), Ok(2));
    nothing();
    assert!(fallible("1,x".into()).is_err());
}

/// A verifier over borrowed input and output, with a slice for a `Vec`.
#[dipla_guest::verifier]
pub fn check_square(x: &u64, out: &[u64]) -> bool {
    out == [x * x]
}
