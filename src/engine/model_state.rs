//! Reading and writing a model's slice of the engine's buffers: parameters, optimiser state,
//! gradients, activations and quantised codes, for checkpoints, resumption and the checks.

use anyhow::{bail, Result};

use super::{
    elements_per_word, Activations, Engine, Int8Input, PackedWeights, NO_NONFINITE_STEP,
    STATE_WORDS,
};
use crate::model::{ParamId, Params, Site};
use crate::optim::OptimizerState;

impl Engine<'_> {
    fn check_model(&self, model: usize) -> Result<()> {
        if model >= self.models {
            bail!("model {model} of an engine of {} models", self.models);
        }
        Ok(())
    }

    /// Byte offset of a model's slice of one of the engine's buffers.
    fn slice_offset(&self, buffer: &wgpu::Buffer, model: usize) -> u64 {
        buffer.size() / self.models as u64 * model as u64
    }

    /// Replaces a model's latent parameters (its optimiser state is left as it is).
    pub fn set_params(&mut self, model: usize, params: &Params) -> Result<()> {
        self.check_model(model)?;
        if params.config != self.config {
            bail!("parameters of another model configuration");
        }
        let flat = self.layout.pack(params);
        let offset = self.slice_offset(&self.shared.params, model);
        self.gpu
            .queue
            .write_buffer(&self.shared.params, offset, bytemuck::cast_slice(&flat));
        self.run_prepare();
        Ok(())
    }

    /// A model's AdamW moments and step counter.
    pub fn optimizer_state(&self, model: usize) -> Result<OptimizerState> {
        let total = self.layout.total();
        Ok(OptimizerState {
            step: self.read_slice::<u32>(&self.shared.state, model, 1)?[0],
            m: self
                .layout
                .unpack(&self.read_slice(&self.shared.m, model, total)?),
            v: self
                .layout
                .unpack(&self.read_slice(&self.shared.v, model, total)?),
        })
    }

    /// Every model's latent parameters and AdamW state, in three readbacks whatever the number
    /// of models (what the checkpoints of a group need at once).
    pub fn snapshots(&self) -> Result<Vec<(Params, OptimizerState)>> {
        let total = self.layout.total();
        let params = self.read_all::<f32>(&self.shared.params)?;
        let (m, v) = (
            self.read_all(&self.shared.m)?,
            self.read_all(&self.shared.v)?,
        );
        let states = self.read_all::<u32>(&self.shared.state)?;
        Ok((0..self.models)
            .map(|model| {
                let slice = |flat: &[f32]| {
                    self.layout
                        .unpack(&flat[model * total..(model + 1) * total])
                };
                let state = OptimizerState {
                    step: states[model * STATE_WORDS],
                    m: slice(&m),
                    v: slice(&v),
                };
                (slice(&params), state)
            })
            .collect())
    }

    /// Restores what [`Self::optimizer_state`] returned (with [`Self::set_params`], a resume).
    pub fn set_optimizer_state(&mut self, model: usize, state: &OptimizerState) -> Result<()> {
        self.check_model(model)?;
        if state.m.config != self.config || state.v.config != self.config {
            bail!("optimiser state of another model configuration");
        }
        let queue = &self.gpu.queue;
        for (buffer, moments) in [(&self.shared.m, &state.m), (&self.shared.v, &state.v)] {
            let offset = self.slice_offset(buffer, model);
            let flat = self.layout.pack(moments);
            queue.write_buffer(buffer, offset, bytemuck::cast_slice(&flat));
        }
        let words = [state.step, NO_NONFINITE_STEP, 0, 0];
        let offset = self.slice_offset(&self.shared.state, model);
        queue.write_buffer(&self.shared.state, offset, bytemuck::cast_slice(&words));
        Ok(())
    }

    /// Runs the forward pass over the train batch with the current parameters and reads back
    /// what analyses use, for one model.
    pub fn forward_train_batch(&mut self, model: usize) -> Result<Activations> {
        self.check_model(model)?;
        let metrics = self.evaluate()?[model];
        let c = &self.config;
        let (n, b) = (self.train.n, &self.train);
        Ok(Activations {
            loss: metrics.train_loss,
            logits: self.train_logits(model)?,
            attn_pattern: self.read_slice(&b.pattern, model, n * c.n_heads * 3)?,
            mlp_pre: self.read_slice(&b.pre, model, n * c.d_mlp)?,
            resid_mid: self.read_slice(&b.x1, model, n * c.d_model)?,
            resid_final: self.read_slice(&b.x2, model, n * c.d_model)?,
        })
    }

    /// Logits [n, d_vocab_out] of a model's train batch from the last forward pass.
    pub fn train_logits(&self, model: usize) -> Result<Vec<f32>> {
        let len = self.train.n * self.config.d_vocab_out();
        self.read_slice(&self.train.logits, model, len)
    }

    /// A model's latent parameters.
    pub fn params(&self, model: usize) -> Result<Params> {
        let flat = self.read_slice(&self.shared.params, model, self.layout.total())?;
        Ok(self.layout.unpack(&flat))
    }

    /// Gradients of a model's last train loss.
    pub fn grads(&self, model: usize) -> Result<Params> {
        let flat = self.read_slice(&self.shared.grads, model, self.layout.total())?;
        Ok(self.layout.unpack(&flat))
    }

    /// The codes (-1, 0, +1) of a model's quantised weight matrix as the GPU packed them, in
    /// its element order, and its scale; None for a parameter that is not packed.
    pub fn packed_codes(&self, model: usize, id: ParamId) -> Result<Option<PackedWeights>> {
        let per_word = elements_per_word(self.config.weights);
        let entries = self.layout.entries();
        let index = entries.iter().position(|e| e.0 == id);
        let Some(index) = index.filter(|_| self.config.quantises(id)) else {
            return Ok(None);
        };
        let len = entries[index].2;
        let first = self.shared.packed_offsets[index];
        let words: Vec<u32> =
            self.read_slice(&self.shared.packed, model, first + len.div_ceil(per_word))?;
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
        let scale = self.read_slice::<f32>(&self.shared.scales, model, index + 1)?[index];
        Ok(Some(PackedWeights { codes, scale }))
    }

    /// The int8 codes and row steps of the `Linear` input at `site` from the last forward pass
    /// of a model's train batch (the K/V/Q input: of the tables' 2p + 1 rows); None unless the
    /// model's quantised `Linear`s take int8 codes.
    pub fn int8_input(&self, model: usize, site: Site) -> Result<Option<Int8Input>> {
        let (c, b) = (&self.config, &self.train);
        let (rows, width, input) = match site {
            Site::Qkv => (self.tables.rows, c.d_model, &self.tables.a0),
            Site::AttnOut => (b.n, c.d_attn(), &b.az),
            Site::MlpIn => (b.n, c.d_model, &b.a1),
            Site::MlpOut => (b.n, c.d_mlp, &b.a2),
        };
        let Some(packed) = input.forms().1 else {
            return Ok(None);
        };
        let words: Vec<u32> = self.read_slice(&packed.codes, model, rows * packed.row_words)?;
        let bytes: &[u8] = bytemuck::cast_slice(&words);
        let codes = bytes
            .chunks_exact(4 * packed.row_words)
            .flat_map(|row| row[..width].iter().map(|&b| b as i8))
            .collect();
        Ok(Some(Int8Input {
            codes,
            steps: self.read_slice(&packed.steps, model, rows)?,
        }))
    }

    /// The first `len` elements of a model's slice of one of the engine's buffers.
    fn read_slice<T: bytemuck::Pod>(
        &self,
        buffer: &wgpu::Buffer,
        model: usize,
        len: usize,
    ) -> Result<Vec<T>> {
        self.check_model(model)?;
        let bytes = self.read_bytes(buffer, self.slice_offset(buffer, model), len * 4)?;
        Ok(bytemuck::cast_slice(&bytes).to_vec())
    }

    /// Every model's slice of a buffer.
    pub(super) fn read_all<T: bytemuck::Pod>(&self, buffer: &wgpu::Buffer) -> Result<Vec<T>> {
        let bytes = self.read_bytes(buffer, 0, buffer.size() as usize)?;
        Ok(bytemuck::cast_slice(&bytes).to_vec())
    }

    fn read_bytes(&self, buffer: &wgpu::Buffer, offset: u64, bytes: usize) -> Result<Vec<u8>> {
        let device = &self.gpu.device;
        let size = (bytes.max(4) as u64).div_ceil(4) * 4;
        let staging = device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("readback"),
            size,
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        let mut encoder = device.create_command_encoder(&Default::default());
        encoder.copy_buffer_to_buffer(buffer, offset, &staging, 0, size);
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
