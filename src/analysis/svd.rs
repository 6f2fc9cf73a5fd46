//! Singular values, principal components, and a Gaussian control matrix to compare them with.

use nalgebra::DMatrix;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal};

/// The singular values of `m`, descending (`min(rows, cols)` of them).
pub fn singular_values(m: &DMatrix<f64>) -> Vec<f64> {
    if m.is_empty() {
        return Vec::new();
    }
    let mut values: Vec<f64> = m
        .clone()
        .svd(false, false)
        .singular_values
        .iter()
        .copied()
        .collect();
    values.sort_by(|a, b| b.total_cmp(a));
    values
}

/// The top principal components of the rows of a matrix.
#[derive(Clone, Debug, PartialEq)]
pub struct PrincipalComponents {
    /// The mean row that was subtracted (length `cols`).
    pub mean: Vec<f64>,
    /// `k x cols`: the unit principal directions, largest variance first.
    pub components: DMatrix<f64>,
    /// `rows x k`: each centred row's coordinates along the directions.
    pub coords: DMatrix<f64>,
    /// Per direction, its share of the total variance of the centred rows (0 when there is none).
    pub explained: Vec<f64>,
}

/// The top `k` principal components of the rows of `m` (`k` is capped at `min(rows, cols)`):
/// the rows are centred on their mean, and the directions are the right singular vectors of the
/// centred matrix. Each direction's sign is fixed so that its entry of largest magnitude (the
/// first such on a tie) is positive.
pub fn principal_components(m: &DMatrix<f64>, k: usize) -> PrincipalComponents {
    let (rows, cols) = m.shape();
    let mean: Vec<f64> = (0..cols)
        .map(|j| if rows == 0 { 0.0 } else { m.column(j).mean() })
        .collect();
    let centred = DMatrix::from_fn(rows, cols, |i, j| m[(i, j)] - mean[j]);
    let k = k.min(rows.min(cols));
    if k == 0 {
        return PrincipalComponents {
            mean,
            components: DMatrix::zeros(0, cols),
            coords: DMatrix::zeros(rows, 0),
            explained: Vec::new(),
        };
    }
    let svd = centred.clone().svd(false, true);
    let v_t = svd.v_t.expect("requested V^T");
    let mut order: Vec<usize> = (0..svd.singular_values.len()).collect();
    order.sort_by(|&a, &b| svd.singular_values[b].total_cmp(&svd.singular_values[a]));
    let mut components = DMatrix::zeros(k, cols);
    for (row, &i) in order.iter().take(k).enumerate() {
        let mut direction = v_t.row(i).clone_owned();
        let (mut big, mut at) = (0.0, 0);
        for (j, x) in direction.iter().enumerate() {
            if x.abs() > big {
                (big, at) = (x.abs(), j);
            }
        }
        if direction[at] < 0.0 {
            direction.neg_mut();
        }
        components.row_mut(row).copy_from(&direction);
    }
    let coords = &centred * components.transpose();
    let total = centred.norm_squared();
    let explained = (0..k)
        .map(|j| {
            if total > 0.0 {
                coords.column(j).norm_squared() / total
            } else {
                0.0
            }
        })
        .collect();
    PrincipalComponents {
        mean,
        components,
        coords,
        explained,
    }
}

/// The root mean square of the entries of `m` (0 for an empty matrix).
pub fn rms(m: &DMatrix<f64>) -> f64 {
    if m.is_empty() {
        return 0.0;
    }
    (m.norm_squared() / m.len() as f64).sqrt()
}

/// A matrix of the shape of `m` with independent `N(0, sigma^2)` entries, `sigma = rms(m)` (the
/// RMS of the entries, not centred), from a ChaCha8 generator seeded with `seed`, filled
/// row-major. Its singular values are what `m`'s would be without structure.
pub fn gaussian_control(m: &DMatrix<f64>, seed: u64) -> DMatrix<f64> {
    let normal = Normal::new(0.0, rms(m)).expect("finite non-negative standard deviation");
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let (rows, cols) = m.shape();
    let values: Vec<f64> = (0..rows * cols).map(|_| normal.sample(&mut rng)).collect();
    DMatrix::from_row_slice(rows, cols, &values)
}
