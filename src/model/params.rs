//! Named parameters in TransformerLens layout, their initialisation and safetensors I/O.

use std::collections::HashMap;
use std::path::Path;

use anyhow::{bail, Context, Result};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal};
use safetensors::{Dtype, SafeTensors};

use super::config::{Init, ModelConfig, QuantGroup, N_CTX};

/// Every parameter the model can have, in a fixed order (initialisation and file order).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ParamId {
    WE,
    WPos,
    WQ,
    WK,
    WV,
    WO,
    BQ,
    BK,
    BV,
    BO,
    WIn,
    BIn,
    WOut,
    BOut,
    LnFinal,
    WU,
    BU,
}

impl ParamId {
    pub const ALL: [ParamId; 17] = [
        ParamId::WE,
        ParamId::WPos,
        ParamId::WQ,
        ParamId::WK,
        ParamId::WV,
        ParamId::WO,
        ParamId::BQ,
        ParamId::BK,
        ParamId::BV,
        ParamId::BO,
        ParamId::WIn,
        ParamId::BIn,
        ParamId::WOut,
        ParamId::BOut,
        ParamId::LnFinal,
        ParamId::WU,
        ParamId::BU,
    ];

    /// TransformerLens state-dict name.
    pub fn name(self) -> &'static str {
        match self {
            ParamId::WE => "embed.W_E",
            ParamId::WPos => "pos_embed.W_pos",
            ParamId::WQ => "blocks.0.attn.W_Q",
            ParamId::WK => "blocks.0.attn.W_K",
            ParamId::WV => "blocks.0.attn.W_V",
            ParamId::WO => "blocks.0.attn.W_O",
            ParamId::BQ => "blocks.0.attn.b_Q",
            ParamId::BK => "blocks.0.attn.b_K",
            ParamId::BV => "blocks.0.attn.b_V",
            ParamId::BO => "blocks.0.attn.b_O",
            ParamId::WIn => "blocks.0.mlp.W_in",
            ParamId::BIn => "blocks.0.mlp.b_in",
            ParamId::WOut => "blocks.0.mlp.W_out",
            ParamId::BOut => "blocks.0.mlp.b_out",
            ParamId::LnFinal => "ln_final.w",
            ParamId::WU => "unembed.W_U",
            ParamId::BU => "unembed.b_U",
        }
    }

    pub fn shape(self, c: &ModelConfig) -> Vec<usize> {
        let (v, d, h, dh, m) = (c.d_vocab(), c.d_model, c.n_heads, c.d_head, c.d_mlp);
        match self {
            ParamId::WE => vec![v, d],
            ParamId::WPos => vec![N_CTX, d],
            ParamId::WQ | ParamId::WK | ParamId::WV => vec![h, d, dh],
            ParamId::WO => vec![h, dh, d],
            ParamId::WIn => vec![d, m],
            ParamId::WOut => vec![m, d],
            ParamId::BQ | ParamId::BK | ParamId::BV => vec![h, dh],
            ParamId::LnFinal | ParamId::BO | ParamId::BOut => vec![d],
            ParamId::BIn => vec![m],
            ParamId::WU => vec![d, c.d_vocab_out()],
            ParamId::BU => vec![c.d_vocab_out()],
        }
    }

    /// The group `--quantize` names this weight matrix by; None for biases and the norm gain,
    /// which are never quantised ([`ModelConfig::quantises`] says whether a model does).
    pub fn quant_group(self) -> Option<QuantGroup> {
        match self {
            ParamId::WQ | ParamId::WK | ParamId::WV | ParamId::WO => Some(QuantGroup::Attn),
            ParamId::WIn | ParamId::WOut => Some(QuantGroup::Mlp),
            ParamId::WE | ParamId::WPos => Some(QuantGroup::Embed),
            ParamId::WU => Some(QuantGroup::Unembed),
            _ => None,
        }
    }

    /// Biases, zero at initialisation as in TransformerLens.
    pub fn is_bias(self) -> bool {
        matches!(
            self,
            ParamId::BQ
                | ParamId::BK
                | ParamId::BV
                | ParamId::BO
                | ParamId::BIn
                | ParamId::BOut
                | ParamId::BU
        )
    }

    pub fn present(self, c: &ModelConfig) -> bool {
        match self {
            ParamId::WPos => c.pos_embed,
            ParamId::LnFinal => c.final_norm,
            id if id.is_bias() => c.biases,
            _ => true,
        }
    }

    /// The parameters of a model with this configuration, in order.
    pub fn all_present(c: &ModelConfig) -> Vec<ParamId> {
        ParamId::ALL
            .into_iter()
            .filter(|id| id.present(c))
            .collect()
    }

    /// Fan-in of the matrix as a PyTorch `nn.Linear` would see it.
    fn fan_in(self, c: &ModelConfig) -> usize {
        match self {
            ParamId::WO => c.d_attn(),
            ParamId::WOut => c.d_mlp,
            _ => c.d_model,
        }
    }
}

