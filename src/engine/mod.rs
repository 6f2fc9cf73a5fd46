//! The GPU engine: everything a training run computes, as WGSL compute dispatches recorded once
//! and replayed, many epochs per submission, with metrics read back in batches. One engine may
//! train several models of one shape together (a sweep's seeds and settings): every dispatch
//! then runs once for all of them (shaders/include/model_axis.wgsl).

pub mod bindings;
pub mod buffers;
pub mod device;
pub mod f16_tiles;
pub mod kernels;
pub mod layout;
mod model_state;
mod passes;
mod planner;
mod products;
pub mod program;
pub mod uniforms;

use anyhow::{bail, Result};

use crate::metrics::EpochMetrics;
use crate::model::{ModelConfig, ParamId, Params, WeightCentre, WeightScale, Weights};
use crate::optim::AdamW;
use crate::task::Examples;
use buffers::{Batch, Stack, Tables};
use device::Gpu;
use kernels::{Dispatch, Kernel, Kernels};
use layout::ParamLayout;
use program::{Metric, Recorder, Shared, METRIC_COLUMNS};
use uniforms::HyperParams;

/// A quantised weight matrix as the GPU holds it ([`Engine::packed_codes`]).
#[derive(Clone, Debug, PartialEq)]
pub struct PackedWeights {
    /// -1, 0 or +1 per element, in the parameter's element order.
    pub codes: Vec<i8>,
    pub scale: f32,
}

/// A `Linear` input as its integer products read it ([`Engine::int8_input`]).
#[derive(Clone, Debug, PartialEq)]
pub struct Int8Input {
    /// `[rows, width]`.
    pub codes: Vec<i8>,
    /// Per row, the value of code 1.
    pub steps: Vec<f32>,
}

/// Reads a row of the metrics buffer; `tested` says whether the test columns were written.
fn metrics_from_row(epoch: usize, row: &[f32], tested: bool) -> EpochMetrics {
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
    /// [n, d_model]: the residual stream x1, between the attention and the MLP.
    pub resid_mid: Vec<f32>,
    /// [n, d_model]: the residual stream x2 after the MLP (before any final norm).
    pub resid_final: Vec<f32>,
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
    /// `file::entry`, with a product in lanes' operand form.
    pub name: String,
    pub workgroups: [u32; 3],
    pub flops: u64,
}

/// Epochs whose metrics fit in the metrics buffer: one submission's worth.
pub const MAX_EPOCHS_PER_SUBMIT: usize = 256;

/// What one model of an engine starts from.
#[derive(Clone, Copy)]
pub struct Member<'a> {
    pub params: &'a Params,
    pub train: &'a Examples,
    pub test: Option<&'a Examples>,
    pub adamw: &'a AdamW,
}

/// The adapter could not allocate the buffers of an engine of `models` models: fewer may fit.
#[derive(Debug, thiserror::Error)]
#[error(
    "the GPU ran out of memory for {models} models; train fewer at once, use a smaller --p or \
     --d-mlp, or a larger adapter"
)]
pub struct OutOfGpuMemory {
    pub models: usize,
}

/// Words of the `state` buffer per model (shaders/optimizer.wgsl).
const STATE_WORDS: usize = 4;

pub struct Engine<'g> {
    gpu: &'g Gpu,
    pub config: ModelConfig,
    models: usize,
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
    tables: Tables,
}

impl<'g> Engine<'g> {
    /// An engine of one model.
    pub fn new(
        gpu: &'g Gpu,
        params: &Params,
        train: &Examples,
        test: Option<&Examples>,
        adamw: &AdamW,
    ) -> Result<Self> {
        Self::stacked(
            gpu,
            &[Member {
                params,
                train,
                test,
                adamw,
            }],
        )
    }

