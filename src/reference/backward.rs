//! The manual backward pass of one example: the forward in reverse, straight-through for every
//! quantiser (`Qa` and `Qw` pass the gradient unchanged; `N` is differentiated).
//!
//! Only the last position feeds the loss, so the MLP, `W_O` and the queries are differentiated
//! there alone; the keys and values come from all three positions and so do their gradients.

use super::forward::{head, LinearInput, Model, Trace};
use super::ops::{add, add_assign, add_outer, dot, mat_vec};
use super::quant::rms_norm_backward;
use crate::model::config::N_CTX;
use crate::model::{ParamId, Params};

const LAST: usize = N_CTX - 1;

impl Model<'_> {
    /// Adds this example's gradient to `grads`, given `dL/d logits`.
    pub fn backward(&self, trace: &Trace, d_logits: &[f64], grads: &mut Params) {
        let d_x0 = self.backward_to_x0(trace, d_logits, grads);
        self.embed_backward(trace, &d_x0, grads);
    }

    /// Adds this example's gradient to `grads` for every parameter but the embeddings, and returns
    /// `dL/d x0` at every position (the residual-stream inputs `W_E[tok] (+ W_pos)`), given
    /// `dL/d logits`.
    pub fn backward_to_x0(
        &self,
        trace: &Trace,
        d_logits: &[f64],
        grads: &mut Params,
    ) -> [Vec<f64>; N_CTX] {
        let d_resid_final = self.unembed_backward(trace, d_logits, grads);
        // x2 = x1 + MLP(x1)
        let d_x1 = add(
            &d_resid_final,
            &self.mlp_backward(trace, &d_resid_final, grads),
        );
        // x1 = x0 + Linear(z, W_O) + b_O
        self.bias_backward(ParamId::BO, &d_x1, grads);
        let d_z = linear_backward(
            &trace.z_in[LAST],
            &self.w_o,
            &d_x1,
            grads.get_mut(ParamId::WO),
        );
        let mut d_x0: [Vec<f64>; N_CTX] = std::array::from_fn(|_| vec![0.0; self.config.d_model]);
        add_assign(&mut d_x0[LAST], &d_x1);
        self.attention_backward(trace, &d_z, &mut d_x0, grads);
        d_x0
    }

    /// From `dL/d logits` to `dL/d x2` at the last position, through `W_U` and the final norm.
    fn unembed_backward(&self, trace: &Trace, d_logits: &[f64], grads: &mut Params) -> Vec<f64> {
        self.bias_backward(ParamId::BU, d_logits, grads);
        add_outer(grads.get_mut(ParamId::WU), &trace.unembed_in, d_logits);
        let d_unembed_in = mat_vec(&self.w_u, d_logits);
        let Some((normed, inv_rms)) = &trace.final_normed else {
            return d_unembed_in;
        };
        let gain = self.params.get(ParamId::LnFinal);
        let d_gain: Vec<f64> = d_unembed_in
            .iter()
            .zip(normed)
            .map(|(d, u)| d * u)
            .collect();
        add_assign(grads.get_mut(ParamId::LnFinal), &d_gain);
        let d_normed: Vec<f64> = d_unembed_in.iter().zip(gain).map(|(d, g)| d * g).collect();
        rms_norm_backward(normed, *inv_rms, &d_normed)
    }

    /// The MLP's share of `dL/d x1` at the last position, given `dL/d x2` there.
    fn mlp_backward(&self, trace: &Trace, d_resid_final: &[f64], grads: &mut Params) -> Vec<f64> {
        self.bias_backward(ParamId::BOut, d_resid_final, grads);
        let d_post = linear_backward(
            &trace.mlp_out_in[LAST],
            &self.w_out,
            d_resid_final,
            grads.get_mut(ParamId::WOut),
        );
        let d_pre: Vec<f64> = d_post
            .iter()
            .zip(&trace.mlp_pre[LAST])
            .map(|(&d, &pre)| if pre > 0.0 { d } else { 0.0 })
            .collect();
        self.bias_backward(ParamId::BIn, &d_pre, grads);
        linear_backward(
            &trace.mlp_in[LAST],
            &self.w_in,
            &d_pre,
            grads.get_mut(ParamId::WIn),
        )
    }

    /// From `dL/d z` at the last position to `W_Q`, `W_K`, `W_V` and `dL/d x0` at every position.
    fn attention_backward(
        &self,
        trace: &Trace,
        d_z: &[f64],
        d_x0: &mut [Vec<f64>; N_CTX],
        grads: &mut Params,
    ) {
        let (d_q, d_k, d_v) = self.scores_backward(trace, d_z);
        self.bias_backward(ParamId::BQ, &d_q, grads);
        for pos in 0..N_CTX {
            self.bias_backward(ParamId::BK, &d_k[pos], grads);
            self.bias_backward(ParamId::BV, &d_v[pos], grads);
        }
        let dh = self.config.d_head;
        for pos in 0..N_CTX {
            let input = &trace.qkv_in[pos].quantised;
            let mut d_input =
                heads_backward(input, &self.w_k, &d_k[pos], grads.get_mut(ParamId::WK), dh);
            add_assign(
                &mut d_input,
                &heads_backward(input, &self.w_v, &d_v[pos], grads.get_mut(ParamId::WV), dh),
            );
            if pos == LAST {
                add_assign(
                    &mut d_input,
                    &heads_backward(input, &self.w_q, &d_q, grads.get_mut(ParamId::WQ), dh),
                );
            }
            add_assign(&mut d_x0[pos], &trace.qkv_in[pos].backward(d_input));
        }
    }

    /// Through `z = pattern @ v` and the softmax of `q.k / sqrt(d_head)` for the last query:
    /// returns `dL/dq` (last position) and `dL/dk`, `dL/dv` (every position), heads concatenated.
    fn scores_backward(
        &self,
        trace: &Trace,
        d_z: &[f64],
    ) -> (Vec<f64>, [Vec<f64>; N_CTX], [Vec<f64>; N_CTX]) {
        let dh = self.config.d_head;
        let scale = 1.0 / (dh as f64).sqrt();
        let zeros = || vec![0.0; self.config.d_attn()];
        let (mut d_q, mut d_k, mut d_v) = (
            zeros(),
            std::array::from_fn(|_| zeros()),
            std::array::from_fn(|_| zeros()),
        );
        for h in 0..self.config.n_heads {
            let pattern = &trace.pattern[(h * N_CTX + LAST) * N_CTX..][..N_CTX];
            let d_z_head = head(d_z, h, dh);
            let d_pattern: Vec<f64> = trace
                .v
                .iter()
                .map(|v| dot(d_z_head, head(v, h, dh)))
                .collect();
            // Softmax: d score_j = p_j (d p_j - sum_k p_k d p_k); masked keys have p_j = 0.
            let mean = dot(pattern, &d_pattern);
            for key in 0..N_CTX {
                let d_score = pattern[key] * (d_pattern[key] - mean) * scale;
                axpy(head_mut(&mut d_v[key], h, dh), pattern[key], d_z_head);
                axpy(
                    head_mut(&mut d_q, h, dh),
                    d_score,
                    head(&trace.k[key], h, dh),
                );
                axpy(
                    head_mut(&mut d_k[key], h, dh),
                    d_score,
                    head(&trace.q[LAST], h, dh),
                );
            }
        }
        (d_q, d_k, d_v)
    }

    /// `dL/db += dL/dy` for `y = ... + b`, when the model has biases.
    fn bias_backward(&self, bias: ParamId, d_out: &[f64], grads: &mut Params) {
        if self.config.biases {
            add_assign(grads.get_mut(bias), d_out);
        }
    }

    /// Scatters `dL/d x0` into the token and position embeddings.
    fn embed_backward(&self, trace: &Trace, d_x0: &[Vec<f64>; N_CTX], grads: &mut Params) {
        let d = self.config.d_model;
        for (pos, d_x) in d_x0.iter().enumerate() {
            let token = trace.tokens[pos];
            add_assign(
                &mut grads.get_mut(ParamId::WE)[token * d..(token + 1) * d],
                d_x,
            );
            if self.config.pos_embed {
                add_assign(
                    &mut grads.get_mut(ParamId::WPos)[pos * d..(pos + 1) * d],
                    d_x,
                );
            }
        }
    }
}

