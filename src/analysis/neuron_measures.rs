//! How MLP neurons carry frequencies, as distributions rather than one cut.
//!
//! Nanda et al. call a neuron "clustered" when one frequency explains ≥ 85% of its post-ReLU
//! variance. That single cut is fragile: a pure cosine rectified at its mean keeps only 84% of its
//! variance in the fundamental (the rest goes to harmonics, see [`rectified_cosine_share`]), so a
//! neuron that fires on fewer pairs fails it however clean its input is. Here every neuron gets the
//! whole profile, on pre-ReLU and post-ReLU activations: its largest and two largest shares, how
//! many frequencies it needs for 85% of its variance, the variance no single frequency explains,
//! how often it fires and how much it matters to the logits; clustered fractions come as curves
//! over the threshold, plain and importance-weighted.

use nalgebra::DMatrix;

/// The variance target of [`NeuronProfile::frequencies_needed`].
pub const VARIANCE_TARGET: f64 = 0.85;

/// Thresholds of the clustered-fraction curves: 0.50, 0.55, ..., 0.95.
pub fn threshold_grid() -> Vec<f64> {
    (0..10).map(|i| 0.5 + 0.05 * i as f64).collect()
}

/// One neuron's frequency profile, from its row of per-frequency variance fractions
/// ([`super::neurons::frequency_fractions`]).
#[derive(Clone, Debug, PartialEq)]
pub struct NeuronProfile {
    /// The frequency (1-based) with the largest share; `None` for a neuron of no variance.
    pub dominant: Option<usize>,
    /// The largest share.
    pub max_share: f64,
    /// The two largest shares together.
    pub top2_share: f64,
    /// How many frequencies (largest first) reach [`VARIANCE_TARGET`] of the variance; `None`
    /// when all of them together do not (too much of it mixes frequencies).
    pub frequencies_needed: Option<usize>,
    /// The variance in terms that mix two different frequencies: 1 − Σ shares (0 for a neuron
    /// of no variance).
    pub cross_frequency: f64,
}

impl NeuronProfile {
    pub fn of(shares: &[f64]) -> NeuronProfile {
        let mut sorted: Vec<(usize, f64)> = shares.iter().copied().enumerate().collect();
        // Largest first; the lower frequency first on a tie.
        sorted.sort_by(|x, y| y.1.total_cmp(&x.1).then(x.0.cmp(&y.0)));
        let total: f64 = shares.iter().sum();
        if total <= 0.0 {
            return NeuronProfile {
                dominant: None,
                max_share: 0.0,
                top2_share: 0.0,
                frequencies_needed: None,
                cross_frequency: 0.0,
            };
        }
        let mut cumulative = 0.0;
        let mut needed = None;
        for (i, &(_, share)) in sorted.iter().enumerate() {
            cumulative += share;
            // A small allowance for rounding: a pure neuron's share can be 0.85 - 1e-16.
            if cumulative >= VARIANCE_TARGET - 1e-12 {
                needed = Some(i + 1);
                break;
            }
        }
        NeuronProfile {
            dominant: Some(sorted[0].0 + 1),
            max_share: sorted[0].1,
            top2_share: sorted.iter().take(2).map(|s| s.1).sum(),
            frequencies_needed: needed,
            cross_frequency: (1.0 - total).max(0.0),
        }
    }

    /// The profile of every neuron (row) of an `M x K` fraction matrix.
    pub fn all(fractions: &DMatrix<f64>) -> Vec<NeuronProfile> {
        fractions
            .row_iter()
            .map(|row| NeuronProfile::of(&row.iter().copied().collect::<Vec<_>>()))
            .collect()
    }
}

/// Per neuron (column of the `p² x M` pre-ReLU activations), the fraction of pairs on which it
/// fires (pre-activation > 0).
pub fn firing_rates(pre: &DMatrix<f64>) -> Vec<f64> {
    let n = pre.nrows() as f64;
    pre.column_iter()
        .map(|col| col.iter().filter(|&&x| x > 0.0).count() as f64 / n)
        .collect()
}

