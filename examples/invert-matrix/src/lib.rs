//! Exact inverse of an integer matrix, the original Dipla's matrix example done right: each
//! task computes one row of the inverse from cofactors (scattered over the rows), and a reduce
//! concatenates the rows. The reduce tree keeps input order, so the rows come out in place
//! (the original gathered them in completion order and printed a wrong inverse).
//!
//! Entries are exact fractions: determinants by the fraction-free Bareiss algorithm on `i128`.

use dipla_guest::task;
use serde::{Deserialize, Serialize};

/// A fraction in lowest terms with a positive denominator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fraction {
    /// The numerator.
    pub num: i128,
    /// The denominator (positive).
    pub den: i128,
}

impl Fraction {
    /// `num / den` in lowest terms.
    ///
    /// # Panics
    /// When `den` is zero.
    pub fn new(num: i128, den: i128) -> Self {
        assert!(den != 0, "zero denominator");
        let g = gcd(num.abs(), den.abs()).max(1);
        let sign = if den < 0 { -1 } else { 1 };
        Self {
            num: sign * num / g,
            den: sign * den / g,
        }
    }

    fn add(self, other: Self) -> Self {
        Self::new(
            self.num * other.den + other.num * self.den,
            self.den * other.den,
        )
    }

    fn mul(self, other: Self) -> Self {
        Self::new(self.num * other.num, self.den * other.den)
    }
}

fn gcd(a: i128, b: i128) -> i128 {
    if b == 0 { a } else { gcd(b, a % b) }
}

/// The determinant of a square integer matrix (Bareiss: exact, no fractions).
pub fn determinant(matrix: &[Vec<i64>]) -> i128 {
    let n = matrix.len();
    let mut m: Vec<Vec<i128>> = matrix
        .iter()
        .map(|row| row.iter().map(|&x| i128::from(x)).collect())
        .collect();
    let mut sign = 1;
    let mut previous = 1;
    for k in 0..n {
        if m[k][k] == 0 {
            let Some(swap) = (k + 1..n).find(|&i| m[i][k] != 0) else {
                return 0;
            };
            m.swap(k, swap);
            sign = -sign;
        }
        for i in k + 1..n {
            for j in k + 1..n {
                m[i][j] = (m[i][j] * m[k][k] - m[i][k] * m[k][j]) / previous;
            }
        }
        previous = m[k][k];
    }
    if n == 0 { 1 } else { sign * m[n - 1][n - 1] }
}

/// The matrix without row `skip_row` and column `skip_col`.
fn minor(matrix: &[Vec<i64>], skip_row: usize, skip_col: usize) -> Vec<Vec<i64>> {
    matrix
        .iter()
        .enumerate()
        .filter(|&(i, _)| i != skip_row)
        .map(|(_, row)| {
            row.iter()
                .enumerate()
                .filter(|&(j, _)| j != skip_col)
                .map(|(_, &x)| x)
                .collect()
        })
        .collect()
}

/// Row `index` of the inverse of `matrix`, as a one-row matrix (`count` is the row count,
/// from the scatter).
///
/// # Errors
/// When the matrix is not square or is singular.
#[task]
pub fn inverse_row(
    matrix: Vec<Vec<i64>>,
    index: usize,
    count: usize,
) -> Result<Vec<Vec<Fraction>>, String> {
    let n = matrix.len();
    if matrix.iter().any(|row| row.len() != n) || count != n || index >= n {
        return Err(format!("expected a square matrix of {count} rows"));
    }
    let det = determinant(&matrix);
    if det == 0 {
        return Err("the matrix is singular".into());
    }
    // inverse[i][j] = cofactor[j][i] / det
    let row = (0..n)
        .map(|j| {
            let sign = if (index + j).is_multiple_of(2) { 1 } else { -1 };
            Fraction::new(sign * determinant(&minor(&matrix, j, index)), det)
        })
        .collect();
    Ok(vec![row])
}

/// Concatenates rows in order (the reducer).
#[task]
pub fn stack(mut top: Vec<Vec<Fraction>>, bottom: Vec<Vec<Fraction>>) -> Vec<Vec<Fraction>> {
    top.extend(bottom);
    top
}

/// `a × b` for an integer matrix `a` and a fraction matrix `b`.
pub fn multiply(a: &[Vec<i64>], b: &[Vec<Fraction>]) -> Vec<Vec<Fraction>> {
    (0..a.len())
        .map(|i| {
            (0..b[0].len())
                .map(|j| {
                    (0..b.len()).fold(Fraction::new(0, 1), |sum, k| {
                        sum.add(Fraction::new(i128::from(a[i][k]), 1).mul(b[k][j]))
                    })
                })
                .collect()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_small_inverse_is_exact() {
        let m = vec![vec![2, 1], vec![7, 4]];
        let rows: Vec<Vec<Fraction>> = (0..2)
            .flat_map(|i| inverse_row(m.clone(), i, 2).unwrap())
            .collect();
        let identity = multiply(&m, &rows);
        for (i, row) in identity.iter().enumerate() {
            for (j, x) in row.iter().enumerate() {
                assert_eq!(*x, Fraction::new(i128::from(i == j), 1));
            }
        }
        assert_eq!(determinant(&[vec![1, 2], vec![2, 4]]), 0);
    }
}
