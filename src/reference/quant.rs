//! The quantisers and the normalisation of `Linear`, and the strategy that applies them.
//!
//! The model code never calls the quantisers directly: it asks a [`Quantiser`], so that a test can
//! swap them for a frozen-offset surrogate (see `tests/reference.rs`) without a second model.

use crate::model::config::{NORM_EPS, QUANT_EPS};
use crate::model::{ActQuant, ModelConfig, ParamId, Weights};

/// `Qw`: quantises a whole weight matrix (all heads together for `W_Q`, `W_K`, `W_V`, `W_O`).
pub fn weight(w: &[f64], mode: Weights) -> Vec<f64> {
    match mode {
        Weights::F32 => w.to_vec(),
        Weights::Binary => {
            // Exactly two values: a weight equal to the mean counts as +1 (where `torch.sign`
            // would give 0), as the sign bits the shaders pack it into can only say.
            let mean = w.iter().sum::<f64>() / w.len() as f64;
            let scale = mean_abs(w);
            w.iter()
                .map(|&x| if x < mean { -scale } else { scale })
                .collect()
        }
        Weights::Ternary => {
            let gamma = mean_abs(w).max(QUANT_EPS);
            w.iter()
                .map(|&x| (x / gamma).round_ties_even().clamp(-1.0, 1.0) * gamma)
                .collect()
        }
    }
}

/// `Qa` for int8: per-row absmax fake-quantisation, `s = 127 / max(max|x|, 1e-5)`.
pub fn act_int8(row: &[f64]) -> Vec<f64> {
    act_int8_scaled(row, int8_scale(row))
}

/// The scale `s` of [`act_int8`].
pub fn int8_scale(row: &[f64]) -> f64 {
    let absmax = row.iter().fold(0.0f64, |m, x| m.max(x.abs()));
    127.0 / absmax.max(QUANT_EPS)
}

/// Fake-quantises `row` to int8 at a given scale: `clamp(round(x s), -128, 127) / s`, ties to even.
///
/// With the absmax scale of [`act_int8`] the clamp never bites; it is kept (and tested) because
/// the shaders implement the same formula.
pub fn act_int8_scaled(row: &[f64], scale: f64) -> Vec<f64> {
    row.iter().map(|&x| int8_code(x, scale) / scale).collect()
}

/// The int8 code of `x` at `scale`, as in [`act_int8_scaled`].
pub fn int8_code(x: f64, scale: f64) -> f64 {
    (x * scale).round_ties_even().clamp(-128.0, 127.0)
}

/// The integer part of a `Linear` whose input is int8 codes and whose weights are binary or
/// ternary codes: `sum_k a[r, k] w[k, j]` for `rows x k` and `k x n` row-major codes, exactly.
/// The layer's output is this times the weight scale and the row's step.
pub fn integer_product(a: &[i8], w: &[i8], k: usize, n: usize) -> Vec<i64> {
    assert_eq!(w.len(), k * n, "a {k} x {n} weight matrix");
    a.chunks_exact(k)
        .flat_map(|row| {
            (0..n).map(move |j| {
                row.iter()
                    .enumerate()
                    .map(|(i, &x)| x as i64 * w[i * n + j] as i64)
                    .sum::<i64>()
            })
        })
        .collect()
}

/// `x / sqrt(mean(x^2) + 1e-5)` without gain; returns the normalised row and `1 / sqrt(...)`.
pub fn rms_norm(row: &[f64]) -> (Vec<f64>, f64) {
    let mean_sq = row.iter().map(|x| x * x).sum::<f64>() / row.len() as f64;
    let rms = (mean_sq + NORM_EPS).sqrt();
    (row.iter().map(|x| x / rms).collect(), 1.0 / rms)
}

/// Gradient through [`rms_norm`]: given `u = x r` and `dL/du`, returns `dL/dx = r (du - u mean(du u))`.
pub fn rms_norm_backward(normed: &[f64], inv_rms: f64, d_normed: &[f64]) -> Vec<f64> {
    let mean_du_u = normed
        .iter()
        .zip(d_normed)
        .map(|(u, du)| u * du)
        .sum::<f64>()
        / normed.len() as f64;
    normed
        .iter()
        .zip(d_normed)
        .map(|(u, du)| inv_rms * (du - u * mean_du_u))
        .collect()
}

fn mean_abs(w: &[f64]) -> f64 {
    w.iter().map(|x| x.abs()).sum::<f64>() / w.len() as f64
}

/// The input of one `Linear` (the attention's Q, K and V share theirs).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Site {
    /// `x0`, feeding `W_Q`, `W_K` and `W_V`.
    Qkv,
    /// `z`, the concatenated heads feeding `W_O`.
    AttnOut,
    /// `x1`, feeding `W_in`.
    MlpIn,
    /// The post-ReLU activations feeding `W_out`.
    MlpOut,
}

/// Names one activation row that goes through `Qa`: which `Linear`, which example, which position.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ActRow {
    pub site: Site,
    pub example: usize,
    pub pos: usize,
}

/// How the forward pass quantises. Its backward is always straight-through, whatever this does.
pub trait Quantiser {
    /// `Qw` of the weight matrix `id`.
    fn weight(&mut self, id: ParamId, w: &[f64]) -> Vec<f64>;
    /// `Qa` of one (already normalised) activation row.
    fn act(&mut self, at: ActRow, row: &[f64]) -> Vec<f64>;
}

/// The quantisers the configuration asks for.
#[derive(Clone, Copy, Debug)]
pub struct Exact {
    weights: Weights,
    act_quant: ActQuant,
}

impl Exact {
    pub fn new(config: &ModelConfig) -> Self {
        Exact {
            weights: config.weights,
            act_quant: config.act_quant,
        }
    }
}

impl Quantiser for Exact {
    fn weight(&mut self, _id: ParamId, w: &[f64]) -> Vec<f64> {
        weight(w, self.weights)
    }

    fn act(&mut self, _at: ActRow, row: &[f64]) -> Vec<f64> {
        match self.act_quant {
            ActQuant::None => row.to_vec(),
            ActQuant::Int8 => act_int8(row),
        }
    }
}
