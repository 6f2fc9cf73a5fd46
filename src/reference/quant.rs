//! The quantisers and the normalisation of `Linear`, and the strategy that applies them.
//!
//! The model code never calls the quantisers directly: it asks a [`Quantiser`], so that a test can
//! swap them for a frozen-offset surrogate (see `tests/reference.rs`) without a second model.

use crate::model::config::{NORM_EPS, QUANT_EPS};
use crate::model::{ActQuant, ModelConfig, ParamId, Params, WeightCentre, WeightQuantiser};
use crate::model::{WeightScale, Weights};

/// `Qw`: quantises a whole weight matrix (all heads together for `W_Q`, `W_K`, `W_V`, `W_O`):
/// `scale * codes` ([`weight_codes`]), the identity for f32 weights.
pub fn weight(w: &[f64], quantiser: impl Into<WeightQuantiser>) -> Vec<f64> {
    let q = quantiser.into();
    if q.weights == Weights::F32 {
        return w.to_vec();
    }
    let (codes, scale) = weight_codes(w, q);
    codes.iter().map(|&c| f64::from(c) * scale).collect()
}

/// The codes (-1, 0, +1) and the scale of a binary or ternary `Qw(w)`. With `x = w`, or
/// `x = w - mean w` when centred:
/// - binary: `-1` where `w < mean w`, else `+1` (exactly two values: a weight at the mean counts
///   as +1, where `torch.sign` would give 0, as the sign bits the shaders pack it into can only
///   say); scale `mean|x|`;
/// - ternary: `clamp(round(x / g), -1, 1)` (ties to even), scale `g = max(mean|x|, 1e-5)`;
///
/// and scale 1 with `--weight-scale none`.
pub fn weight_codes(w: &[f64], q: WeightQuantiser) -> (Vec<i8>, f64) {
    let x = centre(w, q.centre);
    let (codes, scale) = match q.weights {
        Weights::F32 => panic!("f32 weights have no codes"),
        Weights::Binary => {
            let mean = w.iter().sum::<f64>() / w.len() as f64;
            let codes = w.iter().map(|&v| if v < mean { -1 } else { 1 }).collect();
            (codes, mean_abs(&x))
        }
        Weights::Ternary => {
            let gamma = mean_abs(&x).max(QUANT_EPS);
            let codes = x
                .iter()
                .map(|&v| (v / gamma).round_ties_even().clamp(-1.0, 1.0) as i8)
                .collect();
            (codes, gamma)
        }
    };
    match q.scale {
        WeightScale::Absmean => (codes, scale),
        WeightScale::None => (codes, 1.0),
    }
}

/// `x - mean x` when centred, else `x`. The map is linear and symmetric, so it is also the
/// gradient's: a centred matrix's latent gradient is `centre(g)` = `g - mean g`.
pub fn centre(x: &[f64], centre: WeightCentre) -> Vec<f64> {
    match centre {
        WeightCentre::None => x.to_vec(),
        WeightCentre::Mean => {
            let mean = x.iter().sum::<f64>() / x.len() as f64;
            x.iter().map(|v| v - mean).collect()
        }
    }
}

/// The parameters the forward pass multiplies by: `Qw` of every matrix the model quantises.
pub fn effective_params(params: &Params) -> Params {
    let c = &params.config;
    let mut q = params.clone();
    for id in ParamId::all_present(c)
        .into_iter()
        .filter(|&id| c.quantises(id))
    {
        let w = weight(params.get(id), c.weight_quantiser());
        q.get_mut(id).copy_from_slice(&w);
    }
    q
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

pub use crate::model::Site;

/// Names one activation row that goes through `Qa`: which `Linear`, which example, which position.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ActRow {
    pub site: Site,
    pub example: usize,
    pub pos: usize,
}

/// How the forward pass quantises. Its backward is always straight-through, whatever this does
/// (then centred, for centred weights: see [`centre`]).
pub trait Quantiser {
    /// `Qw` of the weight matrix `id` (asked only of the matrices the model quantises).
    fn weight(&mut self, id: ParamId, w: &[f64]) -> Vec<f64>;
    /// `Qa` of one (already normalised) activation row.
    fn act(&mut self, at: ActRow, row: &[f64]) -> Vec<f64>;
}

/// The quantisers the configuration asks for.
#[derive(Clone, Copy, Debug)]
pub struct Exact {
    weights: WeightQuantiser,
    act_quant: ActQuant,
}

impl Exact {
    pub fn new(config: &ModelConfig) -> Self {
        Exact {
            weights: config.weight_quantiser(),
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
