//! AdamW hyper-parameters (PyTorch semantics: decoupled weight decay on every parameter).

use serde::{Deserialize, Serialize};

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
