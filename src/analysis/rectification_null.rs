//! A null for post-ReLU frequency clusters, calibrated to one run.
//!
//! Rectifying a neuron moves variance out of its frequency into harmonics and cross-frequency
//! products, the more the less often it fires. So "few neurons pass the post-ReLU cut" can mean
//! two things: the neurons mix frequencies, or they are single-frequency neurons that fire rarely.
//! The null tells them apart. For every neuron with variance, it builds synthetic neurons that
//! share what the cut is sensitive to and nothing else:
//!
//! * its shape in its dominant frequency: the neuron's own pre-ReLU component in that frequency
//!   (the `(const, k)`, `(k, const)` and `(k, k)` terms), scaled to unit variance;
//! * its pre-ReLU purity `q` (the dominant frequency's share): white Gaussian noise in every other
//!   non-constant direction of the 2-D Fourier basis makes up the remaining `1 − q`, so the
//!   synthetic neuron has exactly the real one's purity (`q = 1`: the pure null);
//! * its firing rate: the offset is set so that it fires on the same number of pairs;
//!
//! then rectifies them and measures them as the real ones are. The fraction of synthetic neurons
//! that pass a threshold is what rectification alone would leave of neurons of that purity and
//! sparsity: a run whose real post-ReLU fraction matches it loses its clusters to rectification;
//! one well below it has neurons whose mixing goes beyond their pre-ReLU impurity.

use nalgebra::DMatrix;
use rand::SeedableRng;
use rand_distr::{Distribution, StandardNormal};

use super::fourier::{fourier_2d, FourierBasis};
use super::neuron_measures::NeuronProfile;
use super::neurons::frequency_fractions;

/// Synthetic neurons per real one.
pub const DRAWS: usize = 4;

/// The largest post-ReLU share of each synthetic neuron: `draws` per real neuron with variance,
/// in neuron order. `pre_profiles` are the neurons' pre-ReLU profiles (one per column of `pre`);
/// `purity` overrides every neuron's pre-ReLU purity (`Some(1.0)`: the pure null); `None` uses
/// each neuron's own. Seeded: the same inputs give the same null.
pub fn null_max_shares(
    pre: &DMatrix<f64>,
    pre_profiles: &[NeuronProfile],
    basis: &FourierBasis,
    purity: Option<f64>,
    draws: usize,
    seed: u64,
) -> Vec<f64> {
    assert_eq!(pre_profiles.len(), pre.ncols(), "one profile per neuron");
    let p = basis.p;
    let freq_of = frequency_of_rows(basis);
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let mut shares = Vec::new();
    let mut synthetic = DMatrix::<f64>::zeros(p * p, draws);
    for (m, profile) in pre_profiles.iter().enumerate().take(pre.ncols()) {
        let Some(k) = profile.dominant else { continue };
        let q = purity.unwrap_or(profile.max_share).clamp(0.0, 1.0);
        let column: Vec<f64> = pre.column(m).iter().copied().collect();
        let rate = column.iter().filter(|&&x| x > 0.0).count();
        let coeffs = fourier_2d(&column, basis);
        // The dominant frequency's terms of the real neuron, at unit total square.
        let signal = unit(&keep_terms(&coeffs, &freq_of, |fi, fj| {
            in_frequency(fi, fj, k)
        }));
        for d in 0..draws {
            let noise: DMatrix<f64> =
                DMatrix::from_fn(p, p, |_, _| StandardNormal.sample(&mut rng));
            let noise = unit(&keep_terms(&noise, &freq_of, |fi, fj| {
                (fi, fj) != (0, 0) && !in_frequency(fi, fj, k)
            }));
            let mixed = signal.scale(q.sqrt()) + noise.scale((1.0 - q).sqrt());
            // Back to values over (a, b): the basis is orthonormal, so B^T C B inverts B V B^T.
            let values = basis.matrix.transpose() * mixed * &basis.matrix;
            let values: Vec<f64> = values.transpose().iter().copied().collect();
            synthetic.set_column(
                d,
                &DMatrix::from_column_slice(p * p, 1, &fire_on(&values, rate)).column(0),
            );
        }
        let post = frequency_fractions(&synthetic, basis);
        shares.extend(post.row_iter().map(|row| row.max()));
    }
    shares
}

/// The frequency of each basis row (0 for the constant).
fn frequency_of_rows(basis: &FourierBasis) -> Vec<usize> {
    let mut freq_of = vec![0usize; basis.p];
    for k in 1..=basis.num_frequencies() {
        for r in basis.rows_of(k) {
            freq_of[r] = k;
        }
    }
    freq_of
}

/// The terms [`frequency_fractions`] credits to frequency k: `(const, k)`, `(k, const)`, `(k, k)`.
fn in_frequency(fi: usize, fj: usize, k: usize) -> bool {
    (fi == k || fi == 0) && (fj == k || fj == 0) && (fi, fj) != (0, 0)
}

/// The 2-D coefficients whose (row, column) frequencies pass `keep`; the others zeroed.
fn keep_terms(
    coeffs: &DMatrix<f64>,
    freq_of: &[usize],
    keep: impl Fn(usize, usize) -> bool,
) -> DMatrix<f64> {
    DMatrix::from_fn(coeffs.nrows(), coeffs.ncols(), |i, j| {
        if keep(freq_of[i], freq_of[j]) {
            coeffs[(i, j)]
        } else {
            0.0
        }
    })
}

fn unit(m: &DMatrix<f64>) -> DMatrix<f64> {
    let norm = m.norm();
    if norm > 0.0 {
        m / norm
    } else {
        m.clone()
    }
}

/// `max(x − c, 0)` with the offset c set so that exactly `count` values stay positive (the
/// `count` largest; all of them for `count` = len, none for 0).
pub fn fire_on(values: &[f64], count: usize) -> Vec<f64> {
    let mut sorted = values.to_vec();
    sorted.sort_by(|a, b| b.total_cmp(a));
    let offset = match count {
        0 => sorted[0],
        c if c >= sorted.len() => sorted[sorted.len() - 1] - 1.0,
        // Midway between the last value that fires and the first that does not.
        c => 0.5 * (sorted[c - 1] + sorted[c]),
    };
    values.iter().map(|&x| (x - offset).max(0.0)).collect()
}