/// Backward of `Linear(x, W)` for one row: adds `dL/dW` (the latent weight gets the gradient of
/// the quantised one) and returns `dL/dx`.
fn linear_backward(
    input: &LinearInput,
    w_quantised: &[f64],
    d_out: &[f64],
    d_w: &mut [f64],
) -> Vec<f64> {
    add_outer(d_w, &input.quantised, d_out);
    input.backward(mat_vec(w_quantised, d_out))
}

/// Backward of `concat_h x @ W[h]` ([`super::forward::heads`]): adds `dL/dW`, returns `dL/dx`.
fn heads_backward(x: &[f64], w: &[f64], d_out: &[f64], d_w: &mut [f64], d_head: usize) -> Vec<f64> {
    let mut d_x = vec![0.0; x.len()];
    let head_len = x.len() * d_head;
    for (h, (w_head, d_w_head)) in w
        .chunks_exact(head_len)
        .zip(d_w.chunks_exact_mut(head_len))
        .enumerate()
    {
        let d_out_head = head(d_out, h, d_head);
        add_outer(d_w_head, x, d_out_head);
        add_assign(&mut d_x, &mat_vec(w_head, d_out_head));
    }
    d_x
}

fn head_mut(x: &mut [f64], h: usize, d_head: usize) -> &mut [f64] {
    &mut x[h * d_head..(h + 1) * d_head]
}

/// `y += a x`.
fn axpy(y: &mut [f64], a: f64, x: &[f64]) {
    y.iter_mut().zip(x).for_each(|(y, x)| *y += a * x);
}
