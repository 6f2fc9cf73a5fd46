//! The forward pass of one example, keeping every intermediate the backward needs.

use super::ops::{add, dot, vec_mat};
use super::quant::{self, ActRow, Quantiser, Site};
use crate::model::config::N_CTX;
use crate::model::{LinearNorm, ModelConfig, ParamId, Params};

/// The parameters of one pass, every weight matrix the model quantises already through `Qw`
/// (`w_pos` is empty without positional embeddings).
pub(super) struct Model<'a> {
    pub config: &'a ModelConfig,
    pub params: &'a Params,
    pub w_e: Vec<f64>,
    pub w_pos: Vec<f64>,
    pub w_u: Vec<f64>,
    pub w_q: Vec<f64>,
    pub w_k: Vec<f64>,
    pub w_v: Vec<f64>,
    pub w_o: Vec<f64>,
    pub w_in: Vec<f64>,
    pub w_out: Vec<f64>,
}

/// The input side of one `Linear` row: `N(x)` and `Qa(N(x))`.
pub(super) struct LinearInput {
    normed: Vec<f64>,
    /// `Some(1 / rms)` when `N` is an RMS norm.
    inv_rms: Option<f64>,
    /// What multiplies the (quantised) weight matrix.
    pub quantised: Vec<f64>,
}

/// Every intermediate of one example. Per-position arrays are indexed by position.
pub(super) struct Trace {
    pub tokens: [usize; N_CTX],
    pub qkv_in: [LinearInput; N_CTX],
    /// Queries, keys and values, heads concatenated (`[H * d_head]`).
    pub q: [Vec<f64>; N_CTX],
    pub k: [Vec<f64>; N_CTX],
    pub v: [Vec<f64>; N_CTX],
    /// `[H, query, key]`.
    pub pattern: Vec<f64>,
    pub z_in: [LinearInput; N_CTX],
    pub mlp_in: [LinearInput; N_CTX],
    pub mlp_pre: [Vec<f64>; N_CTX],
    pub mlp_post: [Vec<f64>; N_CTX],
    pub mlp_out_in: [LinearInput; N_CTX],
    /// `x1` (the residual stream the MLP reads) at the last position.
    pub resid_mid: Vec<f64>,
    /// `x2` at the last position.
    pub resid_final: Vec<f64>,
    /// The gain-free RMS norm of `resid_final` and its `1 / rms`, when `final_norm`.
    pub final_normed: Option<(Vec<f64>, f64)>,
    /// What multiplies `W_U`.
    pub unembed_in: Vec<f64>,
    pub logits: Vec<f64>,
}

impl LinearInput {
    fn new(x: &[f64], config: &ModelConfig, quantiser: &mut dyn Quantiser, at: ActRow) -> Self {
        let (normed, inv_rms) = match config.linear_norm {
            LinearNorm::None => (x.to_vec(), None),
            LinearNorm::Rms => {
                let (normed, inv_rms) = quant::rms_norm(x);
                (normed, Some(inv_rms))
            }
        };
        let quantised = quantiser.act(at, &normed);
        LinearInput {
            normed,
            inv_rms,
            quantised,
        }
    }

    /// `dL/dx` from `dL/d quantised`: straight through `Qa`, then through `N`.
    pub fn backward(&self, d_quantised: Vec<f64>) -> Vec<f64> {
        match self.inv_rms {
            None => d_quantised,
            Some(inv_rms) => quant::rms_norm_backward(&self.normed, inv_rms, &d_quantised),
        }
    }
}

impl<'a> Model<'a> {
    pub fn new(params: &'a Params, quantiser: &mut dyn Quantiser) -> Self {
        let c = &params.config;
        let mut qw = |id: ParamId| match (id.present(c), c.quantises(id)) {
            (false, _) => Vec::new(),
            (true, true) => quantiser.weight(id, params.get(id)),
            (true, false) => params.get(id).to_vec(),
        };
        Model {
            config: c,
            params,
            w_e: qw(ParamId::WE),
            w_pos: qw(ParamId::WPos),
            w_u: qw(ParamId::WU),
            w_q: qw(ParamId::WQ),
            w_k: qw(ParamId::WK),
            w_v: qw(ParamId::WV),
            w_o: qw(ParamId::WO),
            w_in: qw(ParamId::WIn),
            w_out: qw(ParamId::WOut),
        }
    }