    /// An engine that trains `members` together, one set of dispatches for all of them; they
    /// share the model configuration and the sizes of their batches (their examples, initial
    /// parameters and AdamW settings may differ). Each model computes exactly what it would in
    /// an engine of its own: every kernel does the same arithmetic in the same order per model.
    pub fn stacked(gpu: &'g Gpu, members: &[Member]) -> Result<Self> {
        let Some(first) = members.first() else {
            bail!("an engine needs at least one model");
        };
        let config = first.params.config.clone();
        if members.iter().any(|m| m.params.config != config) {
            bail!("the models of one engine must share their configuration");
        }
        let (n_train, n_test) = (first.train.len(), first.test.map(|t| t.len()));
        if members
            .iter()
            .any(|m| m.train.len() != n_train || m.test.map(|t| t.len()) != n_test)
        {
            bail!("the models of one engine must have batches of one size");
        }
        let models = members.len();
        let device = &gpu.device;
        let stack = Stack { device, models };
        let layout = ParamLayout::new(&config);
        check_limits(gpu, &config, n_train.max(n_test.unwrap_or(0)), models)?;
        let out_of_memory = device.push_error_scope(wgpu::ErrorFilter::OutOfMemory);
        let flat: Vec<Vec<f32>> = members.iter().map(|m| layout.pack(m.params)).collect();
        let hypers: Vec<Vec<HyperParams>> = members
            .iter()
            .map(|m| vec![HyperParams::new(m.adamw, layout.total())])
            .collect();
        let packed_offsets = packed_offsets(&layout, &config);
        let descs: Vec<[u32; 6]> = layout
            .entries()
            .iter()
            .zip(&packed_offsets)
            .map(|(&(id, off, len), &packed)| {
                let mode = quant_mode(id, &config);
                let centred = mode != 0 && config.weight_centre == WeightCentre::Mean;
                let unscaled = config.weight_scale == WeightScale::None;
                [
                    off,
                    len,
                    mode as usize,
                    packed,
                    centred as usize,
                    unscaled as usize,
                ]
                .map(|x| x as u32)
            })
            .collect();
        let total = layout.total();
        let params_buf = stack.per_model("params", &flat);
        // Full-precision weights are their own effective values: no copy to keep.
        let qparams = match config.weights {
            Weights::F32 => params_buf.clone(),
            _ => stack.zeros("qparams", total),
        };
        let shared = Shared {
            params: params_buf,
            qparams,
            grads: stack.zeros("grads", total),
            m: stack.zeros("adam_m", total),
            v: stack.zeros("adam_v", total),
            state: stack.repeated("state", &[0, NO_NONFINITE_STEP, 0, 0]),
            hypers: stack.per_model("hypers", &hypers),
            metrics: stack.zeros("metrics", MAX_EPOCHS_PER_SUBMIT * METRIC_COLUMNS),
            metric_slots: MAX_EPOCHS_PER_SUBMIT,
            quant_descs: buffers::with_data(device, "quant_descs", &descs),
            packed: stack.zeros("packed", packed_offsets[layout.entries().len()]),
            scales: stack.zeros("scales", layout.entries().len()),
            packed_offsets,
            one: stack.repeated("one", &[1.0f32]),
            split_partials: stack.zeros(
                "split_partials",
                planner::split_partials_len(gpu.parallelism.split_target),
            ),
        };
        let kernels = Kernels::new(device, models, &gpu.parallelism);
        let tables = Tables::new(stack, &config);
        let trains: Vec<&Examples> = members.iter().map(|m| m.train).collect();
        let test = n_test.map(|_| {
            let (sets, groups): (Vec<&Examples>, Vec<Vec<u32>>) = members
                .iter()
                .map(|m| {
                    let test = m.test.expect("every model has a test batch");
                    (test, transpose_in(m.train, test))
                })
                .unzip();
            Batch::new(stack, &config, &sets, &groups, false)
        });
        let train = Batch::new(
            stack,
            &config,
            &trains,
            &vec![vec![0; n_train]; models],
            true,
        );
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
        train_step.extend(rec.centre_grads());
        train_step.push(rec.adamw());
        train_step.extend(rec.prepare()?);
        let eval_train = rec.forward(&train, Metric::Train)?;
        let eval_test = match &test {
            Some(test) => rec.forward(test, Metric::Test)?,
            None => Vec::new(),
        };
        let widest = [&prepare, &train_step, &eval_test, &eval_train]
            .into_iter()
            .flatten()
            .map(|d| d.groups[2])
            .max()
            .unwrap_or(1);
        if widest > kernels::MAX_GROUPS {
            crate::usage_bail!(
                "{models} models need {widest} workgroups along z, more than a dispatch allows \
                 ({}); train fewer at once",
                kernels::MAX_GROUPS
            );
        }
        if pollster::block_on(out_of_memory.pop()).is_some() {
            return Err(OutOfGpuMemory { models }.into());
        }
        let engine = Engine {
            gpu,
            config,
            models,
            layout,
            shared,
            train,
            test,
            train_step,
            eval_test,
            eval_train,
            prepare,
            kernels,
            tables,
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

    /// Models trained together.
    pub fn models(&self) -> usize {
        self.models
    }

    /// Dispatches per training epoch, and per test evaluation (for all models together).
    pub fn dispatch_counts(&self) -> (usize, usize) {
        (self.train_step.len(), self.eval_test.len())
    }

    /// Matrix-product FLOPs per training epoch, and per test evaluation, of all models: the
    /// work of the minimal-work formulation (tables over (token, position), the last position
    /// only).
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
                name: d.name(),
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
    /// is the 1-based number of the first epoch, used only to label the metrics. Returns each
    /// model's metrics, in model order.
    pub fn run_epochs(
        &mut self,
        first_epoch: usize,
        epochs: usize,
        eval: impl Fn(usize) -> bool,
    ) -> Result<Vec<Vec<EpochMetrics>>> {
        if epochs == 0 || epochs > MAX_EPOCHS_PER_SUBMIT {
            bail!("run_epochs takes 1..={MAX_EPOCHS_PER_SUBMIT} epochs, got {epochs}");
        }
        let (states, raw) = self.submit_and_read(|pass| {
            for e in 0..epochs {
                self.kernels.encode(pass, &self.train_step);
                if self.test.is_some() && eval(first_epoch + e) {
                    self.kernels.encode(pass, &self.eval_test);
                }
            }
        })?;
        let slots = MAX_EPOCHS_PER_SUBMIT * METRIC_COLUMNS;
        Ok((0..self.models)
            .map(|model| {
                let state = &states[model * STATE_WORDS..];
                let (step, nonfinite_step) = (state[0] as usize, state[1]);
                let raw = &raw[model * slots..(model + 1) * slots];
                // The step counter says which metric slots this submission wrote.
                let first_step = step + 1 - epochs;
                (0..epochs)
                    .map(|e| {
                        let slot = (first_step - 1 + e) % MAX_EPOCHS_PER_SUBMIT;
                        let epoch = first_epoch + e;
                        let row = &raw[slot * METRIC_COLUMNS..(slot + 1) * METRIC_COLUMNS];
                        let tested = self.test.is_some() && eval(epoch);
                        EpochMetrics {
                            params_finite: nonfinite_step == NO_NONFINITE_STEP
                                || (first_step + e) < nonfinite_step as usize,
                            ..metrics_from_row(epoch, row, tested)
                        }
                    })
                    .collect()
            })
            .collect())
    }

    /// Submits the dispatches `encode` records in one compute pass, then reads back every
    /// model's optimiser state words and metrics buffer.
    fn submit_and_read(
        &self,
        encode: impl FnOnce(&mut wgpu::ComputePass),
    ) -> Result<(Vec<u32>, Vec<f32>)> {
        let mut encoder = self.gpu.device.create_command_encoder(&Default::default());
        encode(&mut encoder.begin_compute_pass(&Default::default()));
        self.gpu.queue.submit([encoder.finish()]);
        let states = self.read_all::<u32>(&self.shared.state)?;
        Ok((states, self.read_all::<f32>(&self.shared.metrics)?))
    }

    /// Loss and accuracy of the current parameters on both batches, without training, for each
    /// model: the returned metrics carry the number of steps taken so far as their epoch.
    pub fn evaluate(&mut self) -> Result<Vec<EpochMetrics>> {
        let (states, raw) = self.submit_and_read(|pass| {
            self.kernels.encode(pass, &self.eval_train);
            self.kernels.encode(pass, &self.eval_test);
        })?;
        let slots = MAX_EPOCHS_PER_SUBMIT * METRIC_COLUMNS;
        Ok((0..self.models)
            .map(|model| {
                let step = states[model * STATE_WORDS] as usize;
                // The reductions write to the slot of the current step (step 0 wraps to the
                // last slot).
                let slot = (step + MAX_EPOCHS_PER_SUBMIT - 1) % MAX_EPOCHS_PER_SUBMIT;
                let row = &raw[model * slots + slot * METRIC_COLUMNS..][..METRIC_COLUMNS];
                metrics_from_row(step, row, self.test.is_some())
            })
            .collect())
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
fn packed_offsets(layout: &ParamLayout, config: &ModelConfig) -> Vec<usize> {
    let mut offsets = vec![0];
    for &(id, _, len) in layout.entries() {
        let words = match elements_per_word(config.weights) {
            _ if !config.quantises(id) => 0,
            per_word => len.div_ceil(per_word),
        };
        offsets.push(offsets.last().expect("starts with 0") + words);
    }
    offsets
}

/// How shaders/quantize.wgsl treats parameter `id`: 0 copies it, else its packing
/// (shaders/include/packed_codes.wgsl: 1 binary, 2 ternary).
pub(crate) fn quant_mode(id: ParamId, config: &ModelConfig) -> u32 {
    if !config.quantises(id) {
        return 0;
    }
    match config.weights {
        Weights::F32 => 0,
        Weights::Binary => 1,
        Weights::Ternary => 2,
    }
}

/// Elements of the buffers one model of configuration `c` needs whose size grows with it, with
/// batches of at most `max_batch` examples, and what each holds.
fn buffer_sizes(gpu: &Gpu, c: &ModelConfig, max_batch: usize) -> [(usize, &'static str); 5] {
    [
        (ParamLayout::new(c).total(), "parameters"),
        (max_batch * c.d_mlp, "MLP activations (examples × d_mlp)"),
        (
            max_batch * c.d_attn(),
            "attention activations (examples × n_heads·d_head)",
        ),
        (
            max_batch * c.d_vocab_out(),
            "logits (examples × outputs, that is p or p + 1)",
        ),
        (
            planner::split_partials_len(gpu.parallelism.split_target),
            "split-K partial sums",
        ),
    ]
}

/// Bytes of the largest buffer one model of configuration `c` needs, and what it holds.
fn largest_buffer(gpu: &Gpu, c: &ModelConfig, max_batch: usize) -> (u64, &'static str) {
    let (len, what) = buffer_sizes(gpu, c, max_batch)
        .into_iter()
        .max_by_key(|(len, _)| *len)
        .expect("five buffers");
    (len as u64 * 4, what)
}

/// The largest buffer a dispatch can bind on this adapter.
fn binding_limit(gpu: &Gpu) -> u64 {
    gpu.limits
        .max_storage_buffer_binding_size
        .min(gpu.limits.max_buffer_size)
}

/// Refuses, with the limit named, `models` models whose largest buffer the adapter cannot bind
/// (a [`crate::error::UsageError`]: the fix is a smaller model or another adapter).
pub fn check_limits(gpu: &Gpu, c: &ModelConfig, max_batch: usize, models: usize) -> Result<()> {
    let (one, holds) = largest_buffer(gpu, c, max_batch);
    let largest = one * models as u64;
    let limit = binding_limit(gpu);
    if largest > limit {
        let what = match models {
            1 => "this model".to_string(),
            k => format!("{k} models of this shape"),
        };
        crate::usage_bail!(
            "the largest buffer of {what} ({largest} bytes: the {holds} of {max_batch} examples \
             at p = {}, d_model {}, d_mlp {}) exceeds the adapter's \
             max_storage_buffer_binding_size ({limit} bytes); the model is too large for this \
             adapter: use another adapter, or train a smaller one",
            c.p,
            c.d_model,
            c.d_mlp
        );
    }
    Ok(())
}

/// How many models of configuration `c` one engine can hold on this adapter: each buffer holds
/// every model's slice, so the largest must stay bindable, and each dispatch's grid repeats per
/// model along z, which allows at most 65,535 workgroups.
pub fn max_models(gpu: &Gpu, c: &ModelConfig, max_batch: usize) -> usize {
    let by_binding = binding_limit(gpu) / largest_buffer(gpu, c, max_batch).0.max(1);
    // The widest per-model grid along z: a split product's chunks, or the heads of a batch.
    let widest_z = gpu.parallelism.split_target.max(c.n_heads).max(1);
    (by_binding as usize)
        .min(kernels::MAX_GROUPS as usize / widest_z)
        .max(1)
}
