//! The neuron-logit map `W_L = W_out W_U`: the direction each MLP neuron writes in the logits.

use nalgebra::DMatrix;

use super::fourier::{frequency_norms, FourierBasis};
use crate::model::{ParamId, Params};
use crate::reference::quant;

/// `M x p`: `W_L = Qw(W_out) diag(g) Qw(W_U)`, row m the logits neuron m adds per unit of
/// activation.
///
/// `Qw` is the configured weight quantiser where the model quantises the matrix (the identity
/// otherwise), since the forward pass multiplies by the effective weights; `g` is the final-norm gain when the model has a final norm
/// (the norm's per-example `1 / rms` scale is left out). For an f32 model without a final norm
/// this is exactly `W_out W_U`. (With int8 activations the neuron's activation is also rounded
/// before `W_out`; that is not part of the map.)
pub fn neuron_logit_map(params: &Params) -> DMatrix<f64> {
    let c = &params.config;
    let effective = quant::effective_params(params);
    let mut w_out = DMatrix::from_row_slice(c.d_mlp, c.d_model, effective.get(ParamId::WOut));
    if c.final_norm {
        for (j, &g) in params.get(ParamId::LnFinal).iter().enumerate() {
            w_out.column_mut(j).scale_mut(g);
        }
    }
    // Only the p label outputs: an `=` output (never a label) has no place on the circle.
    let w_u = DMatrix::from_row_slice(c.d_model, c.d_vocab_out(), effective.get(ParamId::WU));
    w_out * w_u.columns(0, c.p)
}

/// Per frequency `1..=K` (index 0 = frequency 1), the Fourier norm of a neuron-logit map
/// (`M x p`) along its output axis: the L2 norm over all neurons of the `cos k`, `sin k`
/// coefficients of each row.
pub fn logit_map_frequency_norms(w_l: &DMatrix<f64>, basis: &FourierBasis) -> Vec<f64> {
    assert_eq!(
        w_l.ncols(),
        basis.p,
        "the output axis must have p = {} entries",
        basis.p
    );
    frequency_norms(&basis.transform(&w_l.transpose()))
}
