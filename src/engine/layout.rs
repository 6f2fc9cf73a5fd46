//! Where each parameter lives in the engine's flat parameter buffers.

use crate::model::{ModelConfig, ParamId, Params};

/// Parameters are packed into one buffer (so AdamW is a single dispatch), each starting on a
/// 64-float boundary.
#[derive(Clone, Debug)]
pub struct ParamLayout {
    config: ModelConfig,
    entries: Vec<(ParamId, usize, usize)>,
    total: usize,
}

const ALIGN: usize = 64;

impl ParamLayout {
    pub fn new(config: &ModelConfig) -> Self {
        let mut entries = Vec::new();
        let mut off = 0;
        for id in ParamId::all_present(config) {
            let len: usize = id.shape(config).iter().product();
            entries.push((id, off, len));
            off += len.div_ceil(ALIGN) * ALIGN;
        }
        ParamLayout {
            config: config.clone(),
            entries,
            total: off,
        }
    }

    /// Floats in the packed buffer, padding included.
    pub fn total(&self) -> usize {
        self.total
    }

    pub fn entries(&self) -> &[(ParamId, usize, usize)] {
        &self.entries
    }

    /// Offset in floats (0 for a parameter the model does not have, which no kernel reads).
    pub fn offset(&self, id: ParamId) -> u32 {
        self.entries
            .iter()
            .find(|(i, _, _)| *i == id)
            .map_or(0, |(_, off, _)| *off as u32)
    }

    pub fn pack(&self, params: &Params) -> Vec<f32> {
        let mut flat = vec![0.0f32; self.total];
        for &(id, off, len) in &self.entries {
            let src = params.get(id);
            for (dst, &x) in flat[off..off + len].iter_mut().zip(src) {
                *dst = x as f32;
            }
        }
        flat
    }

    pub fn unpack(&self, flat: &[f32]) -> Params {
        let mut params = Params::zeros(&self.config);
        for &(id, off, len) in &self.entries {
            for (dst, &x) in params.get_mut(id).iter_mut().zip(&flat[off..off + len]) {
                *dst = x as f64;
            }
        }
        params
    }
}
