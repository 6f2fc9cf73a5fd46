//! AdamW: its hyper-parameters (PyTorch semantics: decoupled weight decay on every parameter)
//! and the state it carries from step to step, which checkpoints and resume points hold.

use serde::{Deserialize, Serialize};

use crate::model::Params;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AdamW {
    pub lr: f64,
    pub weight_decay: f64,
    pub betas: [f64; 2],
    pub eps: f64,
}

impl Default for AdamW {
    fn default() -> Self {
        AdamW {
            lr: 1e-3,
            weight_decay: 1.0,
            betas: [0.9, 0.98],
            eps: 1e-8,
        }
    }
}

/// What AdamW carries from step to step besides the parameters: a resumed run needs it to
/// continue bit for bit.
#[derive(Clone, Debug, PartialEq)]
pub struct OptimizerState {
    /// Steps taken.
    pub step: u32,
    pub m: Params,
    pub v: Params,
}