    /// Runs example number `example` (the index only names its rows for the quantiser).
    pub fn run(
        &self,
        example: usize,
        tokens: [usize; N_CTX],
        quantiser: &mut dyn Quantiser,
    ) -> Trace {
        let c = self.config;
        let (d, dh) = (c.d_model, c.d_head);
        let mut linear_input =
            |site, pos, x: &[f64]| LinearInput::new(x, c, quantiser, ActRow { site, example, pos });

        let x0: [Vec<f64>; N_CTX] = std::array::from_fn(|pos| self.embed(tokens[pos], pos));

        let qkv_in: [_; N_CTX] = std::array::from_fn(|pos| linear_input(Site::Qkv, pos, &x0[pos]));
        let per_head = |w: &[f64], b: ParamId, pos: usize| {
            self.plus_bias(heads(&qkv_in[pos].quantised, w, dh), b)
        };
        let q: [_; N_CTX] = std::array::from_fn(|pos| per_head(&self.w_q, ParamId::BQ, pos));
        let k: [_; N_CTX] = std::array::from_fn(|pos| per_head(&self.w_k, ParamId::BK, pos));
        let v: [_; N_CTX] = std::array::from_fn(|pos| per_head(&self.w_v, ParamId::BV, pos));
        let pattern = self.attention_pattern(&q, &k);
        let z: [_; N_CTX] = std::array::from_fn(|pos| self.mix_values(&pattern, &v, pos));
        let z_in: [_; N_CTX] = std::array::from_fn(|pos| linear_input(Site::AttnOut, pos, &z[pos]));
        let x1: [_; N_CTX] = std::array::from_fn(|pos| {
            let attn_out = vec_mat(&z_in[pos].quantised, &self.w_o, d);
            add(&x0[pos], &self.plus_bias(attn_out, ParamId::BO))
        });

        let mlp_in: [_; N_CTX] =
            std::array::from_fn(|pos| linear_input(Site::MlpIn, pos, &x1[pos]));
        let mlp_pre: [_; N_CTX] = std::array::from_fn(|pos| {
            self.plus_bias(
                vec_mat(&mlp_in[pos].quantised, &self.w_in, c.d_mlp),
                ParamId::BIn,
            )
        });
        let mlp_post: [_; N_CTX] =
            std::array::from_fn(|pos| mlp_pre[pos].iter().map(|x| x.max(0.0)).collect::<Vec<_>>());
        let mlp_out_in: [_; N_CTX] =
            std::array::from_fn(|pos| linear_input(Site::MlpOut, pos, &mlp_post[pos]));

        // Only the last position reaches the logits.
        let last = N_CTX - 1;
        let mlp_out = vec_mat(&mlp_out_in[last].quantised, &self.w_out, d);
        let resid_final = add(&x1[last], &self.plus_bias(mlp_out, ParamId::BOut));
        let final_normed = c.final_norm.then(|| quant::rms_norm(&resid_final));
        let unembed_in = match &final_normed {
            None => resid_final.clone(),
            Some((normed, _)) => normed
                .iter()
                .zip(self.params.get(ParamId::LnFinal))
                .map(|(u, g)| u * g)
                .collect(),
        };
        let logits = self.plus_bias(
            vec_mat(&unembed_in, &self.w_u, c.d_vocab_out()),
            ParamId::BU,
        );

        Trace {
            tokens,
            qkv_in,
            q,
            k,
            v,
            pattern,
            z_in,
            mlp_in,
            mlp_pre,
            mlp_post,
            mlp_out_in,
            resid_mid: x1[last].clone(),
            resid_final,
            final_normed,
            unembed_in,
            logits,
        }
    }

    /// `x + b` when the model has biases.
    fn plus_bias(&self, x: Vec<f64>, bias: ParamId) -> Vec<f64> {
        if self.config.biases {
            add(&x, self.params.get(bias))
        } else {
            x
        }
    }

    /// `W_E[token] (+ W_pos[pos])`, quantised when the model quantises `embed`.
    fn embed(&self, token: usize, pos: usize) -> Vec<f64> {
        let d = self.config.d_model;
        let mut x = self.w_e[token * d..(token + 1) * d].to_vec();
        if self.config.pos_embed {
            let w_pos = &self.w_pos[pos * d..(pos + 1) * d];
            x.iter_mut().zip(w_pos).for_each(|(x, p)| *x += p);
        }
        x
    }

    /// Softmax over keys of `q.k / sqrt(d_head)`, keys after the query masked when causal.
    fn attention_pattern(&self, q: &[Vec<f64>; N_CTX], k: &[Vec<f64>; N_CTX]) -> Vec<f64> {
        let dh = self.config.d_head;
        let scale = 1.0 / (dh as f64).sqrt();
        let mut pattern = Vec::with_capacity(self.config.n_heads * N_CTX * N_CTX);
        for h in 0..self.config.n_heads {
            for (query, q_query) in q.iter().enumerate() {
                let visible = if self.config.causal { query + 1 } else { N_CTX };
                let q_head = head(q_query, h, dh);
                let scores: Vec<f64> = k[..visible]
                    .iter()
                    .map(|k_key| dot(q_head, head(k_key, h, dh)) * scale)
                    .collect();
                let mut row = softmax(&scores);
                row.resize(N_CTX, 0.0);
                pattern.extend(row);
            }
        }
        pattern
    }

    /// `z[pos] = concat_h pattern[h, pos, :] @ v[:, h]`.
    fn mix_values(&self, pattern: &[f64], v: &[Vec<f64>; N_CTX], pos: usize) -> Vec<f64> {
        let dh = self.config.d_head;
        let mut z = vec![0.0; self.config.d_attn()];
        for (h, z_head) in z.chunks_exact_mut(dh).enumerate() {
            for (key, v_key) in v.iter().enumerate() {
                let weight = pattern[(h * N_CTX + pos) * N_CTX + key];
                z_head
                    .iter_mut()
                    .zip(head(v_key, h, dh))
                    .for_each(|(z, v)| *z += weight * v);
            }
        }
        z
    }
}

/// `concat_h x @ W[h]` for `W` of shape `[H, x.len(), d_head]`.
pub(super) fn heads(x: &[f64], w: &[f64], d_head: usize) -> Vec<f64> {
    w.chunks_exact(x.len() * d_head)
        .flat_map(|w_head| vec_mat(x, w_head, d_head))
        .collect()
}

/// Head `h` of a vector of concatenated heads.
pub(super) fn head(x: &[f64], h: usize, d_head: usize) -> &[f64] {
    &x[h * d_head..(h + 1) * d_head]
}

/// Max-subtracted softmax.
pub(super) fn softmax(scores: &[f64]) -> Vec<f64> {
    let max = scores.iter().fold(f64::NEG_INFINITY, |m, &s| m.max(s));
    let exps: Vec<f64> = scores.iter().map(|s| (s - max).exp()).collect();
    let sum: f64 = exps.iter().sum();
    exps.iter().map(|e| e / sum).collect()
}
