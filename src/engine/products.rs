//! The matrix products of the programs: their operands, and the recording of a product as
//! the planner (planner.rs) lays it out.

use super::bindings::matmul;
use super::buffers::Int8Rows;
use super::device::Products;
use super::kernels::{Dispatch, Kernel};
use super::planner::{self, Reads, Shape};
use super::program::Recorder;
use super::uniforms::{MatmulParams, OperandParams};
use crate::model::{ParamId, Weights};

/// A matrix operand: buffer, element offset and strides (batch, row, column); made by the
/// constructors below, one per layout the programs read.
#[derive(Clone, Copy)]
pub(super) struct Op<'a> {
    buf: &'a wgpu::Buffer,
    off: usize,
    batch: usize,
    row: usize,
    col: usize,
}

impl<'a> Op<'a> {
    /// A row-major matrix of `width` columns at `off`.
    pub(super) fn matrix(buf: &'a wgpu::Buffer, off: usize, width: usize) -> Self {
        Self::batched(buf, off, 0, width)
    }

    /// The transpose of the row-major matrix of `width` columns at `off`.
    pub(super) fn transposed(buf: &'a wgpu::Buffer, off: usize, width: usize) -> Self {
        Op {
            buf,
            off,
            batch: 0,
            row: 1,
            col: width,
        }
    }

    /// A batch of row-major matrices of `width` columns, `stride` elements apart (one per
    /// head).
    pub(super) fn batched(buf: &'a wgpu::Buffer, off: usize, stride: usize, width: usize) -> Self {
        Op {
            buf,
            off,
            batch: stride,
            row: width,
            col: 1,
        }
    }

    /// The row at `off`, read as every row of the matrix (broadcast).
    pub(super) fn row(buf: &'a wgpu::Buffer, off: usize) -> Self {
        Self::batched_row(buf, off, 0)
    }

    /// One broadcast row per batch matrix, `stride` elements apart.
    pub(super) fn batched_row(buf: &'a wgpu::Buffer, off: usize, stride: usize) -> Self {
        Self::batched(buf, off, stride, 0)
    }

    /// The row at `off` as a column vector (its transpose).
    pub(super) fn column(buf: &'a wgpu::Buffer, off: usize) -> Self {
        Op {
            buf,
            off,
            batch: 0,
            row: 1,
            col: 0,
        }
    }

    /// The first element of `buf` as every element.
    pub(super) fn scalar(buf: &'a wgpu::Buffer) -> Self {
        Op {
            buf,
            off: 0,
            batch: 0,
            row: 0,
            col: 0,
        }
    }

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
pub(super) struct Product<'a> {
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

/// A `Linear` of the model: `rows x k` inputs (with their int8 codes when its products read
/// them: its weights quantised, the activations int8) times the `k x n` parameter `w`, plus its
/// bias `b`.
#[derive(Clone, Copy)]
pub(super) struct Linear<'a> {
    pub shape: (usize, usize, usize),
    pub input: (&'a wgpu::Buffer, Option<&'a Int8Rows>),
    pub params: (ParamId, ParamId),
}

/// The int8 form of a product's A operand: rows `first, first + stride, ...` of `rows`
/// (stride 0 repeats one row), or their transpose (A's columns).
#[derive(Clone, Copy)]
pub(super) struct Int8Operand<'a> {
    rows: &'a Int8Rows,
    first: usize,
    stride: usize,
    transposed: bool,
}

/// The int8 operand of a `Linear` input's rows `first, first + stride, ...`, when its products
/// read int8 codes (`rows`: [`LinearInput::forms`]).
pub(super) fn int8_rows(
    rows: Option<&Int8Rows>,
    first: usize,
    stride: usize,
) -> Option<Int8Operand<'_>> {
    rows.map(|rows| Int8Operand {
        rows,
        first,
        stride,
        transposed: false,
    })
}

impl Int8Operand<'_> {
    pub(super) fn transposed(self) -> Self {
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
            a: OperandParams {
                off: off as u32,
                s_batch: 0,
                s_row: s_row as u32,
                s_col: s_col as u32,
            },
            a_steps_off: self.first as u32,
            a_steps_row: steps_row as u32,
            a_steps_col: steps_col as u32,
            ..params
        }
    }
}

