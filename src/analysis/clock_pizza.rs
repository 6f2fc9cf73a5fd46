//! Telling a "clock" from a "pizza" (Zhong et al. 2023, "The Clock and the Pizza").
//!
//! In a clock the correct-class logit does not depend on the distance `a - b` between the inputs;
//! in a pizza it is scaled by `|cos(w (a - b) / 2)|`, so it depends on that distance heavily. A
//! pizza's logits depend on the inputs through `x_a + x_b` (roughly), so the gradients with
//! respect to the two inputs point the same way; a clock multiplies them, so they do not.

use nalgebra::DMatrix;

use crate::model::Params;
use crate::reference;

/// `q(a, b)`: the logit of the correct class `(a + b) mod p` for every pair, a-major, from the
/// `p^2 x p` logits of all pairs (a-major).
pub fn correct_logits(logits: &DMatrix<f64>, p: usize) -> Vec<f64> {
    assert_eq!(
        (logits.nrows(), logits.ncols()),
        (p * p, p),
        "logits must be p^2 x p (all pairs, a-major)"
    );
    (0..p * p)
        .map(|i| logits[(i, (i / p + i % p) % p)])
        .collect()
}

/// Distance irrelevance (Zhong et al.): how little the correct logit `q(a, b)` depends on the
/// distance `d = (a - b) mod p`. Computed as
///
/// `( (1/p) sum_{d=0}^{p-1} std_{(a,b): a-b = d} q(a, b) ) / std_{all (a,b)} q(a, b)`,
///
/// the mean over the p distance classes (p pairs each) of the standard deviation of `q` within the
/// class, divided by the standard deviation of `q` over all `p^2` pairs; every standard deviation
/// is the population one (divided by the count). A `q` that depends on `d` alone scores 0
/// (pizza-like); one that is noise, or a function of `a + b` alone (odd p), scores about 1 — exactly
/// 1 for a function of `a + b` when p is odd, since each distance class holds every sum once
/// (clock-like). A constant `q`, which has no variance to explain, scores 1 (an ideal clock's
/// correct logit is constant).
pub fn distance_irrelevance(correct_logits: &[f64], p: usize) -> f64 {
    assert_eq!(
        correct_logits.len(),
        p * p,
        "need q for all p^2 = {} pairs",
        p * p
    );
    let overall = population_std(correct_logits.iter().copied());
    if overall == 0.0 {
        return 1.0;
    }
    let within: f64 = (0..p)
        .map(|d| population_std((0..p).map(|a| correct_logits[a * p + (a + p - d) % p])))
        .sum::<f64>()
        / p as f64;
    within / overall
}

/// Gradient symmetricity (Zhong et al.): the mean over examples of the cosine similarity between
/// the gradients of the correct logit with respect to the two inputs, `dq/dx_a` and `dq/dx_b`
/// (e.g. from [`reference::correct_logit_input_gradients`]). Near 1 for a pizza, lower for a
/// clock. An example where either gradient is zero counts as similarity 0; no examples give 0.
pub fn gradient_symmetricity(pairs: &[(Vec<f64>, Vec<f64>)]) -> f64 {
    if pairs.is_empty() {
        return 0.0;
    }
    pairs
        .iter()
        .map(|(g_a, g_b)| cosine_similarity(g_a, g_b))
        .sum::<f64>()
        / pairs.len() as f64
}

/// Gradient symmetricity of a model over the given `[a, b, =]` examples, with the reference's
/// straight-through gradients with respect to the residual-stream inputs `x0` of `a` and `b`.
pub fn model_gradient_symmetricity(params: &Params, tokens: &[[usize; 3]]) -> f64 {
    gradient_symmetricity(&reference::correct_logit_input_gradients(params, tokens))
}

/// `u.v / (|u| |v|)`, or 0 when either vector is zero.
pub fn cosine_similarity(u: &[f64], v: &[f64]) -> f64 {
    assert_eq!(u.len(), v.len(), "cosine of vectors of different lengths");
    let dot: f64 = u.iter().zip(v).map(|(x, y)| x * y).sum();
    let norms =
        u.iter().map(|x| x * x).sum::<f64>().sqrt() * v.iter().map(|x| x * x).sum::<f64>().sqrt();
    if norms == 0.0 {
        0.0
    } else {
        dot / norms
    }
}

fn population_std(values: impl Iterator<Item = f64> + Clone) -> f64 {
    let n = values.clone().count() as f64;
    let mean = values.clone().sum::<f64>() / n;
    (values.map(|x| (x - mean) * (x - mean)).sum::<f64>() / n).sqrt()
}