/// Per neuron, how much it matters to the logits: the standard deviation of its post-ReLU
/// activation over the pairs times the norm of its row of the neuron-logit map `W_L` (`M x p`),
/// the typical size of what it writes into the logits.
pub fn importance(post: &DMatrix<f64>, w_l: &DMatrix<f64>) -> Vec<f64> {
    assert_eq!(
        post.ncols(),
        w_l.nrows(),
        "one row of W_L per neuron is needed"
    );
    post.column_iter()
        .zip(w_l.row_iter())
        .map(|(col, row)| {
            let n = col.len() as f64;
            let mean = col.sum() / n;
            let var = col.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>() / n;
            var.sqrt() * row.norm()
        })
        .collect()
}

/// What each neuron reads from the residual stream, `W_in x` over the pairs: the `p² x M`
/// pre-activations less their bias, times the per-pair `scale` the MLP input's per-token norm
/// divided the residual by (its RMS; all ones without a norm, when this is `pre` less a constant
/// and has `pre`'s frequency shares).
///
/// Why it matters: a neuron that reads one frequency can still spread its pre-activation over
/// many once divided by a scale that varies with the pair. The quotient mixes the neuron's
/// frequency with the scale's, and its mean term carries the scale's frequencies alone, so the
/// pre-ReLU shares of a normed model conflate what neurons read with what the norm does.
pub fn readout(pre: &DMatrix<f64>, bias: Option<&[f64]>, scale: &[f64]) -> DMatrix<f64> {
    assert_eq!(scale.len(), pre.nrows(), "one scale per pair");
    if let Some(b) = bias {
        assert_eq!(b.len(), pre.ncols(), "one bias per neuron");
    }
    DMatrix::from_fn(pre.nrows(), pre.ncols(), |i, m| {
        (pre[(i, m)] - bias.map_or(0.0, |b| b[m])) * scale[i]
    })
}

/// The coefficient of variation (standard deviation over mean) of positive values: how much a
/// per-pair scale varies. 0 for a constant; NaN for no values.
pub fn variation(values: &[f64]) -> f64 {
    let n = values.len() as f64;
    let mean = values.iter().sum::<f64>() / n;
    let var = values.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>() / n;
    var.sqrt() / mean
}

/// For each threshold, the weighted fraction of neurons whose largest share reaches it:
/// `Σ w [max_share ≥ t] / Σ w` (plain fraction with unit weights). No weight at all gives 0.
pub fn clustered_curve(max_shares: &[f64], weights: &[f64], thresholds: &[f64]) -> Vec<f64> {
    assert_eq!(max_shares.len(), weights.len(), "one weight per neuron");
    let total: f64 = weights.iter().sum();
    thresholds
        .iter()
        .map(|&t| {
            if total <= 0.0 {
                return 0.0;
            }
            max_shares
                .iter()
                .zip(weights)
                .filter(|(&m, _)| m >= t)
                .fold(0.0, |sum, (_, &w)| sum + w)
                / total
        })
        .collect()
}

/// The share of a rectified cosine's variance that stays in its fundamental: for
/// `f(θ) = max(cos θ − c, 0)` over a uniform phase θ, with `c` set so that f is positive on a
/// fraction `rate` of the phases (`c = cos(π · rate)`), `(a₁² / 2) / Var f`, where `a₁` is f's first
/// Fourier coefficient. It is 1 for a neuron that always fires, 0.8407 for one that fires half
/// the time and falls towards 0.5 as the firing rate goes to 0: the most a single-frequency
/// neuron can show post-ReLU, which the null of [`super::rectification_null`] reproduces.
pub fn rectified_cosine_share(rate: f64) -> f64 {
    use std::f64::consts::PI;
    assert!(
        (0.0..=1.0).contains(&rate) && rate > 0.0,
        "a firing rate in (0, 1], got {rate}"
    );
    let alpha = PI * rate;
    let (s, c) = (alpha.sin(), alpha.cos());
    let a1 = (alpha - s * c) / PI;
    let mean = (s - alpha * c) / PI;
    let mean_square = (alpha + s * c - 4.0 * c * s + 2.0 * alpha * c * c) / (2.0 * PI);
    (a1 * a1 / 2.0) / (mean_square - mean * mean)
}
