//! The dispatch sequences of one training epoch and of one evaluation, recorded once and
//! replayed every epoch. Shapes: n examples, D d_model, A = H*Dh, M d_mlp, P = p classes,
//! R = 2p + 1 table rows (row 2p is `=`).

use anyhow::Result;

use super::buffers::{Batch, Int8Rows, LinearInput, Tables};
use super::device::{Parallelism, Products};
use super::kernels::{groups_1d, groups_2d, Dispatch, Kernel, Kernels};
use super::layout::ParamLayout;
use super::planner::{self, Reads, Shape};
use super::uniforms::{
    AttnParams, EmbedParams, LossParams, MatmulParams, NormParams, OperandParams,
};
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
    /// Partial products of split-K products ([`split_partials_len`] floats).
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

const NORM_RELU_INPUT: u32 = 1;
const NORM_RMS: u32 = 2;
const NORM_INT8: u32 = 4;
const NORM_GAIN: u32 = 8;
const NORM_ADD_BASE: u32 = 16;
const NORM_PACK: u32 = 32;

/// A matrix operand: buffer, element offset and strides (batch, row, column).
#[derive(Clone, Copy)]
struct Op<'a> {
    buf: &'a wgpu::Buffer,
    off: usize,
    batch: usize,
    row: usize,
    col: usize,
}

fn op(buf: &wgpu::Buffer, off: usize, batch: usize, row: usize, col: usize) -> Op<'_> {
    Op {
        buf,
        off,
        batch,
        row,
        col,
    }
}

impl Op<'_> {
    fn params(&self) -> OperandParams {
        OperandParams {
            off: self.off as u32,
            s_batch: self.batch as u32,
            s_row: self.row as u32,
            s_col: self.col as u32,
        }
    }
}

/// One product `C (+)= A @ B (+ R)` of `batch` matrices, m x k times k x n.
struct Product<'a> {
    batch: usize,
    m: usize,
    n: usize,
    k: usize,
    a: Op<'a>,
    b: Op<'a>,
    c: Op<'a>,
    residual: Option<Op<'a>>,
    /// A bias row of the effective parameters: (offset, batch stride).
    bias: Option<(usize, usize)>,
    accumulate: bool,
    /// Contraction split `k = hi * div + lo` with (div, A's hi stride, B's hi stride); A's column
    /// stride and B's row stride then apply to `lo`.
    k_split: Option<(usize, usize, usize)>,
    /// A is read from these int8 codes instead: an integer product (`int8_main`) when B is a
    /// packed weight matrix, else a float product of code * step.
    int8: Option<Int8Operand<'a>>,
}

/// The int8 form of a product's A operand: rows `first, first + stride, ...` of `rows`
/// (stride 0 repeats one row), or their transpose (A's columns).
#[derive(Clone, Copy)]
struct Int8Operand<'a> {
    rows: &'a Int8Rows,
    first: usize,
    stride: usize,
    transposed: bool,
}

/// The int8 operand of a `Linear` input's rows `first, first + stride, ...`, when its products
/// read int8 codes (`rows`: [`LinearInput::forms`]).
fn int8_rows(rows: Option<&Int8Rows>, first: usize, stride: usize) -> Option<Int8Operand<'_>> {
    rows.map(|rows| Int8Operand {
        rows,
        first,
        stride,
        transposed: false,
    })
}

impl Int8Operand<'_> {
    fn transposed(self) -> Self {
        Int8Operand {
            transposed: true,
            ..self
        }
    }

    /// `params` with A read from the codes (counted in bytes), and the `a_steps_*` fields.
    fn apply(&self, params: MatmulParams) -> MatmulParams {
        let row_bytes = 4 * self.rows.row_words;
        let (off, along) = (self.first * row_bytes, self.stride * row_bytes);
        let (s_row, s_col, steps_row, steps_col) = if self.transposed {
            (1, along, 0, self.stride)
        } else {
            (along, 1, self.stride, 0)
        };
        MatmulParams {
            a: op(&self.rows.codes, off, 0, s_row, s_col).params(),
            a_steps_off: self.first as u32,
            a_steps_row: steps_row as u32,
            a_steps_col: steps_col as u32,
            ..params
        }
    }
}

