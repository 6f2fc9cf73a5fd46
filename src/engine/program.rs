//! The recorder of the programs (the dispatch sequences of one training epoch and of one
//! evaluation, recorded once and replayed every epoch): the buffers they share, the row-wise
//! kernels and the optimiser's. The model's passes are in passes.rs, its matrix products in
//! products.rs. Shapes: n examples, D d_model, A = H*Dh, M d_mlp, P = p classes, R = 2p + 1
//! table rows (row 2p is `=`).

use super::bindings::{norm, optimizer, quantize};
use super::buffers::{Int8Rows, LinearInput, Tables};
use super::device::Parallelism;
use super::kernels::{groups_2d, Dispatch, Kernel, Kernels};
use super::layout::ParamLayout;
use super::uniforms::{AttnParams, EmbedParams, NormParams};
use crate::model::{ActQuant, LinearNorm, ModelConfig, ParamId, WeightCentre, Weights};

/// Buffers shared by every program (one slice per model, as every buffer).
pub struct Shared {
    pub params: wgpu::Buffer,
    pub qparams: wgpu::Buffer,
    pub grads: wgpu::Buffer,
    pub m: wgpu::Buffer,
    pub v: wgpu::Buffer,
    /// `[step, first non-finite step, 0, 0]`
    pub state: wgpu::Buffer,
    /// AdamW's hyper-parameters ([`HyperParams`]).
    pub hypers: wgpu::Buffer,
    /// `[slots, METRIC_COLUMNS]`: train loss, train acc, test loss, test acc, test acc on pairs
    /// whose transpose is in the train set, test acc on the others; one row per epoch of a chunk.
    pub metrics: wgpu::Buffer,
    pub metric_slots: usize,
    /// Quantiser descriptor per parameter (shaders/quantize.wgsl): one copy for every model.
    pub quant_descs: wgpu::Buffer,
    /// Packed codes of the quantised weights, and one scale per parameter (layout order); the
    /// first word of each parameter's codes, then the total.
    pub packed: wgpu::Buffer,
    pub scales: wgpu::Buffer,
    pub packed_offsets: Vec<usize>,
    /// A single 1.0, for column sums as products.
    pub one: wgpu::Buffer,
    /// Partial products of split-K products ([`super::planner::split_partials_len`] floats).
    pub split_partials: wgpu::Buffer,
}

/// Threads of a workgroup that reduces rows or columns together (SUM_THREADS in
/// shaders/include/workgroup_reduce.wgsl).
const REDUCE_THREADS: usize = 64;
/// Columns of the metrics buffer (shaders/loss.wgsl).
pub const METRIC_COLUMNS: usize = 6;

/// Column of the metrics buffer a loss reduction writes to.
#[derive(Clone, Copy)]
pub enum Metric {
    Train = 0,
    Test = 2,
}

pub(super) const NORM_RELU_INPUT: u32 = 1;
pub(super) const NORM_RMS: u32 = 2;
const NORM_INT8: u32 = 4;
pub(super) const NORM_GAIN: u32 = 8;
const NORM_ADD_BASE: u32 = 16;
const NORM_PACK: u32 = 32;

/// Records the programs of one model.
pub struct Recorder<'a> {
    pub device: &'a wgpu::Device,
    pub kernels: &'a Kernels,
    pub config: &'a ModelConfig,
    pub layout: &'a ParamLayout,
    pub shared: &'a Shared,
    pub tables: &'a Tables,
    pub parallelism: Parallelism,
}

