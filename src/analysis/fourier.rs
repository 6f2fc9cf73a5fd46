//! The real Fourier basis of the integers mod p, and Fourier transforms along one or two axes.
//!
//! Frequencies are numbered from 1. With `K = p / 2` (integer division) there are `K` of them:
//! for odd p that is `(p - 1) / 2`, each with a cosine and a sine row. For even p the last one,
//! `p / 2`, is the Nyquist frequency, whose sine vanishes on the integers: it has a single row,
//! `cos p/2`, the alternating vector `(-1)^x / sqrt(p)`. Everything that groups rows by frequency
//! ([`FourierBasis::rows_of`]) then gives it one row instead of two.

use nalgebra::DMatrix;
use std::f64::consts::PI;

/// An orthonormal basis of functions on `0..p`.
#[derive(Clone, Debug, PartialEq)]
pub struct FourierBasis {
    pub p: usize,
    /// `p x p`; row `i` is basis vector `i` over `x = 0..p`: row 0 the constant `1 / sqrt(p)`,
    /// row `2k - 1` `sqrt(2/p) cos(2 pi k x / p)`, row `2k` `sqrt(2/p) sin(2 pi k x / p)` (for
    /// even p the last row is the Nyquist cosine `(-1)^x / sqrt(p)`).
    pub matrix: DMatrix<f64>,
    /// `"const", "cos 1", "sin 1", ..., "cos K", "sin K"` (even p: ending with `"cos p/2"`).
    pub labels: Vec<String>,
}

/// The basis for integers mod `p` (`p >= 2`).
pub fn basis(p: usize) -> FourierBasis {
    assert!(p >= 2, "a Fourier basis needs p >= 2, got {p}");
    let mut matrix = DMatrix::zeros(p, p);
    let mut labels = vec!["const".to_string()];
    let pf = p as f64;
    for x in 0..p {
        matrix[(0, x)] = 1.0 / pf.sqrt();
    }
    for k in 1..=num_frequencies(p) {
        let nyquist = 2 * k == p;
        let scale = if nyquist { 1.0 } else { 2.0f64.sqrt() } / pf.sqrt();
        for x in 0..p {
            // k x is reduced mod p first, so the angle stays in [0, 2 pi).
            let theta = 2.0 * PI * ((k * x) % p) as f64 / pf;
            matrix[(2 * k - 1, x)] = scale * theta.cos();
            if !nyquist {
                matrix[(2 * k, x)] = scale * theta.sin();
            }
        }
        labels.push(format!("cos {k}"));
        if !nyquist {
            labels.push(format!("sin {k}"));
        }
    }
    debug_assert_eq!(labels.len(), p);
    FourierBasis { p, matrix, labels }
}

/// Number of frequencies `K = p / 2` (integer division: `(p - 1) / 2` for odd p; for even p it
/// includes the Nyquist frequency `p / 2`).
pub fn num_frequencies(p: usize) -> usize {
    p / 2
}

impl FourierBasis {
    /// Number of frequencies, [`num_frequencies`] of `p`.
    pub fn num_frequencies(&self) -> usize {
        num_frequencies(self.p)
    }

    /// The basis rows of frequency `k` (1-based): `[cos k, sin k]`, or `[cos k]` for Nyquist.
    pub fn rows_of(&self, k: usize) -> Vec<usize> {
        rows_of(self.p, k)
    }

    /// Coefficients of the columns of `x` (`p x D`, one function of `0..p` per column):
    /// `matrix * x`, `p x D`, row `i` the coefficient of basis vector `i`.
    pub fn transform(&self, x: &DMatrix<f64>) -> DMatrix<f64> {
        assert_eq!(
            x.nrows(),
            self.p,
            "the transformed axis must have p = {} entries",
            self.p
        );
        &self.matrix * x
    }
}

/// The basis rows of frequency `k` (1-based) in a basis of size `p`.
pub fn rows_of(p: usize, k: usize) -> Vec<usize> {
    assert!(
        (1..=num_frequencies(p)).contains(&k),
        "frequency {k} is not in 1..={} (p = {p})",
        num_frequencies(p)
    );
    if 2 * k == p {
        vec![2 * k - 1]
    } else {
        vec![2 * k - 1, 2 * k]
    }
}

/// Per frequency `k = 1..=K`, the L2 norm of the coefficient rows `cos k` and `sin k` together
/// (every column); index 0 is frequency 1. `coeffs` is `basis.matrix * X` for some `p x D` `X`
/// (its row count is p). The constant row is left out.
pub fn frequency_norms(coeffs: &DMatrix<f64>) -> Vec<f64> {
    let p = coeffs.nrows();
    (1..=num_frequencies(p))
        .map(|k| {
            rows_of(p, k)
                .into_iter()
                .map(|r| coeffs.row(r).norm_squared())
                .sum::<f64>()
                .sqrt()
        })
        .collect()
}

/// The two-dimensional transform of a function of `(a, b)`: `B V B^T`, where
/// `V[a, b] = values[a * p + b]` (a-major). Entry `(i, j)` is the coefficient of basis vector `i`
/// along `a` times basis vector `j` along `b`.
pub fn fourier_2d(values: &[f64], basis: &FourierBasis) -> DMatrix<f64> {
    let p = basis.p;
    assert_eq!(
        values.len(),
        p * p,
        "fourier_2d needs p^2 = {} values",
        p * p
    );
    let v = DMatrix::from_row_slice(p, p, values);
    &basis.matrix * v * basis.matrix.transpose()
}
