//! CPU reference implementation in f64: the oracle every shader is tested against.
//!
//! Tokens `[a, b, =]`, one layer, no biases:
//! `x0 = W_E[tok] (+ W_pos)`, `x1 = x0 + Attn(x0)`, `x2 = x1 + Linear(relu(Linear(x1, W_in)), W_out)`,
//! `logits = (RMSNorm_g(x2) if final_norm else x2) @ W_U` at the last position, where
//! `Linear(x, W) = Qa(N(x)) @ Qw(W)` per token. `W_E`, `W_pos`, `W_U` go through `Qw` too when
//! the model's `--quantize` scope names them. Gradients are straight-through: `Qa` and `Qw` are
//! identities backwards, except that a centred `Qw(W) = Q(W - mean W)` passes `g - mean g`.

mod adamw;
mod backward;
mod forward;
mod ops;
pub mod quant;

pub use adamw::adamw_step;
pub use quant::{effective_params, ActRow, Exact, Quantiser, Site};

use crate::model::config::N_CTX;
use crate::model::{ParamId, Params};
use forward::{softmax, Model};

/// Forward activations of a batch of examples.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Forward {
    /// `[N, d_vocab_out]`, last position.
    pub logits: Vec<f64>,
    /// `[N, H, 3 (query), 3 (key)]`, every query position.
    pub attn_pattern: Vec<f64>,
    /// `[N, 3, d_mlp]` before the ReLU, every position.
    pub mlp_pre: Vec<f64>,
    /// `[N, 3, d_mlp]` after the ReLU.
    pub mlp_post: Vec<f64>,
    /// `[N, d_model]`: `x1` at the last position, the residual stream the MLP reads.
    pub resid_mid: Vec<f64>,
    /// `[N, d_model]`: `x2` at the last position, before the final norm.
    pub resid_final: Vec<f64>,
}

impl Forward {
    /// `[N, H, 3]`: the attention of the last query position (as in the test vectors).
    pub fn attn_pattern_last(&self) -> Vec<f64> {
        last_position(&self.attn_pattern, N_CTX)
    }

    /// `[N, d_mlp]`: the post-ReLU activations at the last position (as in the test vectors).
    pub fn mlp_post_last(&self, d_mlp: usize) -> Vec<f64> {
        last_position(&self.mlp_post, d_mlp)
    }
}

/// From `[.., 3 (position), width]` values, the rows of the last position.
fn last_position(values: &[f64], width: usize) -> Vec<f64> {
    values
        .chunks_exact(width)
        .skip(N_CTX - 1)
        .step_by(N_CTX)
        .flatten()
        .copied()
        .collect()
}

/// Runs the model on every example with the configured quantisers.
pub fn forward(params: &Params, tokens: &[[usize; 3]]) -> Forward {
    forward_with(params, tokens, &mut Exact::new(&params.config))
}

/// Runs the model on every example with the given quantisers (example `i` is `tokens[i]`).
pub fn forward_with(
    params: &Params,
    tokens: &[[usize; 3]],
    quantiser: &mut dyn Quantiser,
) -> Forward {
    let model = Model::new(params, quantiser);
    let mut out = Forward::default();
    for (example, &example_tokens) in tokens.iter().enumerate() {
        let trace = model.run(example, example_tokens, quantiser);
        out.logits.extend(&trace.logits);
        out.attn_pattern.extend(&trace.pattern);
        out.mlp_pre.extend(trace.mlp_pre.iter().flatten());
        out.mlp_post.extend(trace.mlp_post.iter().flatten());
        out.resid_mid.extend(&trace.resid_mid);
        out.resid_final.extend(&trace.resid_final);
    }
    out
}

/// Mean cross-entropy of `[N, outputs]` logits (max-subtracted log-sum-exp).
pub fn cross_entropy(logits: &[f64], labels: &[usize], outputs: usize) -> f64 {
    assert_eq!(
        logits.len(),
        labels.len() * outputs,
        "logits and labels disagree on N"
    );
    let total: f64 = logits
        .chunks_exact(outputs)
        .zip(labels)
        .map(|(row, &label)| row_cross_entropy(row, label))
        .sum();
    total / labels.len() as f64
}

