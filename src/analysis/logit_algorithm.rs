//! The algorithm at the logits (Nanda et al. 2023): `logits(a, b, c) ≈ Σ_k α_k cos(w_k (a + b − c))`
//! on the key frequencies, and how the loss depends causally on each frequency.
//!
//! * [`clock_form_fraction`]: how much of the logits' variance that form explains. In a sharply
//!   trained model the wrong-class logits carry variance that never matters for the loss, so this
//!   is evidence beside the losses, not a verdict on its own.
//! * [`remove_frequency`], [`remove_frequency_2d`]: a frequency ablated from a function of one
//!   input (the embedding's rows) or of the pair (the MLP's output), for the ablation losses the
//!   report measures by running the model.

use std::f64::consts::PI;

use nalgebra::DMatrix;

use super::fourier::{num_frequencies, FourierBasis};

/// The fraction of the logits' variance, over all `p²` pairs and `p` classes, explained by
/// `Σ_k α_k cos(w_k (a + b − c))` over the given frequencies, with the `α_k` fitted by least
/// squares (`logits`: `p² x p`, pairs a-major).
///
/// Each pair's logits are centred first (softmax ignores a shift common to all classes, and the
/// form has mean zero over c). The regressors of distinct frequencies are orthogonal, so each `α_k`
/// is a projection and the explained fraction is the sum of their squared projections over the
/// total square. No frequencies, or logits equal within every pair, explain 0.
pub fn clock_form_fraction(logits: &DMatrix<f64>, p: usize, freqs: &[usize]) -> f64 {
    assert_eq!(
        (logits.nrows(), logits.ncols()),
        (p * p, p),
        "logits must be p^2 x p (all pairs, a-major)"
    );
    let mut freqs = freqs.to_vec();
    freqs.sort_unstable();
    freqs.dedup();
    // By the sum s = a + b: diag[s][c] = Σ_{a + b = s} (centred logit), since the form depends on
    // a and b only through s.
    let mut diag = DMatrix::<f64>::zeros(p, p);
    let mut total = 0.0;
    for i in 0..p * p {
        let row = logits.row(i);
        let mean = row.sum() / p as f64;
        let s = (i / p + i % p) % p;
        for c in 0..p {
            let x = row[c] - mean;
            diag[(s, c)] += x;
            total += x * x;
        }
    }
    if total <= 0.0 {
        return 0.0;
    }
    let explained: f64 = freqs
        .iter()
        .map(|&k| {
            assert!(
                (1..=num_frequencies(p)).contains(&k),
                "frequency {k} is not in 1..={} (p = {p})",
                num_frequencies(p)
            );
            let cos = |s: usize, c: usize| {
                (2.0 * PI * ((k * ((s + p - c) % p)) % p) as f64 / p as f64).cos()
            };
            let dot: f64 = (0..p)
                .flat_map(|s| (0..p).map(move |c| (s, c)))
                .map(|(s, c)| diag[(s, c)] * cos(s, c))
                .sum();
            // |regressor|² over the p² pairs and p classes: p³/2, or p³ at the Nyquist frequency.
            let norm_sq: f64 = p as f64
                * (0..p)
                    .flat_map(|s| (0..p).map(move |c| (s, c)))
                    .map(|(s, c)| cos(s, c).powi(2))
                    .sum::<f64>();
            dot * dot / norm_sq
        })
        .sum();
    explained / total
}

/// The columns of `x` (`p x D`, functions of one input in `0..p`) with their frequency-k
/// component removed: `x − B_kᵀ B_k x`, `B_k` the basis rows of frequency k.
pub fn remove_frequency(x: &DMatrix<f64>, basis: &FourierBasis, k: usize) -> DMatrix<f64> {
    let mut out = x.clone();
    for r in basis.rows_of(k) {
        let row = basis.matrix.row(r);
        let coeffs = row * x; // 1 x D
        out -= row.transpose() * coeffs;
    }
    out
}

/// The columns of `values` (`p² x D`, functions of the pair, a-major) with every term that
/// [`super::neurons::frequency_fractions`] credits to frequency k removed: the `(const, k)`,
/// `(k, const)` and `(k, k)` terms of the 2-D Fourier basis.
pub fn remove_frequency_2d(values: &DMatrix<f64>, basis: &FourierBasis, k: usize) -> DMatrix<f64> {
    let p = basis.p;
    assert_eq!(
        values.nrows(),
        p * p,
        "values must have p^2 = {} rows",
        p * p
    );
    let mut rows = vec![0];
    rows.extend(basis.rows_of(k));
    // The terms to remove are those in span{const, frequency k} along both axes, less the
    // (const, const) one: Bᵀ(B V Bᵀ)B − cᵀ(c V cᵀ)c, with B those basis rows and c the constant.
    let b = basis.matrix.select_rows(rows.iter());
    let c = basis.matrix.rows(0, 1).into_owned();
    let mut out = values.clone();
    for d in 0..values.ncols() {
        let v =
            DMatrix::from_row_slice(p, p, &values.column(d).iter().copied().collect::<Vec<_>>());
        let removed = b.transpose() * (&b * &v * b.transpose()) * &b
            - c.transpose() * (&c * &v * c.transpose()) * &c;
        for a in 0..p {
            for j in 0..p {
                out[(a * p + j, d)] -= removed[(a, j)];
            }
        }
    }
    out
}
