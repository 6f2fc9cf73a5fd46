//! The uniform structs of the kernels, mirrored field for field from the WGSL `Params` of each
//! shader (`#[repr(C)]`, padded to 16 bytes as WGSL lays uniforms out).

use bytemuck::{Pod, Zeroable};

use super::bindings::MODEL_AXIS_BINDING;
use super::f16_tiles::TilePath;
use super::kernels::shader_source;
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

/// `ModelAxis` of shaders/include/model_axis.wgsl.
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
pub(super) struct ModelAxis {
    pub(super) strides: [u32; MODEL_AXIS_BINDING as usize],
    pub(super) z_per_model: u32,
    pub(super) _pad: [u32; 3],
}

/// `TileParams` of shaders/include/split_tile_operands.wgsl.
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
pub(super) struct TileParams {
    pub(super) m: u32,
    pub(super) n: u32,
    pub(super) k: u32,
    pub(super) _pad: u32,
    pub(super) scale_a: f32,
    pub(super) scale_b: f32,
    pub(super) _pad2: [u32; 2],
}

/// A uniform mirror as Rust lays it out, for the shader test to hold against the WGSL struct
/// it mirrors: the shader (its name and full source), the struct, its size, and its fields'
/// offsets (padding left out).
pub struct Mirror {
    pub file: &'static str,
    pub source: String,
    pub wgsl_struct: &'static str,
    pub size: usize,
    pub fields: Vec<(&'static str, usize)>,
}

macro_rules! mirror {
    ($ty:ident in $file:literal as $wgsl:literal: $($field:ident),+) => {
        mirror!($ty in $file, shader_source($file).expect("a shader file"), as $wgsl: $($field),+)
    };
    ($ty:ident in $file:literal, $source:expr, as $wgsl:literal: $($field:ident),+) => {
        Mirror {
            file: $file,
            source: $source,
            wgsl_struct: $wgsl,
            size: std::mem::size_of::<$ty>(),
            fields: vec![$((stringify!($field), std::mem::offset_of!($ty, $field))),+],
        }
    };
}

/// Every uniform mirror.
pub fn mirrors() -> Vec<Mirror> {
    vec![
        mirror!(OperandParams in "matmul" as "Operand": off, s_batch, s_row, s_col),
        mirror!(MatmulParams in "matmul" as "Params": m, n, k, k_div, a, b, c, r, a_k_hi, b_k_hi,
            bias_off, bias_s_batch, k_splits, k_chunk, b_packed, b_param_off, b_packed_off,
            b_scale, a_steps_off, a_steps_row, a_steps_col),
        mirror!(NormParams in "norm" as "Params": rows, width, flags, gain_off, lanes),
        mirror!(EmbedParams in "embed" as "Params": p, d_model, w_e, w_pos, has_pos, packing,
            w_e_codes, w_e_scale, w_pos_codes, w_pos_scale),
        mirror!(AttnParams in "attention" as "Params": n, p, n_heads, d_head, scale, lanes,
            head_lanes),
        mirror!(LossParams in "loss" as "Params": n, p, metric, with_grad, inv_n, metric_slots,
            lanes),
        mirror!(HyperParams in "optimizer" as "Hyper": lr, weight_decay, beta1, beta2, eps, len),
        mirror!(ModelAxis in "loss" as "ModelAxis": strides, z_per_model),
        mirror!(TileParams in "matmul_f16", TilePath::Emulated.source(), as "TileParams": m, n,
            k, scale_a, scale_b),
    ]
}