/// Host copy of a model's parameters (f64 so the CPU reference can use them directly).
#[derive(Clone, Debug, PartialEq)]
pub struct Params {
    pub config: ModelConfig,
    tensors: Vec<(ParamId, Vec<f64>)>,
}

impl Params {
    pub fn zeros(config: &ModelConfig) -> Self {
        let tensors = ParamId::all_present(config)
            .into_iter()
            .map(|id| (id, vec![0.0; id.shape(config).iter().product()]))
            .collect();
        Params {
            config: config.clone(),
            tensors,
        }
    }

    /// Seeded initialisation following `config.init`.
    pub fn init(config: &ModelConfig, seed: u64) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut params = Params::zeros(config);
        for (id, values) in &mut params.tensors {
            let (id, values) = (*id, values.as_mut_slice());
            if id == ParamId::LnFinal {
                values.fill(1.0);
                continue;
            }
            if id.is_bias() {
                continue;
            }
            match config.init {
                Init::TransformerLens => {
                    let std = 0.8 / (config.d_model as f64).sqrt();
                    fill_normal(values, std, &mut rng);
                }
                Init::Pytorch if matches!(id, ParamId::WE | ParamId::WPos) => {
                    fill_normal(values, 1.0, &mut rng)
                }
                Init::Pytorch => {
                    let bound = 1.0 / (id.fan_in(config) as f64).sqrt();
                    values
                        .iter_mut()
                        .for_each(|x| *x = rng.random_range(-bound..bound));
                }
            }
        }
        params
    }

    /// The same parameters with seeded N(0, 0.1²) biases, for conformance tests: the zero biases
    /// of an initialisation would hide a bias that a kernel ignores.
    pub fn with_random_biases(mut self, seed: u64) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0xb1a5);
        for (id, values) in &mut self.tensors {
            if id.is_bias() {
                fill_normal(values, 0.1, &mut rng);
            }
        }
        self
    }

    pub fn ids(&self) -> impl Iterator<Item = ParamId> + '_ {
        self.tensors.iter().map(|(id, _)| *id)
    }

    pub fn iter(&self) -> impl Iterator<Item = (ParamId, &[f64])> {
        self.tensors.iter().map(|(id, v)| (*id, v.as_slice()))
    }

    pub fn get(&self, id: ParamId) -> &[f64] {
        self.tensors
            .iter()
            .find(|(i, _)| *i == id)
            .map(|(_, v)| v.as_slice())
            .unwrap_or_else(|| panic!("model has no parameter {}", id.name()))
    }

    pub fn get_mut(&mut self, id: ParamId) -> &mut [f64] {
        self.tensors
            .iter_mut()
            .find(|(i, _)| *i == id)
            .map(|(_, v)| v.as_mut_slice())
            .unwrap_or_else(|| panic!("model has no parameter {}", id.name()))
    }

    /// Total number of scalars.
    pub fn len(&self) -> usize {
        self.tensors.iter().map(|(_, v)| v.len()).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Reads `{prefix}{name}` for every parameter the config implies (f32 or f64 tensors).
    /// Every tensor's presence, shape and dtype is checked before anything is allocated, so a
    /// config that implies huge tensors costs nothing when the file does not hold them.
    pub fn from_safetensors(config: &ModelConfig, st: &SafeTensors, prefix: &str) -> Result<Self> {
        let ids = ParamId::all_present(config);
        let mut views = Vec::with_capacity(ids.len());
        for &id in &ids {
            let name = format!("{prefix}{}", id.name());
            let view = st
                .tensor(&name)
                .with_context(|| format!("tensor {name} is missing"))?;
            let expected = id.shape(config);
            if view.shape() != expected.as_slice() {
                bail!(
                    "tensor {name} has shape {:?}, the config implies {:?}",
                    view.shape(),
                    expected
                );
            }
            if !matches!(view.dtype(), Dtype::F32 | Dtype::F64) {
                bail!(
                    "tensor {name} has dtype {:?}; expected F32 or F64",
                    view.dtype()
                );
            }
            views.push((id, name, view));
        }
        let tensors = views
            .into_iter()
            .map(|(id, name, view)| Ok((id, tensor_to_f64(&name, view.dtype(), view.data())?)))
            .collect::<Result<_>>()?;
        Ok(Params {
            config: config.clone(),
            tensors,
        })
    }

    /// Serialises as f32 safetensors, with `{prefix}{name}` keys and the given header metadata.
    pub fn to_safetensors_bytes(
        &self,
        prefix: &str,
        metadata: Option<HashMap<String, String>>,
    ) -> Result<Vec<u8>> {
        serialize(&[(prefix, self)], metadata)
    }

    /// Reads a checkpoint (memory-mapped, its size bounded by the config, its checksum checked).
    pub fn load(config: &ModelConfig, path: &Path) -> Result<Self> {
        let load = || -> Result<Params> {
            let bytes = map_checked(path, config, 1)?;
            let st = SafeTensors::deserialize(&bytes)
                .with_context(|| format!("{} is not a valid safetensors file", path.display()))?;
            Params::from_safetensors(config, &st, "")
        };
        load().with_context(|| format!("loading parameters from {}", path.display()))
    }

    /// An error naming the first tensor holding a NaN or an infinity, if any does.
    pub fn check_finite(&self) -> Result<()> {
        for (id, values) in &self.tensors {
            if let Some(i) = values.iter().position(|x| !x.is_finite()) {
                bail!(
                    "tensor {} holds a non-finite value ({} at index {i})",
                    id.name(),
                    values[i]
                );
            }
        }
        Ok(())
    }
}

