//! The GPU engine: everything a training run computes, as WGSL compute dispatches recorded once
//! and replayed, many epochs per submission, with metrics read back in batches.

pub mod buffers;
pub mod device;
pub mod kernels;
pub mod layout;
pub mod program;

use anyhow::{bail, Result};

use crate::model::{ModelConfig, ParamId, Params, Weights};
use crate::optim::AdamW;
use crate::task::Examples;
use buffers::{Batch, Tables};
use device::Gpu;
use kernels::{Dispatch, Kernel, Kernels};
use layout::ParamLayout;
use program::{Metric, Recorder, Shared, METRIC_COLUMNS};

/// Loss and accuracy of one epoch (test values are NaN when it was not evaluated).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct EpochMetrics {
    pub epoch: usize,
    pub train_loss: f32,
    pub train_acc: f32,
    pub test_loss: f32,
    pub test_acc: f32,
    /// Test accuracy on pairs whose transpose is in the train set (free for a model symmetric
    /// in a and b), and on the others (which only generalisation gets right).
    pub test_acc_transpose_seen: f32,
    pub test_acc_transpose_unseen: f32,
    /// False once AdamW has produced a NaN or infinite parameter (at this epoch or before).
    pub params_finite: bool,
}

impl EpochMetrics {
    /// Reads a row of the metrics buffer; `tested` says whether the test columns were written.
    fn from_row(epoch: usize, row: &[f32], tested: bool) -> Self {
        let test = |v: f32| if tested { v } else { f32::NAN };
        EpochMetrics {
            epoch,
            train_loss: row[0],
            train_acc: row[1],
            test_loss: test(row[2]),
            test_acc: test(row[3]),
            test_acc_transpose_seen: test(row[4]),
            test_acc_transpose_unseen: test(row[5]),
            params_finite: true,
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

/// `state[1]` while every parameter has stayed finite (shaders/optimizer.wgsl).
const NO_NONFINITE_STEP: u32 = u32::MAX;

/// Last-position activations of a batch.
pub struct Activations {
    pub loss: f32,
    /// [n, d_vocab_out]
    pub logits: Vec<f32>,
    /// [n, H, 3]: attention of `=` to a, b, `=`.
    pub attn_pattern: Vec<f32>,
    /// [n, d_mlp] before the ReLU.
    pub mlp_pre: Vec<f32>,
}

/// The recorded programs an epoch consists of.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Program {
    TrainStep,
    TestEval,
}

/// One dispatch of a program, as profiles show it.
#[derive(Clone, Debug)]
pub struct DispatchInfo {
    pub kernel: Kernel,
    pub workgroups: [u32; 3],
    pub flops: u64,
}

/// Epochs whose metrics fit in the metrics buffer: one submission's worth.
pub const MAX_EPOCHS_PER_SUBMIT: usize = 256;

pub struct Engine<'g> {
    gpu: &'g Gpu,
    pub config: ModelConfig,
    layout: ParamLayout,
    shared: Shared,
    pub train: Batch,
    pub test: Option<Batch>,
    /// begin step, forward, backward, AdamW on the train batch, then `prepare` for the new
    /// parameters, which the test evaluation after the step (as in the reference notebooks)
    /// and the next step both use.
    train_step: Vec<Dispatch>,
    /// forward on the test batch.
    eval_test: Vec<Dispatch>,
    /// forward on the train batch, without a step.
    eval_train: Vec<Dispatch>,
    /// Quantised weights and the tables of the current parameters; run at the end of each
    /// step and whenever parameters are uploaded.
    prepare: Vec<Dispatch>,
    kernels: Kernels,
    _tables: Tables,
}

impl<'g> Engine<'g> {
    pub fn new(
        gpu: &'g Gpu,
        params: &Params,
        train: &Examples,
        test: Option<&Examples>,
        hp: &AdamW,
    ) -> Result<Self> {
        let config = params.config.clone();
        let device = &gpu.device;
        let layout = ParamLayout::new(&config);
        check_limits(gpu, &config, train.len().max(test.map_or(0, |t| t.len())))?;
        let flat = layout.pack(params);
        let packed_offsets = packed_offsets(&layout, config.weights);
        let descs: Vec<[u32; 4]> = layout
            .entries()
            .iter()
            .zip(&packed_offsets)
            .map(|(&(id, off, len), &packed)| {
                let mode = quant_mode(id, config.weights);
                [off as u32, len as u32, mode, packed as u32]
            })
            .collect();
        let params_buf = buffers::with_data(device, "params", &flat);
        // Full-precision weights are their own effective values: no copy to keep.
        let qparams = match config.weights {
            Weights::F32 => params_buf.clone(),
            _ => buffers::zeros(device, "qparams", flat.len()),
        };
        let shared = Shared {
            params: params_buf,
            qparams,
            grads: buffers::zeros(device, "grads", flat.len()),
            m: buffers::zeros(device, "adam_m", flat.len()),
            v: buffers::zeros(device, "adam_v", flat.len()),
            state: buffers::with_data(device, "state", &[0, NO_NONFINITE_STEP, 0, 0]),
            metrics: buffers::zeros(device, "metrics", MAX_EPOCHS_PER_SUBMIT * METRIC_COLUMNS),
            metric_slots: MAX_EPOCHS_PER_SUBMIT,
            quant_descs: buffers::with_data(device, "quant_descs", &descs),
            packed: buffers::zeros(
                device,
                "packed",
                packed_offsets[layout.entries().len()].max(1),
            ),
            scales: buffers::zeros(device, "scales", layout.entries().len()),
            packed_offsets,
            one: buffers::with_data(device, "one", &[1.0f32]),
            split_partials: buffers::zeros(
                device,
                "split_partials",
                program::split_partials_len(gpu.parallelism.split_target),
            ),
        };
        let kernels = Kernels::new(device);
        let tables = Tables::new(device, &config);
        let test = test.map(|t| Batch::new(device, &config, t, &transpose_in(train, t), false));
        let train = Batch::new(device, &config, train, &vec![0; train.len()], true);
        let rec = Recorder {
            device,
            kernels: &kernels,
            config: &config,
            layout: &layout,
            shared: &shared,
            tables: &tables,
            parallelism: gpu.parallelism,
        };
        let prepare = rec.prepare()?;
        let mut train_step = vec![rec.begin_step()];
        train_step.extend(rec.forward(&train, Metric::Train)?);
        train_step.extend(rec.backward(&train)?);
        train_step.push(rec.adamw(hp));
        train_step.extend(rec.prepare()?);
        let eval_train = rec.forward(&train, Metric::Train)?;
        let eval_test = match &test {
            Some(test) => rec.forward(test, Metric::Test)?,
            None => Vec::new(),
        };
        let engine = Engine {
            gpu,
            config,
            layout,
            shared,
            train,
            test,
            train_step,
            eval_test,
            eval_train,
            prepare,
            kernels,
            _tables: tables,
        };
        engine.run_prepare();
        gpu.check()?;
        Ok(engine)
    }

