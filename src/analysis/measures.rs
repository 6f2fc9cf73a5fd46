//! Progress measures (Nanda et al. 2023): cross-entropy, restricted and excluded logits, the Gini
//! coefficient of a set of magnitudes, and the total sum of squared weights.

use std::f64::consts::PI;

use nalgebra::DMatrix;

use super::fourier::num_frequencies;
use crate::model::Params;

/// Mean cross-entropy of `N x p` logits against `N` labels (max-subtracted log-sum-exp).
pub fn cross_entropy(logits: &DMatrix<f64>, labels: &[usize]) -> f64 {
    assert_eq!(
        logits.nrows(),
        labels.len(),
        "logits and labels disagree on N"
    );
    assert!(!labels.is_empty(), "cross-entropy of no examples");
    let total: f64 = logits
        .row_iter()
        .zip(labels)
        .map(|(row, &label)| {
            let max = row.iter().fold(f64::NEG_INFINITY, |m, &x| m.max(x));
            let lse = max + row.iter().map(|x| (x - max).exp()).sum::<f64>().ln();
            lse - row[label]
        })
        .sum();
    total / labels.len() as f64
}

/// The labels `(a + b) mod p` of all `p^2` pairs, a-major.
pub fn pair_labels(p: usize) -> Vec<usize> {
    (0..p * p).map(|i| (i / p + i % p) % p).collect()
}

/// The key-frequency components of every output class's logits along the `(a, b)` plane.
///
/// For each class `c`, the column `v(a, b) = logits[a p + b, c]` is projected onto the
/// orthogonal functions `cos(w (a + b))`, `sin(w (a + b))`, `w = 2 pi k / p` for each key
/// frequency k (deduplicated). Returns the `p^2 x p` component and, per class, the mean over the
/// pairs (the constant component). For even p the Nyquist frequency has only its cosine.
fn key_components(
    logits: &DMatrix<f64>,
    p: usize,
    key_freqs: &[usize],
) -> (DMatrix<f64>, Vec<f64>) {
    assert_eq!(
        (logits.nrows(), logits.ncols()),
        (p * p, p),
        "logits must be p^2 x p (all pairs, a-major)"
    );
    let mut freqs = key_freqs.to_vec();
    freqs.sort_unstable();
    freqs.dedup();
    for &k in &freqs {
        assert!(
            (1..=num_frequencies(p)).contains(&k),
            "key frequency {k} is not in 1..={} (p = {p})",
            num_frequencies(p)
        );
    }
    // Every function of (a + b) mod p below is a function g(s) of the sum s; on the p^2 grid
    // <g, v> = sum_s g(s) diag[s] with diag[s] = sum_a v(a, s - a), and |g|^2 = p sum_s g(s)^2.
    let mut diag = DMatrix::<f64>::zeros(p, p); // [s, c]
    for a in 0..p {
        for b in 0..p {
            let s = (a + b) % p;
            for c in 0..p {
                diag[(s, c)] += logits[(a * p + b, c)];
            }
        }
    }
    let means: Vec<f64> = (0..p)
        .map(|c| diag.column(c).sum() / (p * p) as f64)
        .collect();
    // The component as a function of s, per class: [s, c].
    let mut by_sum = DMatrix::<f64>::zeros(p, p);
    for &k in &freqs {
        let angle = |s: usize| 2.0 * PI * ((k * s) % p) as f64 / p as f64;
        let cos: Vec<f64> = (0..p).map(|s| angle(s).cos()).collect();
        let sin: Vec<f64> = (0..p).map(|s| angle(s).sin()).collect();
        for g in [cos, sin] {
            let norm_sq = p as f64 * g.iter().map(|x| x * x).sum::<f64>();
            if norm_sq < 1e-9 {
                continue; // the Nyquist sine vanishes on the integers
            }
            for c in 0..p {
                let coeff = (0..p).map(|s| g[s] * diag[(s, c)]).sum::<f64>() / norm_sq;
                for s in 0..p {
                    by_sum[(s, c)] += coeff * g[s];
                }
            }
        }
    }
    let component = DMatrix::from_fn(p * p, p, |i, c| by_sum[((i / p + i % p) % p, c)]);
    (component, means)
}

/// Restricted logits (Nanda et al.'s restricted loss, applied to the logits): for every output
/// class c, the logits over the `p^2` pairs `(a, b)` (rows, a-major) projected onto
/// `span{1, cos(w (a + b)), sin(w (a + b)) : w = 2 pi k / p, k in key_freqs}`.
/// `cross_entropy(restricted_logits(..), pair_labels(p))` is the restricted loss.
pub fn restricted_logits(logits: &DMatrix<f64>, p: usize, key_freqs: &[usize]) -> DMatrix<f64> {
    let (component, means) = key_components(logits, p, key_freqs);
    DMatrix::from_fn(p * p, p, |i, c| component[(i, c)] + means[c])
}

/// Excluded logits (Nanda et al.'s excluded loss): the logits minus their components along
/// `cos(w (a + b))` and `sin(w (a + b))` for the key frequencies, per output class (the constant
/// component is kept). `logits` is `p^2 x p`, all pairs a-major.
pub fn excluded_logits(logits: &DMatrix<f64>, p: usize, key_freqs: &[usize]) -> DMatrix<f64> {
    let (component, _) = key_components(logits, p, key_freqs);
    logits - component
}

/// The Gini coefficient of non-negative magnitudes:
/// `sum_i sum_j |x_i - x_j| / (2 n sum_i x_i)`. A one-hot vector of length n gives `(n - 1) / n`,
/// a constant one 0. Empty or all-zero input gives 0. Panics on negative or non-finite values.
pub fn gini(values: &[f64]) -> f64 {
    assert!(
        values.iter().all(|x| x.is_finite() && *x >= 0.0),
        "gini needs finite non-negative values"
    );
    let n = values.len() as f64;
    let total: f64 = values.iter().sum();
    if values.is_empty() || total == 0.0 {
        return 0.0;
    }
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    // With x ascending: sum_ij |x_i - x_j| = 2 sum_i (2 i - n - 1) x_i, i from 1.
    let weighted: f64 = sorted
        .iter()
        .enumerate()
        .map(|(i, x)| (2.0 * (i + 1) as f64 - n - 1.0) * x)
        .sum();
    weighted / (n * total)
}

/// The total sum of squares of every parameter the model has (the final-norm gain included).
pub fn sum_squares(params: &Params) -> f64 {
    params
        .iter()
        .flat_map(|(_, values)| values.iter())
        .map(|x| x * x)
        .sum()
}
