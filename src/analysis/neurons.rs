//! MLP neurons in the two-dimensional Fourier basis over `(a, b)`, and their frequency clusters.

use nalgebra::DMatrix;

use super::fourier::{fourier_2d, FourierBasis};

/// `M x K`: for each neuron (a column of `acts`, `p^2 x M`, rows a-major over `(a, b)`), the
/// fraction of its variance explained by each frequency `k = 1..=K` (column `k - 1`).
///
/// The neuron's activations are transformed with [`fourier_2d`] into coefficients `C[i, j]`
/// (basis vector `i` along `a`, `j` along `b`). Its variance is the sum of the squared
/// coefficients except the constant-constant one `C[0, 0]^2` (the mean). Frequency `k` explains
/// the terms `(const, cos/sin k)`, `(cos/sin k, const)` and the four `(cos/sin k, cos/sin k)`
/// products. Terms mixing two different frequencies belong to none, so a neuron's fractions sum to
/// at most 1. A neuron of no variance (constant, e.g. dead: variance at most 1e-12 of its mean
/// square, i.e. zero up to rounding) has all fractions 0.
pub fn frequency_fractions(acts: &DMatrix<f64>, basis: &FourierBasis) -> DMatrix<f64> {
    let p = basis.p;
    assert_eq!(acts.nrows(), p * p, "acts must have p^2 = {} rows", p * p);
    let k_count = basis.num_frequencies();
    // The frequency of each basis row, 0 for the constant.
    let mut freq_of = vec![0usize; p];
    for k in 1..=k_count {
        for r in basis.rows_of(k) {
            freq_of[r] = k;
        }
    }
    let mut fractions = DMatrix::zeros(acts.ncols(), k_count);
    for m in 0..acts.ncols() {
        let values: Vec<f64> = acts.column(m).iter().copied().collect();
        let c = fourier_2d(&values, basis);
        let mut per_freq = vec![0.0; k_count + 1];
        let mut total = 0.0;
        for i in 0..p {
            for j in 0..p {
                if i == 0 && j == 0 {
                    continue;
                }
                let sq = c[(i, j)] * c[(i, j)];
                total += sq;
                let (fi, fj) = (freq_of[i], freq_of[j]);
                if fi == fj || fi == 0 || fj == 0 {
                    per_freq[fi.max(fj)] += sq;
                }
            }
        }
        // Constant up to rounding: the transform leaves ~1e-16 relative residue off (0, 0).
        if total > 1e-12 * (total + c[(0, 0)] * c[(0, 0)]) {
            for k in 1..=k_count {
                fractions[(m, k - 1)] = per_freq[k] / total;
            }
        }
    }
    fractions
}

/// For each neuron (row of `fractions`, `M x K`), the frequency (1-based) whose fraction is at
/// least `threshold` (Nanda et al. use 0.85), or `None`. For `threshold > 0.5` at most one
/// frequency qualifies; for lower thresholds the largest fraction wins (lowest frequency on a tie).
pub fn clusters(fractions: &DMatrix<f64>, threshold: f64) -> Vec<Option<usize>> {
    fractions
        .row_iter()
        .map(|row| {
            let (best, &value) = row.iter().enumerate().fold(
                None,
                |best: Option<(usize, &f64)>, (k, v)| match best {
                    Some((_, b)) if b >= v => best,
                    _ => Some((k, v)),
                },
            )?;
            (value >= threshold).then_some(best + 1)
        })
        .collect()
}

/// Per frequency `1..=num_frequencies` (index 0 = frequency 1), how many neurons its cluster has.
/// Neurons in no cluster are not counted (see [`unclustered`]).
pub fn cluster_sizes(clusters: &[Option<usize>], num_frequencies: usize) -> Vec<usize> {
    let mut sizes = vec![0; num_frequencies];
    for &k in clusters.iter().flatten() {
        sizes[k - 1] += 1;
    }
    sizes
}

/// How many neurons are in no cluster.
pub fn unclustered(clusters: &[Option<usize>]) -> usize {
    clusters.iter().filter(|c| c.is_none()).count()
}