    /// Submits the `prepare` program (quantised weights and tables of the current parameters).
    fn run_prepare(&self) {
        let mut encoder = self.gpu.device.create_command_encoder(&Default::default());
        {
            let mut pass = encoder.begin_compute_pass(&Default::default());
            self.kernels.encode(&mut pass, &self.prepare);
        }
        self.gpu.queue.submit([encoder.finish()]);
    }

    /// Dispatches per training epoch, and per test evaluation.
    pub fn dispatch_counts(&self) -> (usize, usize) {
        (self.train_step.len(), self.eval_test.len())
    }

    /// Matrix-product FLOPs per training epoch, and per test evaluation: the work of the
    /// minimal-work formulation (tables over (token, position), the last position only).
    pub fn flop_counts(&self) -> (u64, u64) {
        let sum = |ds: &[Dispatch]| ds.iter().map(|d| d.flops).sum();
        (sum(&self.train_step), sum(&self.eval_test))
    }

    fn program(&self, program: Program) -> &[Dispatch] {
        match program {
            Program::TrainStep => &self.train_step,
            Program::TestEval => &self.eval_test,
        }
    }

    /// The dispatches of a program, in order.
    pub fn dispatches(&self, program: Program) -> Vec<DispatchInfo> {
        self.program(program)
            .iter()
            .map(|d| DispatchInfo {
                kernel: d.kernel,
                workgroups: d.groups,
                flops: d.flops,
            })
            .collect()
    }