/// Most bytes a safetensors file holding `parts` parameter sets of `config` can take: every
/// value as f64, and a header of at most 1 MiB.
pub fn max_file_len(config: &ModelConfig, parts: u64) -> u64 {
    let values: u64 = ParamId::all_present(config)
        .iter()
        .map(|id| id.shape(config).iter().map(|&d| d as u64).product::<u64>())
        .sum();
    (1 << 20) + 8 * values * parts
}

/// A safetensors file of `parts` parameter sets of `config`, memory-mapped after its size was
/// checked against what it can hold, with the checksum in its header (if any) verified.
pub fn map_checked(path: &Path, config: &ModelConfig, parts: u64) -> Result<memmap2::Mmap> {
    let bytes = crate::bounded_read::map(
        path,
        max_file_len(config, parts),
        "a parameter file of this model",
    )?;
    let (_, header) = SafeTensors::read_metadata(&bytes)
        .with_context(|| format!("{} is not a valid safetensors file", path.display()))?;
    crate::checksum::verify(&bytes, header.metadata().as_ref())
        .with_context(|| format!("{} is corrupt", path.display()))?;
    Ok(bytes)
}

/// [`serialize`] with the CRC-32 of the data section in the header metadata
/// ([`crate::checksum`]): what checkpoints and resume points are written with.
pub fn serialize_with_checksum(
    parts: &[(&str, &Params)],
    mut metadata: HashMap<String, String>,
) -> Result<Vec<u8>> {
    let unsealed = serialize(parts, Some(metadata.clone()))?;
    let digest = crate::checksum::digest(crate::checksum::data_section(&unsealed)?);
    metadata.insert(crate::checksum::METADATA_KEY.to_string(), digest);
    serialize(parts, Some(metadata))
}

