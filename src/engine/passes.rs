//! The model's forward and backward passes as lists of steps, the backward mirroring the
//! forward step for step in reverse (the style of llm.c's `gpt2_forward` and `gpt2_backward`).
//! The tables (embedding, K, V and the query of `=`) depend only on the parameters: they are
//! built once per update by [`Recorder::prepare`], and a batch's pass starts at the attention.

use anyhow::Result;

use super::bindings::{attention, embed, loss, norm};
use super::buffers::{Batch, BatchGrads};
use super::kernels::{groups_1d, Dispatch, Kernel};
use super::products::{int8_rows, Int8Operand, Linear, Op, Product};
use super::program::{Metric, Recorder, NORM_GAIN, NORM_RELU_INPUT, NORM_RMS};
use super::uniforms::LossParams;
use crate::model::{ParamId, Weights};

/// The model's `Linear`s.
#[derive(Clone, Copy)]
enum Layer {
    AttnOut,
    MlpIn,
    MlpOut,
    Unembed,
}

impl Recorder<'_> {
    /// What every forward pass of the current parameters shares: the effective weights
    /// (full-precision ones are their own, in the same buffer) and the tables.
    pub fn prepare(&self) -> Result<Vec<Dispatch>> {
        let mut out = Vec::new();
        if self.config.weights != Weights::F32 {
            out.push(self.quantize());
        }
        self.embed_forward(&mut out)?;
        self.qkv_forward(&mut out);
        Ok(out)
    }

    /// Forward pass of a batch through the loss (and its gradient when the batch has grads),
    /// writing mean loss and accuracy to the `metric` columns of the metrics buffer.
    pub fn forward(&self, b: &Batch, metric: Metric) -> Result<Vec<Dispatch>> {
        let mut out = Vec::new();
        self.attention_forward(&mut out, b);
        self.attn_out_forward(&mut out, b);
        self.mlp_forward(&mut out, b);
        self.final_norm_forward(&mut out, b);
        self.unembed_forward(&mut out, b);
        self.loss(&mut out, b, metric);
        Ok(out)
    }

    /// Backward pass of a batch whose forward has run (the loss wrote its logits' gradient):
    /// writes every parameter's gradient.
    pub fn backward(&self, b: &Batch) -> Result<Vec<Dispatch>> {
        let g = b
            .grads
            .as_ref()
            .expect("backward needs a batch with gradient buffers");
        let mut out = Vec::new();
        self.unembed_backward(&mut out, b, g);
        let dx2 = self.final_norm_backward(&mut out, b, g);
        self.mlp_backward(&mut out, b, g, dx2);
        self.attn_out_backward(&mut out, b, g);
        self.attention_backward(&mut out, b, g)?;
        self.qkv_backward(&mut out);
        self.embed_backward(&mut out, b, g)?;
        Ok(out)
    }

    /// The table of every row's x0: token embedding (+ position embedding).
    fn embed_forward(&self, out: &mut Vec<Dispatch>) -> Result<()> {
        let t = self.tables;
        let embed = self.embed_params();
        out.push(self.kernels.dispatch(
            self.device,
            Kernel::BuildTable,
            Some(bytemuck::bytes_of(&embed)),
            &[
                (embed::QPARAMS, &self.shared.qparams),
                (embed::TABLE, &t.x0),
                (embed::PACKED, &self.shared.packed),
                (embed::SCALES, &self.shared.scales),
            ],
            groups_1d(t.rows * self.config.d_model, 64)?,
        ));
        Ok(())
    }

    /// The `Linear` input of the tables, the K and V tables (one product per head, batched)
    /// and the query of `=`.
    fn qkv_forward(&self, out: &mut Vec<Dispatch>) {
        let c = self.config;
        let t = self.tables;
        let (d, dh, h, rows) = (c.d_model, c.d_head, c.n_heads, t.rows);
        let qp = &self.shared.qparams;
        self.linear_input(out, (rows, d, self.linear_flags()), &t.x0, &t.a0);
        for (w, b, dst) in [
            (ParamId::WK, ParamId::BK, &t.k),
            (ParamId::WV, ParamId::BV, &t.v),
        ] {
            self.product(
                out,
                Product::new(
                    (h, rows, dh, d),
                    Op::matrix(&t.a0.float, 0, d),
                    Op::batched(qp, self.off(w), d * dh, dh),
                    Op::batched(dst, 0, rows * dh, dh),
                )
                .bias(self.bias_of(b, dh))
                .int8(int8_rows(t.a0.forms().1, 0, 1)),
            );
        }
        self.product(
            out,
            Product::new(
                (h, 1, dh, d),
                Op::row(&t.a0.float, (rows - 1) * d),
                Op::batched(qp, self.off(ParamId::WQ), d * dh, dh),
                Op::batched_row(&t.q, 0, dh),
            )
            .bias(self.bias_of(ParamId::BQ, dh))
            .int8(int8_rows(t.a0.forms().1, rows - 1, 0)),
        );
    }

    /// The attention of `=` over (a, b, =): its pattern and z.
    fn attention_forward(&self, out: &mut Vec<Dispatch>, b: &Batch) {
        let t = self.tables;
        let attn = self.attn_params(b.n);
        out.push(self.kernels.dispatch(
            self.device,
            Kernel::AttnForward,
            Some(bytemuck::bytes_of(&attn)),
            &[
                (attention::EXAMPLES, &b.examples),
                (attention::K_TAB, &t.k),
                (attention::V_TAB, &t.v),
                (attention::Q, &t.q),
                (attention::PATTERN, &b.pattern),
                (attention::Z, &b.z),
            ],
            self.pair_groups(b.n),
        ));
    }

    /// x1 = x0(=) + Linear(z, W_O): the residual is the table's `=` row, broadcast.
    fn attn_out_forward(&self, out: &mut Vec<Dispatch>, b: &Batch) {
        let c = self.config;
        let (n, d, a) = (b.n, c.d_model, c.d_attn());
        self.linear_input(out, (n, a, self.linear_flags()), &b.z, &b.az);
        let eq_row = Op::row(&self.tables.x0, (self.tables.rows - 1) * d);
        self.linear_forward(out, self.linear(Layer::AttnOut, b), &b.x1, Some(eq_row));
    }

    /// x2 = x1 + Linear(ReLU(Linear(x1, W_in)), W_out).
    fn mlp_forward(&self, out: &mut Vec<Dispatch>, b: &Batch) {
        let c = self.config;
        let (n, d, m) = (b.n, c.d_model, c.d_mlp);
        let lin = self.linear_flags();
        self.linear_input(out, (n, d, lin), &b.x1, &b.a1);
        self.linear_forward(out, self.linear(Layer::MlpIn, b), &b.pre, None);
        self.linear_input(out, (n, m, lin | NORM_RELU_INPUT), &b.pre, &b.a2);
        let x1 = Op::matrix(&b.x1, 0, d);
        self.linear_forward(out, self.linear(Layer::MlpOut, b), &b.x2, Some(x1));
    }

    /// x2n, the final norm of x2 (the unembedding's input, where the model has one).
    fn final_norm_forward(&self, out: &mut Vec<Dispatch>, b: &Batch) {
        if self.config.final_norm {
            let shape = (b.n, self.config.d_model, NORM_RMS | NORM_GAIN);
            self.norm_forward(out, shape, [&b.x2, &b.x2n, &b.inv_f], None);
        }
    }

    fn unembed_forward(&self, out: &mut Vec<Dispatch>, b: &Batch) {
        self.linear_forward(out, self.linear(Layer::Unembed, b), &b.logits, None);
    }

    /// A `Linear` of the model on batch `b`: one description for its forward and backward.
    fn linear<'b>(&self, layer: Layer, b: &'b Batch) -> Linear<'b> {
        let c = self.config;
        let d = c.d_model;
        let (k, n, input, params) = match layer {
            Layer::AttnOut => (c.d_attn(), d, b.az.forms(), (ParamId::WO, ParamId::BO)),
            Layer::MlpIn => (d, c.d_mlp, b.a1.forms(), (ParamId::WIn, ParamId::BIn)),
            Layer::MlpOut => (c.d_mlp, d, b.a2.forms(), (ParamId::WOut, ParamId::BOut)),
            Layer::Unembed => {
                let input = if c.final_norm { &b.x2n } else { &b.x2 };
                (
                    d,
                    c.d_vocab_out(),
                    (input, None),
                    (ParamId::WU, ParamId::BU),
                )
            }
        };
        Linear {
            shape: (b.n, k, n),
            input,
            params,
        }
    }

    /// Per-example loss and correctness (and the logits' gradient), and their means into the
    /// metrics buffer.
    fn loss(&self, out: &mut Vec<Dispatch>, b: &Batch, metric: Metric) {
        let (n, outputs) = (b.n, self.config.d_vocab_out());
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
                (loss::LOGITS, &b.logits),
                (loss::LABELS, &b.labels),
                (loss::PER_EXAMPLE, &b.per_example),
                (loss::DLOGITS, &b.dlogits),
            ],
            self.row_groups(n),
        ));
        out.push(self.kernels.dispatch(
            self.device,
            Kernel::ReduceMetrics,
            Some(bytemuck::bytes_of(&loss)),
            &[
                (loss::PER_EXAMPLE_IN, &b.per_example),
                (loss::STATE, &self.shared.state),
                (loss::METRICS, &self.shared.metrics),
                (loss::GROUPS, &b.groups),
            ],
            [1, 1, 1],
        ));
    }

    /// d(unembedding input) into dx2n, whichever it is.
    fn unembed_backward(&self, out: &mut Vec<Dispatch>, b: &Batch, g: &BatchGrads) {
        let unembed = self.linear(Layer::Unembed, b);
        self.linear_backward(out, unembed, &b.dlogits, (&g.dx2n, None));
    }

    /// dx2, and the final norm's gain gradient: dx2n itself without a final norm.
    fn final_norm_backward<'b>(
        &self,
        out: &mut Vec<Dispatch>,
        b: &Batch,
        g: &'b BatchGrads,
    ) -> &'b wgpu::Buffer {
        if !self.config.final_norm {
            return &g.dx2n;
        }
        let (n, d) = (b.n, self.config.d_model);
        let inputs = (&b.x2, &b.inv_f);
        self.norm_backward(
            out,
            (n, d, NORM_RMS | NORM_GAIN),
            &g.dx2n,
            inputs,
            None,
            &g.dx2,
        );
        let params = self.norm_params(n, d, 0);
        out.push(self.kernels.dispatch(
            self.device,
            Kernel::GainGrad,
            Some(bytemuck::bytes_of(&params)),
            &[
                (norm::X, &b.x2),
                (norm::DY, &g.dx2n),
                (norm::DX, &self.shared.grads),
                (norm::INV_RMS_IN, &b.inv_f),
            ],
            [d as u32, 1, 1],
        ));
        &g.dx2
    }

    /// dx1 = dx2 (the residual) + the MLP's input gradient.
    fn mlp_backward(&self, out: &mut Vec<Dispatch>, b: &Batch, g: &BatchGrads, dx2: &wgpu::Buffer) {
        let c = self.config;
        let (n, d, m) = (b.n, c.d_model, c.d_mlp);
        let lin = self.linear_flags();
        self.linear_backward(out, self.linear(Layer::MlpOut, b), dx2, (&g.da2, None));
        let relu = (n, m, lin | NORM_RELU_INPUT);
        self.linear_input_backward(out, relu, &g.da2, (&b.pre, &b.a2), None, &g.dpre);
        // The input-gradient product writes dx1 directly when the input is x1 itself.
        let da1 = if b.a1.identity {
            (&g.dx1, Some(dx2))
        } else {
            (&g.da1, None)
        };
        self.linear_backward(out, self.linear(Layer::MlpIn, b), &g.dpre, da1);
        self.linear_input_backward(out, (n, d, lin), &g.da1, (&b.x1, &b.a1), Some(dx2), &g.dx1);
    }

    /// dz from dx1.
    fn attn_out_backward(&self, out: &mut Vec<Dispatch>, b: &Batch, g: &BatchGrads) {
        let (n, a) = (b.n, self.config.d_attn());
        let daz = if b.az.identity { &g.dz } else { &g.daz };
        self.linear_backward(out, self.linear(Layer::AttnOut, b), &g.dx1, (daz, None));
        let shape = (n, a, self.linear_flags());
        self.linear_input_backward(out, shape, &g.daz, (&b.z, &b.az), None, &g.dz);
    }

    /// The scores' gradient, then the K and V tables' and the query's.
    fn attention_backward(&self, out: &mut Vec<Dispatch>, b: &Batch, g: &BatchGrads) -> Result<()> {
        let c = self.config;
        let t = self.tables;
        let attn = self.attn_params(b.n);
        let attn = Some(bytemuck::bytes_of(&attn));
        out.push(self.kernels.dispatch(
            self.device,
            Kernel::ScoreGrad,
            attn,
            &[
                (attention::EXAMPLES, &b.examples),
                (attention::V_TAB, &t.v),
                (attention::PATTERN_IN, &b.pattern),
                (attention::DZ, &g.dz),
                (attention::DS, &g.ds),
            ],
            self.pair_groups(b.n),
        ));
        let table_grad = [
            (attention::Q, &t.q),
            (attention::PATTERN_IN, &b.pattern),
            (attention::DZ, &g.dz),
            (attention::DS_IN, &g.ds),
            (attention::DK_TAB, &t.dk),
            (attention::DV_TAB, &t.dv),
            (attention::ROW_DS, &t.row_ds),
        ];
        let mut csr = table_grad.to_vec();
        csr.extend([
            (attention::CSR_START, &g.csr_start),
            (attention::CSR_ITEMS, &g.csr_items),
        ]);
        let (h, dh) = (c.n_heads, c.d_head);
        out.push(self.kernels.dispatch(
            self.device,
            Kernel::TableGrad,
            attn,
            &csr,
            groups_1d(h * t.rows * dh, 64)?,
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
            &[
                (attention::K_TAB, &t.k),
                (attention::DQ, &t.dq),
                (attention::ROW_DS_IN, &t.row_ds),
            ],
            self.row_groups(c.d_attn()),
        ));
        Ok(())
    }

    /// W_K, W_V, W_Q and their biases from the tables' gradients, and dx0 through the tables'
    /// `Linear` input.
    fn qkv_backward(&self, out: &mut Vec<Dispatch>) {
        let c = self.config;
        let t = self.tables;
        let (d, a, dh, h, rows) = (c.d_model, c.d_attn(), c.d_head, c.n_heads, t.rows);
        let eq = (rows - 1) * d;
        let (qp, gr) = (&self.shared.qparams, &self.shared.grads);
        let kv = [
            (ParamId::WK, ParamId::BK, &t.dk),
            (ParamId::WV, ParamId::BV, &t.dv),
        ];
        // Biases: column sums of the table gradients per head, and the query's gradient.
        for (_, bias, dt) in kv {
            let dt = Op::batched(dt, 0, rows * dh, dh);
            self.bias_backward(out, bias, dt, (h, rows, dh));
        }
        self.bias_backward(out, ParamId::BQ, Op::batched_row(&t.dq, 0, dh), (h, 1, dh));
        // Weights: one product per head, batched.
        let a0_int8 = |first, stride| int8_rows(t.a0.forms().1, first, stride);
        for (w, _, dt) in kv {
            let dw = Op::batched(gr, self.off(w), d * dh, dh);
            let a0t = Op::transposed(&t.a0.float, 0, d);
            let dt = Op::batched(dt, 0, rows * dh, dh);
            let p = Product::new((h, d, dh, rows), a0t, dt, dw);
            self.product(out, p.int8(a0_int8(0, 1).map(Int8Operand::transposed)));
        }
        let dwq = Op::batched(gr, self.off(ParamId::WQ), d * dh, dh);
        let eq_column = Op::column(&t.a0.float, eq);
        let p = Product::new((h, d, dh, 1), eq_column, Op::batched_row(&t.dq, 0, dh), dwq);
        self.product(
            out,
            p.int8(a0_int8(rows - 1, 0).map(Int8Operand::transposed)),
        );
        // d a0 = sum over heads of dK_h W_K[h]^T + dV_h W_V[h]^T (+ dq_h W_Q[h]^T on the `=` row):
        // the contraction runs over (head, d_head) pairs. It is d x0 itself when a0 is x0.
        let da0 = if t.a0.identity { &t.dx0 } else { &t.da0 };
        for (i, (w, _, dt)) in kv.into_iter().enumerate() {
            let wt = Op::transposed(qp, self.off(w), dh);
            let prod = Product::new(
                (1, rows, d, a),
                Op::matrix(dt, 0, dh),
                wt,
                Op::matrix(da0, 0, d),
            )
            .k_split(dh, rows * dh, d * dh);
            self.product(out, if i == 0 { prod } else { prod.accumulate() });
        }
        let wqt = Op::transposed(qp, self.off(ParamId::WQ), dh);
        let da0_eq = Op::row(da0, eq);
        self.product(
            out,
            Product::new((1, 1, d, a), Op::row(&t.dq, 0), wqt, da0_eq)
                .k_split(dh, dh, d * dh)
                .accumulate(),
        );
        let shape = (rows, d, self.linear_flags());
        self.linear_input_backward(out, shape, &t.da0, (&t.x0, &t.a0), None, &t.dx0);
    }

    /// The embeddings' gradients from dx0.
    fn embed_backward(&self, out: &mut Vec<Dispatch>, b: &Batch, g: &BatchGrads) -> Result<()> {
        let t = self.tables;
        let d = self.config.d_model;
        // The `=` row also feeds x1 directly through the residual: add the column sum of dx1.
        let ones = Op::scalar(&self.shared.one);
        let dx0_eq = Op::row(&t.dx0, (t.rows - 1) * d);
        self.product(
            out,
            Product::new((1, 1, d, b.n), ones, Op::matrix(&g.dx1, 0, d), dx0_eq).accumulate(),
        );
        let embed = self.embed_params();
        out.push(self.kernels.dispatch(
            self.device,
            Kernel::EmbedGrad,
            Some(bytemuck::bytes_of(&embed)),
            &[(embed::DTABLE, &t.dx0), (embed::GRADS, &self.shared.grads)],
            groups_1d((self.config.d_vocab() + 3) * d, 64)?,
        ));
        Ok(())
    }
}