/// Fraction of examples whose largest logit (the first, on ties) is the label.
pub fn accuracy(logits: &[f64], labels: &[usize], outputs: usize) -> f64 {
    assert_eq!(
        logits.len(),
        labels.len() * outputs,
        "logits and labels disagree on N"
    );
    let correct = logits
        .chunks_exact(outputs)
        .zip(labels)
        .filter(|(row, &label)| argmax(row) == label)
        .count();
    correct as f64 / labels.len() as f64
}

/// Mean cross-entropy over the examples and its straight-through gradient for every parameter.
pub fn loss_and_grads(params: &Params, tokens: &[[usize; 3]], labels: &[usize]) -> (f64, Params) {
    assert_eq!(
        tokens.len(),
        labels.len(),
        "tokens and labels disagree on N"
    );
    let mut quantiser = Exact::new(&params.config);
    let model = Model::new(params, &mut quantiser);
    let mut grads = Params::zeros(&params.config);
    let n = tokens.len() as f64;
    let mut loss = 0.0;
    // Examples are independent, so each one's backward runs right after its forward.
    for (example, (&example_tokens, &label)) in tokens.iter().zip(labels).enumerate() {
        let trace = model.run(example, example_tokens, &mut quantiser);
        loss += row_cross_entropy(&trace.logits, label);
        let mut d_logits = softmax(&trace.logits);
        d_logits[label] -= 1.0;
        d_logits.iter_mut().for_each(|d| *d /= n);
        model.backward(&trace, &d_logits, &mut grads);
    }
    centre_gradients(&mut grads);
    (loss / n, grads)
}

/// The gradients of the centred weight matrices through the mean: `g - mean g` (a centred
/// quantiser sees `W - mean W`, whose Jacobian is the same centring).
fn centre_gradients(grads: &mut Params) {
    let c = grads.config.clone();
    for id in ParamId::all_present(&c)
        .into_iter()
        .filter(|&id| c.quantises(id))
    {
        let centred = quant::centre(grads.get(id), c.weight_centre);
        grads.get_mut(id).copy_from_slice(&centred);
    }
}

/// Per example, the gradient of the correct-class logit (class `(a + b) mod p`) with respect to
/// the residual-stream inputs `x0` at position 0 (`a`) and position 1 (`b`), straight-through for
/// every quantiser as [`loss_and_grads`].
///
/// These are the gradients with respect to the vectors `x0[pos] = W_E[tok] (+ W_pos[pos])` of
/// each position separately: unlike the `W_E` row gradients they stay apart when `a = b`.
pub fn correct_logit_input_gradients(
    params: &Params,
    tokens: &[[usize; 3]],
) -> Vec<(Vec<f64>, Vec<f64>)> {
    let (p, outputs) = (params.config.p, params.config.d_vocab_out());
    let mut quantiser = Exact::new(&params.config);
    let model = Model::new(params, &mut quantiser);
    // The backward also accumulates parameter gradients; they are not wanted here.
    let mut scratch = Params::zeros(&params.config);
    tokens
        .iter()
        .enumerate()
        .map(|(example, &example_tokens)| {
            let [a, b, _] = example_tokens;
            assert!(
                a < p && b < p,
                "example {example}: {example_tokens:?} is not [a, b, =]"
            );
            let trace = model.run(example, example_tokens, &mut quantiser);
            let mut d_logits = vec![0.0; outputs];
            d_logits[(a + b) % p] = 1.0;
            let [d_a, d_b, _] = model.backward_to_x0(&trace, &d_logits, &mut scratch);
            (d_a, d_b)
        })
        .collect()
}

fn row_cross_entropy(logits: &[f64], label: usize) -> f64 {
    let max = logits.iter().fold(f64::NEG_INFINITY, |m, &x| m.max(x));
    let log_sum_exp = max + logits.iter().map(|x| (x - max).exp()).sum::<f64>().ln();
    log_sum_exp - logits[label]
}

fn argmax(row: &[f64]) -> usize {
    row.iter()
        .enumerate()
        .fold(0, |best, (i, &x)| if x > row[best] { i } else { best })
}