    /// Replays dispatch `index` of a program `repeats` times in one submission and waits for it:
    /// single-kernel timings on the buffers of a real epoch (the state it leaves is not an
    /// epoch's; build a new engine to train after profiling).
    pub fn replay_dispatch(
        &mut self,
        program: Program,
        index: usize,
        repeats: usize,
    ) -> Result<()> {
        let dispatch = &self.program(program)[index];
        let mut encoder = self.gpu.device.create_command_encoder(&Default::default());
        {
            let mut pass = encoder.begin_compute_pass(&Default::default());
            for _ in 0..repeats {
                self.kernels
                    .encode(&mut pass, std::slice::from_ref(dispatch));
            }
        }
        self.gpu.queue.submit([encoder.finish()]);
        self.gpu.device.poll(wgpu::PollType::wait_indefinitely())?;
        self.gpu.check()
    }

    /// Runs `epochs` training epochs (at most [`MAX_EPOCHS_PER_SUBMIT`]) in one submission,
    /// evaluating the test batch after the epochs for which `eval(epoch)` is true. `first_epoch`
    /// is the 1-based number of the first epoch, used only to label the metrics.
    pub fn run_epochs(
        &mut self,
        first_epoch: usize,
        epochs: usize,
        eval: impl Fn(usize) -> bool,
    ) -> Result<Vec<EpochMetrics>> {
        if epochs == 0 || epochs > MAX_EPOCHS_PER_SUBMIT {
            bail!("run_epochs takes 1..={MAX_EPOCHS_PER_SUBMIT} epochs, got {epochs}");
        }
        let device = &self.gpu.device;
        let mut encoder = device.create_command_encoder(&Default::default());
        {
            let mut pass = encoder.begin_compute_pass(&Default::default());
            for e in 0..epochs {
                self.kernels.encode(&mut pass, &self.train_step);
                if self.test.is_some() && eval(first_epoch + e) {
                    self.kernels.encode(&mut pass, &self.eval_test);
                }
            }
        }
        self.gpu.queue.submit([encoder.finish()]);
        let state = self.read_u32(&self.shared.state, 2)?;
        let (step, nonfinite_step) = (state[0] as usize, state[1]);
        let raw = self.read_f32(&self.shared.metrics, MAX_EPOCHS_PER_SUBMIT * METRIC_COLUMNS)?;
        // The step counter says which metric slots this submission wrote.
        let first_step = step + 1 - epochs;
        Ok((0..epochs)
            .map(|e| {
                let slot = (first_step - 1 + e) % MAX_EPOCHS_PER_SUBMIT;
                let epoch = first_epoch + e;
                let row = &raw[slot * METRIC_COLUMNS..(slot + 1) * METRIC_COLUMNS];
                EpochMetrics {
                    params_finite: nonfinite_step == NO_NONFINITE_STEP
                        || (first_step + e) < nonfinite_step as usize,
                    ..EpochMetrics::from_row(epoch, row, self.test.is_some() && eval(epoch))
                }
            })
            .collect())
    }

    /// Loss and accuracy of the current parameters on both batches, without training: the
    /// returned metrics carry the number of steps taken so far as their epoch.
    pub fn evaluate(&mut self) -> Result<EpochMetrics> {
        let mut encoder = self.gpu.device.create_command_encoder(&Default::default());
        {
            let mut pass = encoder.begin_compute_pass(&Default::default());
            self.kernels.encode(&mut pass, &self.eval_train);
            self.kernels.encode(&mut pass, &self.eval_test);
        }
        self.gpu.queue.submit([encoder.finish()]);
        let step = self.read_u32(&self.shared.state, 1)?[0] as usize;
        let raw = self.read_f32(&self.shared.metrics, MAX_EPOCHS_PER_SUBMIT * METRIC_COLUMNS)?;
        // The reductions write to the slot of the current step (step 0 wraps to the last slot).
        let slot = (step + MAX_EPOCHS_PER_SUBMIT - 1) % MAX_EPOCHS_PER_SUBMIT;
        let row = &raw[slot * METRIC_COLUMNS..(slot + 1) * METRIC_COLUMNS];
        Ok(EpochMetrics::from_row(step, row, self.test.is_some()))
    }