impl<'a> Product<'a> {
    /// `batch` products of m x k times k x n.
    pub(super) fn new(
        (batch, m, n, k): (usize, usize, usize, usize),
        a: Op<'a>,
        b: Op<'a>,
        c: Op<'a>,
    ) -> Self {
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
    /// Adds `r` when it is given.
    pub(super) fn residual(mut self, r: Option<Op<'a>>) -> Self {
        self.residual = r;
        self
    }
    pub(super) fn bias(mut self, bias: Option<(usize, usize)>) -> Self {
        self.bias = bias;
        self
    }
    pub(super) fn accumulate(mut self) -> Self {
        self.accumulate = true;
        self
    }
    pub(super) fn k_split(mut self, div: usize, a_hi: usize, b_hi: usize) -> Self {
        self.k_split = Some((div, a_hi, b_hi));
        self
    }
    /// Reads A from `int8` instead when it is given.
    pub(super) fn int8(mut self, int8: Option<Int8Operand<'a>>) -> Self {
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

impl Recorder<'_> {
    /// The bias operand of `id` (offset, batch stride) when the model has biases.
    pub(super) fn bias_of(&self, id: ParamId, batch_stride: usize) -> Option<(usize, usize)> {
        self.config.biases.then(|| (self.off(id), batch_stride))
    }

    /// `grads[id] (+)= column sums of the rows x cols matrix dy` (per batch): the gradient of a
    /// bias added to every row, when the model has biases.
    pub(super) fn bias_backward(
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
        let ones = Op::scalar(&self.shared.one);
        let gr = &self.shared.grads;
        let db = Op::batched_row(gr, self.off(id), cols);
        self.product(out, Product::new((batch, 1, cols, rows), ones, dy, db));
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
    pub(super) fn packed_location(&self, id: ParamId) -> Option<(u32, u32, u32)> {
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

    pub(super) fn product(&self, out: &mut Vec<Dispatch>, p: Product) {
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
                    c: Op::batched(partials, 0, p.m * p.n, p.n).params(),
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
                (matmul::A_BUF, p.a.buf),
                (matmul::B_BUF, p.b.buf),
                (matmul::C_BUF, c),
                (matmul::R_BUF, r.buf),
                (matmul::BIAS_BUF, qp),
                (matmul::PACKED, &self.shared.packed),
                (matmul::SCALES, &self.shared.scales),
                (matmul::A_CODES, codes),
                (matmul::A_STEPS, steps),
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
                &[
                    (matmul::C_BUF, p.c.buf),
                    (matmul::R_BUF, r.buf),
                    (matmul::BIAS_BUF, qp),
                    (matmul::PARTIALS, partials),
                ],
                grid,
            ));
        }
    }

    /// [`Self::product`] of int8 codes and a packed weight matrix: exact integer sums.
    fn integer_product(&self, out: &mut Vec<Dispatch>, p: &Product, int8: Int8Operand) {
        // An unused residual binding still needs a buffer that is not C.
        let qp = &self.shared.qparams;
        let r = p.residual.unwrap_or(Op::scalar(qp));
        let plan = planner::plan(&self.parallelism, p.shape(), Reads::Int8, p.flags());
        let params = int8.apply(self.product_params(p, r, (plan.splits, plan.k_chunk)));
        assert!(
            !int8.transposed && p.k_split.is_none() && !p.accumulate,
            "an integer product multiplies int8 rows by a packed weight matrix"
        );
        // The lane kernel and the f16 tiles sum the integers in f32 (exact while they stay below
        // 2^24); the lane kernel reads the weights a row at a time.
        assert!(
            p.k * 127 < 1 << 24 && p.b.col == 1,
            "an integer product of length {} (weight column stride {}) in f32",
            p.k,
            p.b.col
        );
        let mut buffers = vec![
            (matmul::C_BUF, p.c.buf),
            (matmul::R_BUF, r.buf),
            (matmul::BIAS_BUF, qp),
            (matmul::PACKED, &self.shared.packed),
            (matmul::SCALES, &self.shared.scales),
            (matmul::A_CODES, &int8.rows.codes),
            (matmul::A_STEPS, &int8.rows.steps),
        ];
        if matches!(plan.kernel.0, Kernel::LaneMatmul | Kernel::F16Tiles(..)) {
            // Their one source, for every operand form, names the float operands' bindings too.
            buffers.extend([
                (matmul::A_BUF, &self.shared.one),
                (matmul::B_BUF, &self.shared.one),
            ]);
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

    /// `y = a @ W (+ residual) (+ b)`: an integer product when the input comes with its int8
    /// codes.
    pub(super) fn linear_forward(
        &self,
        out: &mut Vec<Dispatch>,
        linear: Linear,
        y: &wgpu::Buffer,
        residual: Option<Op>,
    ) {
        let Linear {
            shape: (rows, k, n),
            input: (a, a_int8),
            params: (w, b),
        } = linear;
        let qp = &self.shared.qparams;
        let p = Product::new(
            (1, rows, n, k),
            Op::matrix(a, 0, k),
            Op::matrix(qp, self.off(w), n),
            Op::matrix(y, 0, n),
        )
        .bias(self.bias_of(b, 0))
        .int8(int8_rows(a_int8, 0, 1))
        .residual(residual);
        self.product(out, p);
    }

    /// Backward of [`Self::linear_forward`]: `dW = a^T dy` into the gradient buffer (the
    /// straight-through gradient of the latent weight) and `da = dy W^T (+ plus)` with the
    /// effective W.
    pub(super) fn linear_backward(
        &self,
        out: &mut Vec<Dispatch>,
        linear: Linear,
        dy: &wgpu::Buffer,
        (da, plus): (&wgpu::Buffer, Option<&wgpu::Buffer>),
    ) {
        let Linear {
            shape: (rows, k, n),
            input: (a, a_int8),
            params: (w, b),
        } = linear;
        let (qp, gr) = (&self.shared.qparams, &self.shared.grads);
        self.bias_backward(out, b, Op::matrix(dy, 0, n), (1, rows, n));
        self.product(
            out,
            Product::new(
                (1, k, n, rows),
                Op::transposed(a, 0, k),
                Op::matrix(dy, 0, n),
                Op::matrix(gr, self.off(w), n),
            )
            .int8(int8_rows(a_int8, 0, 1).map(Int8Operand::transposed)),
        );
        let input_grad = Product::new(
            (1, rows, k, n),
            Op::matrix(dy, 0, n),
            Op::transposed(qp, self.off(w), n),
            Op::matrix(da, 0, k),
        )
        .residual(plus.map(|r| Op::matrix(r, 0, k)));
        self.product(out, input_grad);
    }
}