/// Several parameter sets in one f32 safetensors file, each under its key prefix. The header is
/// written with sorted keys: safetensors writes its metadata map in `HashMap` order, which
/// changes from process to process, and runs must be comparable byte for byte.
pub fn serialize(
    parts: &[(&str, &Params)],
    metadata: Option<HashMap<String, String>>,
) -> Result<Vec<u8>> {
    let mut buffers: Vec<(String, Vec<usize>, Vec<u8>)> = Vec::new();
    for (prefix, params) in parts {
        for (id, v) in &params.tensors {
            let f: Vec<f32> = v.iter().map(|&x| x as f32).collect();
            buffers.push((
                format!("{prefix}{}", id.name()),
                id.shape(&params.config),
                bytemuck::cast_slice(&f).to_vec(),
            ));
        }
    }
    let views = buffers
        .iter()
        .map(|(n, s, b)| {
            Ok((
                n.clone(),
                safetensors::tensor::TensorView::new(Dtype::F32, s.clone(), b)?,
            ))
        })
        .collect::<Result<Vec<_>>>()?;
    canonical_header(&safetensors::serialize(views, metadata)?)
}

/// Re-encodes a safetensors header with its keys (and its metadata's keys) sorted, padded with
/// spaces to 8 bytes as safetensors does; the data section is unchanged.
fn canonical_header(bytes: &[u8]) -> Result<Vec<u8>> {
    use std::collections::BTreeMap;
    let n = u64::from_le_bytes(bytes[..8].try_into()?) as usize;
    let mut header: BTreeMap<String, serde_json::Value> = serde_json::from_slice(&bytes[8..8 + n])?;
    if let Some(meta) = header.get_mut("__metadata__") {
        let sorted: BTreeMap<String, String> = serde_json::from_value(meta.take())?;
        *meta = serde_json::to_value(sorted)?;
    }
    let mut json = serde_json::to_vec(&header)?;
    json.resize(json.len().div_ceil(8) * 8, b' ');
    let mut out = Vec::with_capacity(8 + json.len() + bytes.len() - 8 - n);
    out.extend_from_slice(&(json.len() as u64).to_le_bytes());
    out.extend_from_slice(&json);
    out.extend_from_slice(&bytes[8 + n..]);
    Ok(out)
}

fn fill_normal(values: &mut [f64], std: f64, rng: &mut ChaCha8Rng) {
    let normal = Normal::new(0.0, std).expect("positive standard deviation");
    values.iter_mut().for_each(|x| *x = normal.sample(rng));
}

/// Decodes little-endian f32/f64 tensor bytes.
pub fn tensor_to_f64(name: &str, dtype: Dtype, data: &[u8]) -> Result<Vec<f64>> {
    Ok(match dtype {
        Dtype::F32 => data
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes(c.try_into().unwrap()) as f64)
            .collect(),
        Dtype::F64 => data
            .chunks_exact(8)
            .map(|c| f64::from_le_bytes(c.try_into().unwrap()))
            .collect(),
        other => bail!("tensor {name} has dtype {other:?}; expected F32 or F64"),
    })
}

/// Decodes little-endian i32 tensor bytes.
pub fn tensor_to_i32(name: &str, dtype: Dtype, data: &[u8]) -> Result<Vec<i32>> {
    match dtype {
        Dtype::I32 => Ok(data
            .chunks_exact(4)
            .map(|c| i32::from_le_bytes(c.try_into().unwrap()))
            .collect()),
        other => bail!("tensor {name} has dtype {other:?}; expected I32"),
    }
}