    /// Replaces the latent parameters (the optimiser state is left as it is).
    pub fn set_params(&mut self, params: &Params) -> Result<()> {
        if params.config != self.config {
            bail!("parameters of another model configuration");
        }
        let flat = self.layout.pack(params);
        self.gpu
            .queue
            .write_buffer(&self.shared.params, 0, bytemuck::cast_slice(&flat));
        self.run_prepare();
        Ok(())
    }

    /// AdamW's moments and step counter.
    pub fn optimizer_state(&self) -> Result<OptimizerState> {
        let total = self.layout.total();
        Ok(OptimizerState {
            step: self.read_u32(&self.shared.state, 1)?[0],
            m: self.layout.unpack(&self.read_f32(&self.shared.m, total)?),
            v: self.layout.unpack(&self.read_f32(&self.shared.v, total)?),
        })
    }

    /// Restores what [`Self::optimizer_state`] returned (with [`Self::set_params`], a resume).
    pub fn set_optimizer_state(&mut self, state: &OptimizerState) -> Result<()> {
        if state.m.config != self.config || state.v.config != self.config {
            bail!("optimiser state of another model configuration");
        }
        let queue = &self.gpu.queue;
        for (buffer, moments) in [(&self.shared.m, &state.m), (&self.shared.v, &state.v)] {
            queue.write_buffer(buffer, 0, bytemuck::cast_slice(&self.layout.pack(moments)));
        }
        let words = [state.step, NO_NONFINITE_STEP, 0, 0];
        queue.write_buffer(&self.shared.state, 0, bytemuck::cast_slice(&words));
        Ok(())
    }

    /// Runs the forward pass over the train batch with the current parameters and reads back
    /// what analyses use.
    pub fn forward_train_batch(&mut self) -> Result<Activations> {
        let metrics = self.evaluate()?;
        let c = &self.config;
        let (n, b) = (self.train.n, &self.train);
        Ok(Activations {
            loss: metrics.train_loss,
            logits: self.train_logits()?,
            attn_pattern: self.read_f32(&b.pattern, n * c.n_heads * 3)?,
            mlp_pre: self.read_f32(&b.pre, n * c.d_mlp)?,
        })
    }

    /// Logits [n, d_vocab_out] of the train batch from the last forward pass.
    pub fn train_logits(&self) -> Result<Vec<f32>> {
        self.read_f32(&self.train.logits, self.train.n * self.config.d_vocab_out())
    }

    /// Latent parameters.
    pub fn params(&self) -> Result<Params> {
        Ok(self
            .layout
            .unpack(&self.read_f32(&self.shared.params, self.layout.total())?))
    }

    /// Gradients of the last epoch's train loss.
    pub fn grads(&self) -> Result<Params> {
        Ok(self
            .layout
            .unpack(&self.read_f32(&self.shared.grads, self.layout.total())?))
    }

    /// The codes (-1, 0, +1) of a quantised weight matrix as the GPU packed them, in its
    /// element order; None for a parameter that is not packed.
    pub fn packed_codes(&self, id: ParamId) -> Result<Option<Vec<i8>>> {
        let per_word = elements_per_word(self.config.weights);
        let entries = self.layout.entries();
        let index = entries.iter().position(|e| e.0 == id);
        let Some(index) = index.filter(|_| per_word > 0 && id.is_quantised()) else {
            return Ok(None);
        };
        let len = entries[index].2;
        let first = self.shared.packed_offsets[index];
        let words = self.read_u32(&self.shared.packed, first + len.div_ceil(per_word))?;
        let bits = 32 / per_word;
        let codes = (0..len)
            .map(|e| {
                let code =
                    (words[first + e / per_word] >> (bits * (e % per_word))) & ((1 << bits) - 1);
                match (bits, code) {
                    (1, 1) | (2, 2) => -1,
                    (1, _) | (2, 1) => 1,
                    _ => 0,
                }
            })
            .collect();
        Ok(Some(codes))
    }

