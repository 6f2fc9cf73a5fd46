//! One AdamW step with PyTorch semantics.

use crate::model::{ParamId, Params};
use crate::optim::AdamW;

/// Step number `step` (1 for the first) of AdamW on every parameter: decoupled weight decay
/// `p -= lr wd p` first, then the bias-corrected Adam update. `m` and `v` are updated in place.
pub fn adamw_step(
    params: &mut Params,
    grads: &Params,
    m: &mut Params,
    v: &mut Params,
    step: u64,
    hp: &AdamW,
) {
    assert!(step >= 1, "AdamW steps count from 1");
    let [beta1, beta2] = hp.betas;
    let bias1 = 1.0 - beta1.powf(step as f64);
    let bias2 = 1.0 - beta2.powf(step as f64);
    let ids: Vec<ParamId> = params.ids().collect();
    for id in ids {
        let (p, g, m, v) = (
            params.get_mut(id),
            grads.get(id),
            m.get_mut(id),
            v.get_mut(id),
        );
        for (((p, &g), m), v) in p.iter_mut().zip(g).zip(m.iter_mut()).zip(v.iter_mut()) {
            *p -= hp.lr * hp.weight_decay * *p;
            *m = beta1 * *m + (1.0 - beta1) * g;
            *v = beta2 * *v + (1.0 - beta2) * g * g;
            *p -= hp.lr * (*m / bias1) / ((*v / bias2).sqrt() + hp.eps);
        }
    }
}
