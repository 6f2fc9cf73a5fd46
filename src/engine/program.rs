//! The dispatch sequences of one training epoch and of one evaluation, recorded once and
//! replayed every epoch. Shapes: n examples, D d_model, A = H*Dh, M d_mlp, P = p classes,
//! R = 2p + 1 table rows (row 2p is `=`).

use anyhow::Result;

use super::buffers::{Batch, Int8Rows, LinearInput, Tables};
use super::device::Parallelism;
use super::kernels::{groups_1d, groups_2d, Dispatch, Kernel, Kernels};
use super::layout::ParamLayout;
use super::products::{int8_rows, Int8Operand, Op, Product};
use super::uniforms::{AttnParams, EmbedParams, LossParams, NormParams};
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
                    Op::matrix(&t.a0.float, 0, d),
                    Op::batched(qp, self.off(w), d * dh, dh),
                    Op::batched(dst, 0, rows * dh, dh),
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
                Op::row(&t.a0.float, (rows - 1) * d),
                Op::batched(qp, self.off(ParamId::WQ), d * dh, dh),
                Op::batched_row(&t.q, 0, dh),
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
        let eq_row = Op::row(&t.x0, (t.rows - 1) * d);
        let w_o = (ParamId::WO, ParamId::BO);
        self.linear_forward(&mut out, (n, a, d), b.az.forms(), w_o, &b.x1, Some(eq_row));
        self.linear_input(&mut out, (n, d, lin), &b.x1, &b.a1);
        let w_in = (ParamId::WIn, ParamId::BIn);
        self.linear_forward(&mut out, (n, d, m), b.a1.forms(), w_in, &b.pre, None);
        self.linear_input(&mut out, (n, m, lin | NORM_RELU_INPUT), &b.pre, &b.a2);
        let x1 = Op::matrix(&b.x1, 0, d);
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
        let by_row = |buf, width| Op::matrix(buf, 0, width);
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
            self.bias_backward(
                &mut out,
                bias,
                Op::batched(dt, 0, rows * dh, dh),
                (h, rows, dh),
            );
        }
        self.bias_backward(
            &mut out,
            ParamId::BQ,
            Op::batched_row(&t.dq, 0, dh),
            (h, 1, dh),
        );
        // W_K, W_V, W_Q from the table gradients (one product per head, batched).
        for (w, dt) in [(ParamId::WK, &t.dk), (ParamId::WV, &t.dv)] {
            let dw = Op::batched(gr, self.off(w), d * dh, dh);
            self.product(
                &mut out,
                Product::new(
                    h,
                    d,
                    dh,
                    rows,
                    Op::transposed(&t.a0.float, 0, d),
                    Op::batched(dt, 0, rows * dh, dh),
                    dw,
                )
                .int8(int8_rows(t.a0.forms().1, 0, 1).map(Int8Operand::transposed)),
            );
        }
        let dwq = Op::batched(gr, self.off(ParamId::WQ), d * dh, dh);
        self.product(
            &mut out,
            Product::new(
                h,
                d,
                dh,
                1,
                Op::column(&t.a0.float, eq),
                Op::batched_row(&t.dq, 0, dh),
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
            let wt = Op::transposed(qp, self.off(w), dh);
            let prod = Product::new(
                1,
                rows,
                d,
                a,
                Op::matrix(dt, 0, dh),
                wt,
                Op::matrix(da0, 0, d),
            )
            .k_split(dh, rows * dh, d * dh);
            self.product(&mut out, if i == 0 { prod } else { prod.accumulate() });
        }
        let wqt = Op::transposed(qp, self.off(ParamId::WQ), dh);
        let da0_eq = Op::row(da0, eq);
        self.product(
            &mut out,
            Product::new(1, 1, d, a, Op::row(&t.dq, 0), wqt, da0_eq)
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
        let ones = Op::scalar(&self.shared.one);
        let dx0_eq = Op::row(&t.dx0, eq);
        self.product(
            &mut out,
            Product::new(1, 1, d, n, ones, Op::matrix(&g.dx1, 0, d), dx0_eq).accumulate(),
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