    /// Reads `len` floats from the start of one of the engine's buffers.
    pub fn read_f32(&self, buffer: &wgpu::Buffer, len: usize) -> Result<Vec<f32>> {
        Ok(bytemuck::cast_slice(&self.read_bytes(buffer, len * 4)?).to_vec())
    }

    fn read_u32(&self, buffer: &wgpu::Buffer, len: usize) -> Result<Vec<u32>> {
        Ok(bytemuck::cast_slice(&self.read_bytes(buffer, len * 4)?).to_vec())
    }

    fn read_bytes(&self, buffer: &wgpu::Buffer, bytes: usize) -> Result<Vec<u8>> {
        let device = &self.gpu.device;
        let size = (bytes.max(4) as u64).div_ceil(4) * 4;
        let staging = device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("readback"),
            size,
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        let mut encoder = device.create_command_encoder(&Default::default());
        encoder.copy_buffer_to_buffer(buffer, 0, &staging, 0, size);
        self.gpu.queue.submit([encoder.finish()]);
        let slice = staging.slice(..);
        let (tx, rx) = std::sync::mpsc::channel();
        slice.map_async(wgpu::MapMode::Read, move |r| {
            let _ = tx.send(r);
        });
        device.poll(wgpu::PollType::wait_indefinitely())?;
        self.gpu.check()?;
        rx.recv()??;
        let data = slice.get_mapped_range()?[..bytes].to_vec();
        staging.unmap();
        Ok(data)
    }
}

/// For each example of `set`, 1 if its transpose (b, a) is in `train`.
fn transpose_in(train: &Examples, set: &Examples) -> Vec<u32> {
    let seen: std::collections::HashSet<(u32, u32)> = train
        .a
        .iter()
        .copied()
        .zip(train.b.iter().copied())
        .collect();
    set.a
        .iter()
        .zip(&set.b)
        .map(|(&a, &b)| seen.contains(&(b, a)) as u32)
        .collect()
}

/// Elements of a quantised parameter per word of packed codes: 32 binary, 16 ternary (0: none
/// are packed).
fn elements_per_word(weights: Weights) -> usize {
    match weights {
        Weights::F32 => 0,
        Weights::Binary => 32,
        Weights::Ternary => 16,
    }
}

/// First word of each parameter's packed codes (layout order), and the total as a last entry.
fn packed_offsets(layout: &ParamLayout, weights: Weights) -> Vec<usize> {
    let mut offsets = vec![0];
    for &(id, _, len) in layout.entries() {
        let words = match elements_per_word(weights) {
            0 => 0,
            _ if !id.is_quantised() => 0,
            per_word => len.div_ceil(per_word),
        };
        offsets.push(offsets.last().expect("starts with 0") + words);
    }
    offsets
}

pub(crate) fn quant_mode(id: ParamId, weights: Weights) -> u32 {
    if !id.is_quantised() {
        return 0;
    }
    match weights {
        Weights::F32 => 0,
        Weights::Binary => 1,
        Weights::Ternary => 2,
    }
}

/// Refuses, with the limit named, a model whose largest buffer the adapter cannot bind (a
/// [`crate::error::UsageError`]: the fix is a smaller model or another adapter).
pub fn check_limits(gpu: &Gpu, c: &ModelConfig, max_batch: usize) -> Result<()> {
    let largest = [
        ParamLayout::new(c).total(),
        max_batch * c.d_mlp,
        max_batch * c.d_attn(),
        max_batch * c.d_vocab_out(),
    ]
    .into_iter()
    .max()
    .unwrap_or(0) as u64
        * 4;
    let limit = gpu.limits.max_storage_buffer_binding_size;
    if largest > limit {
        crate::usage_bail!(
            "the largest buffer of this model ({largest} bytes) exceeds the adapter's \
             max_storage_buffer_binding_size ({limit} bytes); use a smaller --p or --d-mlp, or another adapter"
        );
    }
    Ok(())
}