impl<'a> Product<'a> {
    fn new(batch: usize, m: usize, n: usize, k: usize, a: Op<'a>, b: Op<'a>, c: Op<'a>) -> Self {
        Product {
            batch,
            m,
            n,
            k,
            a,
            b,
            c,
            residual: None,
            bias: None,
            accumulate: false,
            k_split: None,
            int8: None,
        }
    }
    fn residual(mut self, r: Op<'a>) -> Self {
        self.residual = Some(r);
        self
    }
    fn bias(mut self, bias: Option<(usize, usize)>) -> Self {
        self.bias = bias;
        self
    }
    fn accumulate(mut self) -> Self {
        self.accumulate = true;
        self
    }
    fn k_split(mut self, div: usize, a_hi: usize, b_hi: usize) -> Self {
        self.k_split = Some((div, a_hi, b_hi));
        self
    }
    /// Reads A from `int8` instead when it is given.
    fn int8(mut self, int8: Option<Int8Operand<'a>>) -> Self {
        self.int8 = int8;
        self
    }

    fn shape(&self) -> Shape {
        let (batch, m, n, k) = (self.batch, self.m, self.n, self.k);
        Shape { batch, m, n, k }
    }

    fn flags(&self) -> u32 {
        planner::product_flags(
            self.residual.is_some(),
            self.accumulate,
            self.bias.is_some(),
        )
    }
}

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
    fn off(&self, id: ParamId) -> usize {
        self.layout.offset(id) as usize
    }

    /// The bias operand of `id` (offset, batch stride) when the model has biases.
    fn bias_of(&self, id: ParamId, batch_stride: usize) -> Option<(usize, usize)> {
        self.config.biases.then(|| (self.off(id), batch_stride))
    }

    /// `grads[id] (+)= column sums of the rows x cols matrix dy` (per batch): the gradient of a
    /// bias added to every row, when the model has biases.
    fn bias_backward(
        &self,
        out: &mut Vec<Dispatch>,
        id: ParamId,
        dy: Op,
        shape: (usize, usize, usize),
    ) {
        if !self.config.biases {
            return;
        }
        let (batch, rows, cols) = shape;
        let ones = op(&self.shared.one, 0, 0, 0, 0);
        let gr = &self.shared.grads;
        let db = op(gr, self.off(id), cols, 0, 1);
        self.product(out, Product::new(batch, 1, cols, rows, ones, dy, db));
    }

    /// The packed-weight fields of a product whose B operand is a quantised weight matrix of
    /// the effective parameters (its codes are all there is of it on the GPU), else zeros.
    fn packed_operand(&self, b: &Op) -> MatmulParams {
        let none = MatmulParams::default();
        if *b.buf != self.shared.qparams || self.config.weights == Weights::F32 {
            return none;
        }
        let entries = self.layout.entries();
        let Some(index) = entries
            .iter()
            .position(|&(_, off, len)| (off..off + len).contains(&b.off))
        else {
            return none;
        };
        let (id, off, _) = entries[index];
        let Some((b_packed, b_packed_off, b_scale)) = self.packed_location(id) else {
            return none;
        };
        MatmulParams {
            b_packed,
            b_param_off: off as u32,
            b_packed_off,
            b_scale,
            ..none
        }
    }

    /// Where the GPU holds the quantised matrix `id`: its packing (shaders/include/
    /// packed_codes.wgsl), the first word of its codes and the index of its scale; None when
    /// the model does not quantise it.
    fn packed_location(&self, id: ParamId) -> Option<(u32, u32, u32)> {
        let index = self.layout.entries().iter().position(|e| e.0 == id)?;
        let packing = super::quant_mode(id, self.config);
        (packing != 0).then(|| {
            let codes = self.shared.packed_offsets[index] as u32;
            (packing, codes, index as u32)
        })
    }

    /// The uniform of product `p` with residual operand `r` (a buffer to fill the binding when
    /// `p` has none), run as `splits` chunks of `k_chunk`.
    fn product_params(
        &self,
        p: &Product,
        r: Op,
        (splits, k_chunk): (usize, usize),
    ) -> MatmulParams {
        let (k_div, a_hi, b_hi) = p.k_split.unwrap_or((p.k.max(1), 0, 0));
        let (bias_off, bias_s_batch) = p.bias.unwrap_or((0, 0));
        MatmulParams {
            m: p.m as u32,
            n: p.n as u32,
            k: p.k as u32,
            k_div: k_div as u32,
            a: p.a.params(),
            b: p.b.params(),
            c: p.c.params(),
            r: r.params(),
            a_k_hi: a_hi as u32,
            b_k_hi: b_hi as u32,
            bias_off: bias_off as u32,
            bias_s_batch: bias_s_batch as u32,
            k_splits: splits as u32,
            k_chunk: k_chunk as u32,
            ..self.packed_operand(&p.b)
        }
    }

    fn product(&self, out: &mut Vec<Dispatch>, p: Product) {
        let qp = &self.shared.qparams;
        let packed = self.packed_operand(&p.b).b_packed != 0;
        if let Some(int8) = p.int8.filter(|_| packed) {
            return self.integer_product(out, &p, int8);
        }
        let reads = match p.int8 {
            Some(_) => Reads::Codes,
            None => Reads::Floats {
                packed: packed.then_some((p.b.row, p.b.col)),
                k_split: p.k_split.is_some(),
            },
        };
        let plan = planner::plan(&self.parallelism, p.shape(), reads, p.flags());
        // An unused residual binding still needs a buffer; A's is always valid to read.
        let r = p.residual.unwrap_or(p.a);
        let mut params = self.product_params(&p, r, (plan.splits, plan.k_chunk));
        // Unused int8 bindings need buffers too.
        let (mut codes, mut steps) = (&self.shared.one, &self.shared.one);
        if let Some(int8) = p.int8 {
            assert!(p.k_split.is_none(), "int8 codes with a split contraction");
            assert!(
                (int8.transposed && !packed) || self.parallelism.products == Products::Tiles,
                "products in lanes read codes as a float operand only transposed, times floats"
            );
            params = int8.apply(params);
            (codes, steps) = (&int8.rows.codes, &int8.rows.steps);
        }
        let partials = &self.shared.split_partials;
        // Unsplit, the product itself; split, the chunks' plain partial products into the
        // scratch, then their sums into C.
        let (main_params, c) = match plan.reduce {
            None => (params, p.c.buf),
            Some(_) => {
                let chunks = MatmulParams {
                    c: op(partials, 0, p.m * p.n, p.n, 1).params(),
                    ..params
                };
                (chunks, partials)
            }
        };
        let mut dispatch = self.kernels.dispatch_product(
            self.device,
            plan.kernel,
            Some(bytemuck::bytes_of(&main_params)),
            &[
                (1, p.a.buf),
                (2, p.b.buf),
                (3, c),
                (4, r.buf),
                (5, qp),
                (7, &self.shared.packed),
                (8, &self.shared.scales),
                (9, codes),
                (10, steps),
            ],
            plan.grid,
        );
        dispatch.flops = 2 * (self.kernels.models() * p.batch * p.m * p.n * p.k) as u64;
        out.push(dispatch);
        if let Some((reduce, grid)) = plan.reduce {
            out.push(self.kernels.dispatch_product(
                self.device,
                reduce,
                Some(bytemuck::bytes_of(&params)),
                &[(3, p.c.buf), (4, r.buf), (5, qp), (6, partials)],
                grid,
            ));
        }
    }

    /// [`Self::product`] of int8 codes and a packed weight matrix: exact integer sums.
    fn integer_product(&self, out: &mut Vec<Dispatch>, p: &Product, int8: Int8Operand) {
        // An unused residual binding still needs a buffer that is not C.
        let qp = &self.shared.qparams;
        let r = p.residual.unwrap_or(op(qp, 0, 0, 0, 0));
        let plan = planner::plan(&self.parallelism, p.shape(), Reads::Int8, p.flags());
        let params = int8.apply(self.product_params(p, r, (plan.splits, plan.k_chunk)));
        assert!(
            !int8.transposed && p.k_split.is_none() && !p.accumulate,
            "an integer product multiplies int8 rows by a packed weight matrix"
        );
        // The lane kernel sums the integers in f32 (exact while they stay below 2^24) and reads
        // the weights a row at a time.
        assert!(
            p.k * 127 < 1 << 24 && p.b.col == 1,
            "an integer product of length {} (weight column stride {}) in lanes",
            p.k,
            p.b.col
        );
        let mut buffers = vec![
            (3, p.c.buf),
            (4, r.buf),
            (5, qp),
            (7, &self.shared.packed),
            (8, &self.shared.scales),
            (9, &int8.rows.codes),
            (10, &int8.rows.steps),
        ];
        if self.parallelism.products == Products::Lanes {
            // Its one entry point names the float operands' bindings too.
            buffers.extend([(1, &self.shared.one), (2, &self.shared.one)]);
        }
        let mut dispatch = self.kernels.dispatch_product(
            self.device,
            plan.kernel,
            Some(bytemuck::bytes_of(&params)),
            &buffers,
            plan.grid,
        );
        dispatch.flops = 2 * (self.kernels.models() * p.batch * p.m * p.n * p.k) as u64;
        out.push(dispatch);
    }

    /// `y = a @ W (+ residual) (+ b)` for a row-major `rows x k` input and the `k x n` parameter
    /// `w` with its bias `b`; an integer product when `a` comes with its int8 codes (its
    /// products read them: `w` is quantised and the activations int8).
    #[allow(clippy::too_many_arguments)]
    fn linear_forward(
        &self,
        out: &mut Vec<Dispatch>,
        (rows, k, n): (usize, usize, usize),
        (a, a_int8): (&wgpu::Buffer, Option<&Int8Rows>),
        (w, b): (ParamId, ParamId),
        y: &wgpu::Buffer,
        residual: Option<Op>,
    ) {
        let qp = &self.shared.qparams;
        let p = Product::new(
            1,
            rows,
            n,
            k,
            op(a, 0, 0, k, 1),
            op(qp, self.off(w), 0, n, 1),
            op(y, 0, 0, n, 1),
        )
        .bias(self.bias_of(b, 0))
        .int8(int8_rows(a_int8, 0, 1));
        self.product(
            out,
            if let Some(r) = residual {
                p.residual(r)
            } else {
                p
            },
        );
    }

    /// Backward of [`Self::linear_forward`]: `dW = a^T dy` into the gradient buffer (the
    /// straight-through gradient of the latent weight) and `da = dy W^T (+ plus)` with the
    /// effective W.
    #[allow(clippy::too_many_arguments)]
    fn linear_backward(
        &self,
        out: &mut Vec<Dispatch>,
        (rows, k, n): (usize, usize, usize),
        (a, a_int8): (&wgpu::Buffer, Option<&Int8Rows>),
        w: ParamId,
        dy: &wgpu::Buffer,
        (da, plus): (&wgpu::Buffer, Option<&wgpu::Buffer>),
    ) {
        let (qp, gr) = (&self.shared.qparams, &self.shared.grads);
        self.product(
            out,
            Product::new(
                1,
                k,
                n,
                rows,
                op(a, 0, 0, 1, k),
                op(dy, 0, 0, n, 1),
                op(gr, self.off(w), 0, n, 1),
            )
            .int8(int8_rows(a_int8, 0, 1).map(Int8Operand::transposed)),
        );
        let input_grad = Product::new(
            1,
            rows,
            k,
            n,
            op(dy, 0, 0, n, 1),
            op(qp, self.off(w), 0, 1, n),
            op(da, 0, 0, k, 1),
        );
        self.product(
            out,
            match plus {
                Some(r) => input_grad.residual(op(r, 0, 0, k, 1)),
                None => input_grad,
            },
        );
    }

    /// Flags of the `Linear` input transform `Qa(N(.))`.
    fn linear_flags(&self) -> u32 {
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
    fn norm_params(&self, rows: usize, width: usize, flags: u32) -> NormParams {
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
    fn row_groups(&self, rows: usize) -> [u32; 3] {
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
    fn linear_input(
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
    fn norm_forward(
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
                (1, x),
                (2, y),
                (3, inv),
                (4, &self.shared.qparams),
                (9, codes),
                (10, steps),
            ],
            self.row_groups(rows),
        ));
    }

    /// `dx = (base +) N'(x)^T dy` for `rows x width`; `x`, `inv` are the forward input and its
    /// inverse RMS.
    fn norm_backward(
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
                (1, x),
                (4, &self.shared.qparams),
                (5, dy),
                (6, base.unwrap_or(dy)),
                (7, dx),
                (8, inv),
            ],
            self.row_groups(rows),
        ));
    }

    fn embed_params(&self) -> EmbedParams {
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

    fn attn_params(&self, n: usize) -> AttnParams {
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
    fn pair_groups(&self, n: usize) -> [u32; 3] {
        Self::lane_groups(n * self.config.n_heads, self.head_lanes())
    }

    /// Starts an epoch: advances the step counter.
    pub fn begin_step(&self) -> Dispatch {
        self.kernels.dispatch(
            self.device,
            Kernel::BeginStep,
            None,
            &[(1, &self.shared.state)],
            [1, 1, 1],
        )
    }

    /// `qparams = Qw(params)` for every parameter.
    fn quantize(&self) -> Dispatch {
        self.kernels.dispatch(
            self.device,
            Kernel::Quantize,
            None,
            &[
                (0, &self.shared.quant_descs),
                (1, &self.shared.params),
                (2, &self.shared.qparams),
                (3, &self.shared.packed),
                (4, &self.shared.scales),
            ],
            [self.layout.entries().len() as u32, 1, 1],
        )
    }

    /// What every forward pass of the current parameters shares: the effective weights
    /// (full-precision ones are their own, in the same buffer) and the tables.
    pub fn prepare(&self) -> Result<Vec<Dispatch>> {
        let mut out = Vec::new();
        if self.config.weights != Weights::F32 {
            out.push(self.quantize());
        }
        out.extend(self.tables()?);
        Ok(out)
    }

    /// Embedding table, its `Linear` input, the K and V tables and the query of `=`.
    fn tables(&self) -> Result<Vec<Dispatch>> {
        let c = self.config;
        let t = self.tables;
        let (d, dh, h, rows) = (c.d_model, c.d_head, c.n_heads, t.rows);
        let qp = &self.shared.qparams;
        let mut out = Vec::new();
        let embed = self.embed_params();
        out.push(self.kernels.dispatch(
            self.device,
            Kernel::BuildTable,
            Some(bytemuck::bytes_of(&embed)),
            &[
                (1, qp),
                (2, &t.x0),
                (5, &self.shared.packed),
                (6, &self.shared.scales),
            ],
            groups_1d(rows * d, 64)?,
        ));
        self.linear_input(&mut out, (rows, d, self.linear_flags()), &t.x0, &t.a0);
        for (w, b, dst) in [
            (ParamId::WK, ParamId::BK, &t.k),
            (ParamId::WV, ParamId::BV, &t.v),
        ] {
            self.product(
                &mut out,
                Product::new(
                    h,
                    rows,
                    dh,
                    d,
                    op(&t.a0.float, 0, 0, d, 1),
                    op(qp, self.off(w), d * dh, dh, 1),
                    op(dst, 0, rows * dh, dh, 1),
                )
                .bias(self.bias_of(b, dh))
                .int8(int8_rows(t.a0.forms().1, 0, 1)),
            );
        }
        self.product(
            &mut out,
            Product::new(
                h,
                1,
                dh,
                d,
                op(&t.a0.float, (rows - 1) * d, 0, 0, 1),
                op(qp, self.off(ParamId::WQ), d * dh, dh, 1),
                op(&t.q, 0, dh, 0, 1),
            )
            .bias(self.bias_of(ParamId::BQ, dh))
            .int8(int8_rows(t.a0.forms().1, rows - 1, 0)),
        );
        Ok(out)
    }

    /// Forward pass of a batch through the loss (and its gradient when the batch has grads),
    /// writing mean loss and accuracy to the `metric` columns of the metrics buffer.
    pub fn forward(&self, b: &Batch, metric: Metric) -> Result<Vec<Dispatch>> {
        let c = self.config;
        let t = self.tables;
        let (n, d, a, m, outputs) = (b.n, c.d_model, c.d_attn(), c.d_mlp, c.d_vocab_out());
        let lin = self.linear_flags();
        let mut out = Vec::new();
        let attn = self.attn_params(n);
        out.push(self.kernels.dispatch(
            self.device,
            Kernel::AttnForward,
            Some(bytemuck::bytes_of(&attn)),
            &[
                (1, &b.examples),
                (2, &t.k),
                (3, &t.v),
                (4, &t.q),
                (5, &b.pattern),
                (6, &b.z),
            ],
            self.pair_groups(n),
        ));
        self.linear_input(&mut out, (n, a, lin), &b.z, &b.az);
        // x1 = x0(=) + Linear(z, W_O): the residual is the table's `=` row, broadcast.
        let eq_row = op(&t.x0, (t.rows - 1) * d, 0, 0, 1);
        let w_o = (ParamId::WO, ParamId::BO);
        self.linear_forward(&mut out, (n, a, d), b.az.forms(), w_o, &b.x1, Some(eq_row));
        self.linear_input(&mut out, (n, d, lin), &b.x1, &b.a1);
        let w_in = (ParamId::WIn, ParamId::BIn);
        self.linear_forward(&mut out, (n, d, m), b.a1.forms(), w_in, &b.pre, None);
        self.linear_input(&mut out, (n, m, lin | NORM_RELU_INPUT), &b.pre, &b.a2);
        let x1 = op(&b.x1, 0, 0, d, 1);
        let w_out = (ParamId::WOut, ParamId::BOut);
        self.linear_forward(&mut out, (n, m, d), b.a2.forms(), w_out, &b.x2, Some(x1));
        let unembed_in = if c.final_norm {
            self.norm_forward(
                &mut out,
                (n, d, NORM_RMS | NORM_GAIN),
                [&b.x2, &b.x2n, &b.inv_f],
                None,
            );
            &b.x2n
        } else {
            &b.x2
        };
        self.linear_forward(
            &mut out,
            (n, d, outputs),
            (unembed_in, None),
            (ParamId::WU, ParamId::BU),
            &b.logits,
            None,
        );
        let loss = LossParams {
            n: n as u32,
            p: outputs as u32,
            metric: metric as u32,
            with_grad: b.grads.is_some() as u32,
            inv_n: 1.0 / n as f32,
            metric_slots: self.shared.metric_slots as u32,
            lanes: self.parallelism.row_lanes as u32,
            _pad: 0,
        };
        out.push(self.kernels.dispatch(
            self.device,
            Kernel::ExampleLoss,
            Some(bytemuck::bytes_of(&loss)),
            &[
                (1, &b.logits),
                (2, &b.labels),
                (3, &b.per_example),
                (4, &b.dlogits),
            ],
            self.row_groups(n),
        ));
        out.push(self.kernels.dispatch(
            self.device,
            Kernel::ReduceMetrics,
            Some(bytemuck::bytes_of(&loss)),
            &[
                (5, &b.per_example),
                (6, &self.shared.state),
                (7, &self.shared.metrics),
                (8, &b.groups),
            ],
            [1, 1, 1],
        ));
        Ok(out)
    }

    /// Backward pass of a batch whose forward has run: writes every parameter's gradient.
    pub fn backward(&self, b: &Batch) -> Result<Vec<Dispatch>> {
        let c = self.config;
        let t = self.tables;
        let g = b
            .grads
            .as_ref()
            .expect("backward needs a batch with gradient buffers");
        let (n, d, a, m, outputs, h, dh, rows) = (
            b.n,
            c.d_model,
            c.d_attn(),
            c.d_mlp,
            c.d_vocab_out(),
            c.n_heads,
            c.d_head,
            t.rows,
        );
        let eq = (rows - 1) * d;
        let qp = &self.shared.qparams;
        let gr = &self.shared.grads;
        let lin = self.linear_flags();
        let mut out = Vec::new();

        // Unembedding and final norm.
        let unembed_in = if c.final_norm { &b.x2n } else { &b.x2 };
        let by_row = |buf, width| op(buf, 0, 0, width, 1);
        self.bias_backward(
            &mut out,
            ParamId::BU,
            by_row(&b.dlogits, outputs),
            (1, n, outputs),
        );
        self.linear_backward(
            &mut out,
            (n, d, outputs),
            (unembed_in, None),
            ParamId::WU,
            &b.dlogits,
            (&g.dx2n, None),
        );
        let dx2 = if c.final_norm { &g.dx2 } else { &g.dx2n };
        if c.final_norm {
            self.norm_backward(
                &mut out,
                (n, d, NORM_RMS | NORM_GAIN),
                &g.dx2n,
                (&b.x2, &b.inv_f),
                None,
                &g.dx2,
            );
            let params = self.norm_params(n, d, 0);
            out.push(self.kernels.dispatch(
                self.device,
                Kernel::GainGrad,
                Some(bytemuck::bytes_of(&params)),
                &[(1, &b.x2), (5, &g.dx2n), (7, gr), (8, &b.inv_f)],
                [d as u32, 1, 1],
            ));
        }

        // MLP, then the attention output; dx1 collects the residual's dx2.
        self.bias_backward(&mut out, ParamId::BOut, by_row(dx2, d), (1, n, d));
        self.linear_backward(
            &mut out,
            (n, m, d),
            b.a2.forms(),
            ParamId::WOut,
            dx2,
            (&g.da2, None),
        );
        self.norm_backward(
            &mut out,
            (n, m, lin | NORM_RELU_INPUT),
            &g.da2,
            (&b.pre, &b.a2.inv),
            None,
            &g.dpre,
        );
        self.bias_backward(&mut out, ParamId::BIn, by_row(&g.dpre, m), (1, n, m));
        // dx1 = dx2 + N'(x1)^T da1; the input-gradient product writes it directly when the
        // input is x1 itself.
        let da1 = if b.a1.identity {
            (&g.dx1, Some(dx2))
        } else {
            (&g.da1, None)
        };
        self.linear_backward(
            &mut out,
            (n, d, m),
            b.a1.forms(),
            ParamId::WIn,
            &g.dpre,
            da1,
        );
        if !b.a1.identity {
            self.norm_backward(
                &mut out,
                (n, d, lin),
                &g.da1,
                (&b.x1, &b.a1.inv),
                Some(dx2),
                &g.dx1,
            );
        }
        self.bias_backward(&mut out, ParamId::BO, by_row(&g.dx1, d), (1, n, d));
        let daz = if b.az.identity { &g.dz } else { &g.daz };
        self.linear_backward(
            &mut out,
            (n, a, d),
            b.az.forms(),
            ParamId::WO,
            &g.dx1,
            (daz, None),
        );
        if !b.az.identity {
            self.norm_backward(
                &mut out,
                (n, a, lin),
                &g.daz,
                (&b.z, &b.az.inv),
                None,
                &g.dz,
            );
        }

        // Attention pattern, then the K, V tables and the query.
        let attn = self.attn_params(n);
        let attn = Some(bytemuck::bytes_of(&attn));
        out.push(self.kernels.dispatch(
            self.device,
            Kernel::ScoreGrad,
            attn,
            &[
                (1, &b.examples),
                (3, &t.v),
                (7, &b.pattern),
                (8, &g.dz),
                (9, &g.ds),
            ],
            self.pair_groups(n),
        ));
        let table_grad = [
            (4, &t.q),
            (7, &b.pattern),
            (8, &g.dz),
            (10, &g.ds),
            (13, &t.dk),
            (14, &t.dv),
            (16, &t.row_ds),
        ];
        let mut csr = table_grad.to_vec();
        csr.extend([(11, &g.csr_start), (12, &g.csr_items)]);
        out.push(self.kernels.dispatch(
            self.device,
            Kernel::TableGrad,
            attn,
            &csr,
            groups_1d(h * rows * dh, 64)?,
        ));
        out.push(self.kernels.dispatch(
            self.device,
            Kernel::EqRowGrad,
            attn,
            &table_grad,
            [(h * dh) as u32, 1, 1],
        ));
        out.push(self.kernels.dispatch(
            self.device,
            Kernel::QueryGrad,
            attn,
            &[(2, &t.k), (15, &t.dq), (17, &t.row_ds)],
            self.row_groups(a),
        ));

        // Their biases: column sums of the table gradients per head, and the query's gradient.
        for (bias, dt) in [(ParamId::BK, &t.dk), (ParamId::BV, &t.dv)] {
            self.bias_backward(&mut out, bias, op(dt, 0, rows * dh, dh, 1), (h, rows, dh));
        }
        self.bias_backward(&mut out, ParamId::BQ, op(&t.dq, 0, dh, 0, 1), (h, 1, dh));
        // W_K, W_V, W_Q from the table gradients (one product per head, batched).
        for (w, dt) in [(ParamId::WK, &t.dk), (ParamId::WV, &t.dv)] {
            let dw = op(gr, self.off(w), d * dh, dh, 1);
            self.product(
                &mut out,
                Product::new(
                    h,
                    d,
                    dh,
                    rows,
                    op(&t.a0.float, 0, 0, 1, d),
                    op(dt, 0, rows * dh, dh, 1),
                    dw,
                )
                .int8(int8_rows(t.a0.forms().1, 0, 1).map(Int8Operand::transposed)),
            );
        }
        let dwq = op(gr, self.off(ParamId::WQ), d * dh, dh, 1);
        self.product(
            &mut out,
            Product::new(
                h,
                d,
                dh,
                1,
                op(&t.a0.float, eq, 0, 1, 0),
                op(&t.dq, 0, dh, 0, 1),
                dwq,
            )
            .int8(int8_rows(t.a0.forms().1, rows - 1, 0).map(Int8Operand::transposed)),
        );
        // d a0 = sum over heads of dK_h W_K[h]^T + dV_h W_V[h]^T (+ dq_h W_Q[h]^T on the `=` row):
        // the contraction runs over (head, d_head) pairs. It is d x0 itself when a0 is x0.
        let da0 = if t.a0.identity { &t.dx0 } else { &t.da0 };
        for (i, (w, dt)) in [(ParamId::WK, &t.dk), (ParamId::WV, &t.dv)]
            .into_iter()
            .enumerate()
        {
            let wt = op(qp, self.off(w), 0, 1, dh);
            let prod = Product::new(1, rows, d, a, op(dt, 0, 0, dh, 1), wt, op(da0, 0, 0, d, 1))
                .k_split(dh, rows * dh, d * dh);
            self.product(&mut out, if i == 0 { prod } else { prod.accumulate() });
        }
        let wqt = op(qp, self.off(ParamId::WQ), 0, 1, dh);
        let da0_eq = op(da0, eq, 0, 0, 1);
        self.product(
            &mut out,
            Product::new(1, 1, d, a, op(&t.dq, 0, 0, 0, 1), wqt, da0_eq)
                .k_split(dh, dh, d * dh)
                .accumulate(),
        );
        if !t.a0.identity {
            self.norm_backward(
                &mut out,
                (rows, d, lin),
                &t.da0,
                (&t.x0, &t.a0.inv),
                None,
                &t.dx0,
            );
        }
        // The `=` row also feeds x1 directly through the residual: add the column sum of dx1.
        let ones = op(&self.shared.one, 0, 0, 0, 0);
        let dx0_eq = op(&t.dx0, eq, 0, 0, 1);
        self.product(
            &mut out,
            Product::new(1, 1, d, n, ones, op(&g.dx1, 0, 0, d, 1), dx0_eq).accumulate(),
        );
        let embed = self.embed_params();
        out.push(self.kernels.dispatch(
            self.device,
            Kernel::EmbedGrad,
            Some(bytemuck::bytes_of(&embed)),
            &[(3, &t.dx0), (4, gr)],
            groups_1d((c.d_vocab() + 3) * d, 64)?,
        ));
        Ok(out)
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
                &[(0, &self.shared.quant_descs), (5, &self.shared.grads)],
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
                (0, &s.hypers),
                (1, &s.state),
                (2, &s.params),
                (3, &s.grads),
                (4, &s.m),
                (5, &s.v),
            ],
            groups_2d(self.layout.total(), 256),
        )
    }
}
