//! The uniform structs of the kernels, mirrored field for field from the WGSL `Params` of each
//! shader (`#[repr(C)]`, padded to 16 bytes as WGSL lays uniforms out).

use bytemuck::{Pod, Zeroable};

use crate::optim::AdamW;

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable, Default)]
pub(super) struct OperandParams {
    pub(super) off: u32,
    pub(super) s_batch: u32,
    pub(super) s_row: u32,
    pub(super) s_col: u32,
}

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable, Default)]
pub(super) struct MatmulParams {
    pub(super) m: u32,
    pub(super) n: u32,
    pub(super) k: u32,
    pub(super) k_div: u32,
    pub(super) a: OperandParams,
    pub(super) b: OperandParams,
    pub(super) c: OperandParams,
    pub(super) r: OperandParams,
    pub(super) a_k_hi: u32,
    pub(super) b_k_hi: u32,
    pub(super) bias_off: u32,
    pub(super) bias_s_batch: u32,
    pub(super) k_splits: u32,
    pub(super) k_chunk: u32,
    pub(super) b_packed: u32,
    pub(super) b_param_off: u32,
    pub(super) b_packed_off: u32,
    pub(super) b_scale: u32,
    pub(super) a_steps_off: u32,
    pub(super) a_steps_row: u32,
    pub(super) a_steps_col: u32,
}

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
pub(super) struct NormParams {
    pub(super) rows: u32,
    pub(super) width: u32,
    pub(super) flags: u32,
    pub(super) gain_off: u32,
    pub(super) lanes: u32,
    pub(super) _pad: [u32; 3],
}

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
pub(super) struct EmbedParams {
    pub(super) p: u32,
    pub(super) d_model: u32,
    pub(super) w_e: u32,
    pub(super) w_pos: u32,
    pub(super) has_pos: u32,
    pub(super) packing: u32,
    pub(super) w_e_codes: u32,
    pub(super) w_e_scale: u32,
    pub(super) w_pos_codes: u32,
    pub(super) w_pos_scale: u32,
    pub(super) _pad: [u32; 2],
}

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
pub(super) struct AttnParams {
    pub(super) n: u32,
    pub(super) p: u32,
    pub(super) n_heads: u32,
    pub(super) d_head: u32,
    pub(super) scale: f32,
    /// Threads per output of `query_grad`.
    pub(super) lanes: u32,
    /// Threads per (example, head) of `forward` and `score_grad`.
    pub(super) head_lanes: u32,
    pub(super) _pad: u32,
}

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
pub(super) struct LossParams {
    pub(super) n: u32,
    pub(super) p: u32,
    pub(super) metric: u32,
    pub(super) with_grad: u32,
    pub(super) inv_n: f32,
    pub(super) metric_slots: u32,
    /// Threads per example of `per_example_loss`.
    pub(super) lanes: u32,
    pub(super) _pad: u32,
}

/// AdamW's hyper-parameters as shaders/optimizer.wgsl reads them, one per model.
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
pub struct HyperParams {
    pub(super) lr: f32,
    pub(super) weight_decay: f32,
    pub(super) beta1: f32,
    pub(super) beta2: f32,
    pub(super) eps: f32,
    pub(super) len: u32,
    pub(super) _pad: [u32; 2],
}

impl HyperParams {
    /// `hp` for parameters of `len` floats (padding included).
    pub fn new(hp: &AdamW, len: usize) -> Self {
        HyperParams {
            lr: hp.lr as f32,
            weight_decay: hp.weight_decay as f32,
            beta1: hp.betas[0] as f32,
            beta2: hp.betas[1] as f32,
            eps: hp.eps as f32,
            len: len as u32,
            _pad: [0; 2],
        }
    }
}