impl Recorder<'_> {
    pub(super) fn off(&self, id: ParamId) -> usize {
        self.layout.offset(id) as usize
    }

    /// Flags of the `Linear` input transform `Qa(N(.))`.
    pub(super) fn linear_flags(&self) -> u32 {
        let mut flags = 0;
        if self.config.linear_norm == LinearNorm::Rms {
            flags |= NORM_RMS;
        }
        if self.config.act_quant == ActQuant::Int8 {
            flags |= NORM_INT8;
        }
        flags
    }

    /// Uniforms of the row-wise kernels; the gain, when used, is the final norm's.
    pub(super) fn norm_params(&self, rows: usize, width: usize, flags: u32) -> NormParams {
        NormParams {
            rows: rows as u32,
            width: width as u32,
            flags,
            gain_off: self.off(ParamId::LnFinal) as u32,
            lanes: self.parallelism.row_lanes as u32,
            _pad: [0; 3],
        }
    }

    /// Workgroups of a row-wise kernel over `rows` rows.
    pub(super) fn row_groups(&self, rows: usize) -> [u32; 3] {
        Self::lane_groups(rows, self.parallelism.row_lanes)
    }

    /// Workgroups of a kernel that gives each of `rows` rows `lanes` threads of a workgroup.
    fn lane_groups(rows: usize, lanes: usize) -> [u32; 3] {
        assert!(
            lanes.is_power_of_two() && REDUCE_THREADS.is_multiple_of(lanes),
            "{lanes} lanes per row do not divide a workgroup"
        );
        groups_2d(rows, (REDUCE_THREADS / lanes) as u32)
    }

    /// `Qa(N(x))` into a `Linear` input; nothing for the identity, whose input is `x` itself.
    pub(super) fn linear_input(
        &self,
        out: &mut Vec<Dispatch>,
        shape: (usize, usize, u32),
        x: &wgpu::Buffer,
        input: &LinearInput,
    ) {
        if input.identity {
            debug_assert_eq!(shape.2, 0, "an identity input has no transform flags");
            return;
        }
        let y = [x, &input.float, &input.inv];
        self.norm_forward(out, shape, y, input.forms().1);
    }

    /// `y = N(x)`, keeping `inv`; stored as the int8 codes `int8` instead when given (a `Linear`
    /// input whose products read codes).
    pub(super) fn norm_forward(
        &self,
        out: &mut Vec<Dispatch>,
        (rows, width, flags): (usize, usize, u32),
        [x, y, inv]: [&wgpu::Buffer; 3],
        int8: Option<&Int8Rows>,
    ) {
        let flags = flags | if int8.is_some() { NORM_PACK } else { 0 };
        let params = self.norm_params(rows, width, flags);
        // Without packing nothing is written there: any buffer fills the bindings.
        let (codes, steps) = int8.map_or((&self.shared.one, &self.shared.one), |p| {
            (&p.codes, &p.steps)
        });
        out.push(self.kernels.dispatch(
            self.device,
            Kernel::NormForward,
            Some(bytemuck::bytes_of(&params)),
            &[
                (norm::X, x),
                (norm::Y, y),
                (norm::INV_RMS, inv),
                (norm::GAIN, &self.shared.qparams),
                (norm::CODES, codes),
                (norm::STEPS, steps),
            ],
            self.row_groups(rows),
        ));
    }

    /// `dx = (base +) N'(x)^T dy` for `rows x width`; `x`, `inv` are the forward input and its
    /// inverse RMS.
    pub(super) fn norm_backward(
        &self,
        out: &mut Vec<Dispatch>,
        (rows, width, flags): (usize, usize, u32),
        dy: &wgpu::Buffer,
        (x, inv): (&wgpu::Buffer, &wgpu::Buffer),
        base: Option<&wgpu::Buffer>,
        dx: &wgpu::Buffer,
    ) {
        let flags = flags | if base.is_some() { NORM_ADD_BASE } else { 0 };
        let params = self.norm_params(rows, width, flags);
        out.push(self.kernels.dispatch(
            self.device,
            Kernel::NormBackward,
            Some(bytemuck::bytes_of(&params)),
            &[
                (norm::X, x),
                (norm::GAIN, &self.shared.qparams),
                (norm::DY, dy),
                (norm::BASE, base.unwrap_or(dy)),
                (norm::DX, dx),
                (norm::INV_RMS_IN, inv),
            ],
            self.row_groups(rows),
        ));
    }

    /// Backward of [`Self::linear_input`]: `dx = (base +) N'(x)^T d_input`, `x` the forward
    /// input; nothing for the identity, whose gradient the input-gradient product writes.
    pub(super) fn linear_input_backward(
        &self,
        out: &mut Vec<Dispatch>,
        shape: (usize, usize, u32),
        d_input: &wgpu::Buffer,
        (x, input): (&wgpu::Buffer, &LinearInput),
        base: Option<&wgpu::Buffer>,
        dx: &wgpu::Buffer,
    ) {
        if !input.identity {
            self.norm_backward(out, shape, d_input, (x, &input.inv), base, dx);
        }
    }

    pub(super) fn embed_params(&self) -> EmbedParams {
        let (packing, w_e_codes, w_e_scale) = self.packed_location(ParamId::WE).unwrap_or_default();
        let (_, w_pos_codes, w_pos_scale) = self.packed_location(ParamId::WPos).unwrap_or_default();
        EmbedParams {
            p: self.config.p as u32,
            d_model: self.config.d_model as u32,
            w_e: self.off(ParamId::WE) as u32,
            w_pos: self.off(ParamId::WPos) as u32,
            has_pos: self.config.pos_embed as u32,
            packing,
            w_e_codes,
            w_e_scale,
            w_pos_codes,
            w_pos_scale,
            _pad: [0; 2],
        }
    }

    pub(super) fn attn_params(&self, n: usize) -> AttnParams {
        AttnParams {
            n: n as u32,
            p: self.config.p as u32,
            n_heads: self.config.n_heads as u32,
            d_head: self.config.d_head as u32,
            scale: 1.0 / (self.config.d_head as f32).sqrt(),
            lanes: self.parallelism.row_lanes as u32,
            head_lanes: self.head_lanes() as u32,
            _pad: 0,
        }
    }

    /// Threads per (example, head) of the attention: the row lanes, but no more than the
    /// power of two that covers d_head.
    fn head_lanes(&self) -> usize {
        self.parallelism
            .row_lanes
            .min(self.config.d_head.next_power_of_two())
    }

    /// Workgroups of the attention's kernels over `n` examples.
    pub(super) fn pair_groups(&self, n: usize) -> [u32; 3] {
        Self::lane_groups(n * self.config.n_heads, self.head_lanes())
    }

    /// Starts an epoch: advances the step counter.
    pub fn begin_step(&self) -> Dispatch {
        self.kernels.dispatch(
            self.device,
            Kernel::BeginStep,
            None,
            &[(optimizer::STATE, &self.shared.state)],
            [1, 1, 1],
        )
    }

    /// `qparams = Qw(params)` for every parameter.
    pub(super) fn quantize(&self) -> Dispatch {
        self.kernels.dispatch(
            self.device,
            Kernel::Quantize,
            None,
            &[
                (quantize::DESCS, &self.shared.quant_descs),
                (quantize::PARAMS, &self.shared.params),
                (quantize::QPARAMS, &self.shared.qparams),
                (quantize::PACKED, &self.shared.packed),
                (quantize::SCALES, &self.shared.scales),
            ],
            [self.layout.entries().len() as u32, 1, 1],
        )
    }

    /// `g - mean g` for the gradient of every centred matrix (`--weight-centre mean`); nothing
    /// for a model without them.
    pub fn centre_grads(&self) -> Option<Dispatch> {
        let c = self.config;
        let centred = c.weights != Weights::F32 && c.weight_centre == WeightCentre::Mean;
        centred.then(|| {
            self.kernels.dispatch(
                self.device,
                Kernel::CentreGrads,
                None,
                &[
                    (quantize::DESCS, &self.shared.quant_descs),
                    (quantize::GRADS, &self.shared.grads),
                ],
                [self.layout.entries().len() as u32, 1, 1],
            )
        })
    }

    /// One AdamW step over every parameter, with each model's hyper-parameters.
    pub fn adamw(&self) -> Dispatch {
        let s = self.shared;
        self.kernels.dispatch(
            self.device,
            Kernel::AdamW,
            None,
            &[
                (optimizer::HYPERS, &s.hypers),
                (optimizer::STATE, &s.state),
                (optimizer::PARAMS, &s.params),
                (optimizer::GRADS, &s.grads),
                (optimizer::M, &s.m),
                (optimizer::V, &s.v),
            ],
            groups_2d(self.layout.total(), 256),
        )
    }
}
