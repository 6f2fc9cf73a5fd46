//! `bitgrok import`: a checkpoint trained elsewhere as a run directory that `analyze` and
//! `compare` accept. Two layouts are recognised from tensor names and shapes:
//!
//! - TransformerLens (`HookedTransformer` state dict): `embed.W_E [V, D]`,
//!   `blocks.0.attn.W_Q [H, D, Dh]`, `blocks.0.attn.W_O [H, Dh, D]`, `blocks.0.mlp.W_in [D, M]`,
//!   `blocks.0.mlp.W_out [M, D]`, `unembed.W_U [D, V_out]`, biases `b_*`;
//! - the original code of Nanda et al. 2023: `embed.W_E [D, V]`, `W_Q/W_K/W_V [H, Dh, D]`,
//!   `W_O [D, H·Dh]`, `W_in [M, D]` with `b_in`, `W_out [D, M]` with `b_out`, `W_U [D, V]`,
//!   and optionally its loss curves `train_losses` (one per epoch) and `test_losses` (one per
//!   ten epochs).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use safetensors::SafeTensors;
use serde::Deserialize;

use crate::metrics::EpochMetrics;
use crate::model::config::N_CTX;
use crate::model::params::tensor_to_f64;
use crate::model::{ActQuant, Init, LinearNorm, ModelConfig, ParamId, Params, Preset, Weights};
use crate::optim::AdamW;
use crate::run::{RunConfig, RunDir};
use crate::task::Split;
use crate::usage_bail;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Layout {
    TransformerLens,
    Nanda2023,
}

/// `--config`: `HookedTransformerConfig` fields (unknown ones are ignored) and what only bitgrok
/// needs. Every field is optional: what the tensors imply is used where a field is absent, and a
/// field that disagrees with the tensors is an error.
#[derive(Debug, Default, Deserialize)]
pub struct ImportConfig {
    pub d_model: Option<usize>,
    pub n_heads: Option<usize>,
    pub d_head: Option<usize>,
    pub d_mlp: Option<usize>,
    pub d_vocab: Option<usize>,
    pub d_vocab_out: Option<usize>,
    pub n_ctx: Option<usize>,
    pub act_fn: Option<String>,
    pub normalization_type: Option<String>,
    pub attention_dir: Option<String>,
    pub positional_embedding_type: Option<String>,
    pub n_layers: Option<usize>,
    /// The modulus (default: d_vocab - 1).
    pub p: Option<usize>,
    /// Fraction of pairs the model was trained on (default 0.3, the study's).
    pub frac: Option<f64>,
    /// Seed of bitgrok's own train/test split for the analysis (default 598).
    pub data_seed: Option<u64>,
    pub layout: Option<Layout>,
    /// A bitgrok export's own record of the run (its model.config.json).
    pub bitgrok: Option<ExportedRun>,
}

#[derive(Debug, Deserialize)]
pub struct ExportedRun {
    pub run: RunConfig,
    pub epoch: usize,
}

/// Tensors a file may hold besides the parameters, and are not an error.
const IGNORED: [&str; 2] = ["blocks.0.attn.mask", "blocks.0.attn.IGNORE"];
const TRAIN_LOSSES: &str = "train_losses";
const TEST_LOSSES: &str = "test_losses";
/// Loss curves a Nanda et al. 2023 file may carry beside its parameters.
const CURVES: [&str; 2] = [TRAIN_LOSSES, TEST_LOSSES];
/// Epochs between two entries of a Nanda et al. test-loss curve.
const TEST_LOSS_EVERY: usize = 10;

pub struct Imported {
    pub run: PathBuf,
    pub layout: Layout,
    pub config: ModelConfig,
    pub epoch: usize,
}

pub fn read_import_config(path: &Path) -> Result<ImportConfig> {
    let text = crate::bounded_read::read_to_string(
        path,
        crate::bounded_read::SMALL_JSON,
        "an import config",
    )?;
    serde_json::from_str(&text).map_err(|e| {
        anyhow::Error::new(crate::error::UsageError(format!(
            "{} is not a valid import config: {e}",
            path.display()
        )))
    })
}

/// Most bytes a model file can take: the largest model bitgrok accepts, every tensor f64, with
/// 1 GiB to spare for loss curves and tensors it ignores. (The file is memory-mapped: only the
/// tensors it uses are read.)
fn max_model_file_len() -> u64 {
    use crate::model::config::{MAX_P, MAX_WIDTH};
    let largest = ModelConfig {
        d_model: MAX_WIDTH,
        n_heads: 1,
        d_head: MAX_WIDTH,
        d_mlp: MAX_WIDTH,
        pos_embed: true,
        final_norm: true,
        biases: true,
        eq_output: true,
        ..ModelConfig::preset(Preset::Nanda, MAX_P)
    };
    crate::model::params::max_file_len(&largest, 1) + (1 << 30)
}

/// Imports `model` into a new run directory `out`.
pub fn import(model: &Path, extra: &ImportConfig, out: &Path, force: bool) -> Result<Imported> {
    RunDir::check_new(out, force)?;
    let bytes =
        crate::bounded_read::map(model, max_model_file_len(), "a model bitgrok can import")?;
    let st = SafeTensors::deserialize(&bytes)
        .with_context(|| format!("{} is not a valid safetensors file", model.display()))?;
    let tensors = Tensors::new(&st)?;
    let layout = tensors.layout(extra)?;
    let config = tensors.model_config(layout, extra)?;
    let params = tensors.params(layout, &config)?;
    params
        .check_finite()
        .with_context(|| format!("{} cannot be imported", model.display()))?;
    let curves = tensors.loss_curves()?;

    let exported = extra.bitgrok.as_ref();
    let epochs = curves
        .as_ref()
        .map(|(train, _)| train.len())
        .or(exported.map(|e| e.epoch))
        .unwrap_or(0);
    let frac = extra.frac.or(exported.map(|e| e.run.frac)).unwrap_or(0.3);
    let data_seed = extra
        .data_seed
        .or(exported.map(|e| e.run.data_seed))
        .unwrap_or(598);
    let mut run_config = RunConfig {
        preset: exported.map_or(Preset::Nanda, |e| e.run.preset),
        model: config.clone(),
        frac,
        data_seed,
        seed: 0,
        adamw: AdamW::default(),
        epochs: epochs.max(1),
        eval_every: 1,
        checkpoint_every: epochs.max(1),
        stop_after_grok: None,
        crate_version: env!("CARGO_PKG_VERSION").to_string(),
        adapter: String::new(),
        imported_from: Some(format!(
            "{} ({:?} layout); the train/test split is bitgrok's own (frac {frac}, data seed \
             {data_seed}), not necessarily the one it was trained on",
            model.display(),
            layout
        )),
    };
    if let Some(e) = exported {
        run_config.seed = e.run.seed;
        run_config.adamw = e.run.adamw.clone();
    }
    run_config.validate()?;

    let dir = RunDir::create(out, force)?;
    dir.write_config(&run_config)?;
    dir.write_split(&Split::new(config.p, frac, data_seed))?;
    if let Some((train, test)) = &curves {
        dir.write_metrics(&loss_curve_metrics(train, test))?;
    } else {
        dir.write_metrics(&[])?;
    }
    dir.write_checkpoint(epochs, &params)?;
    Ok(Imported {
        run: out.to_path_buf(),
        layout,
        config,
        epoch: epochs,
    })
}

/// Metrics rows from stored loss curves: train loss every epoch, test loss every ten (NaN
/// between); Python's epoch `e` (0-based, before its step) is bitgrok's epoch `e + 1`.
fn loss_curve_metrics(train: &[f64], test: &[f64]) -> Vec<EpochMetrics> {
    (0..train.len())
        .map(|e| {
            let test_loss = if e % TEST_LOSS_EVERY == 0 {
                test.get(e / TEST_LOSS_EVERY).copied().unwrap_or(f64::NAN)
            } else {
                f64::NAN
            };
            EpochMetrics {
                epoch: e + 1,
                train_loss: train[e] as f32,
                train_acc: f32::NAN,
                test_loss: test_loss as f32,
                test_acc: f32::NAN,
                test_acc_transpose_seen: f32::NAN,
                test_acc_transpose_unseen: f32::NAN,
                params_finite: true,
            }
        })
        .collect()
}

/// The tensors of a file by name, with their shapes.
struct Tensors<'a> {
    st: &'a SafeTensors<'a>,
    shapes: HashMap<String, Vec<usize>>,
}

impl<'a> Tensors<'a> {
    fn new(st: &'a SafeTensors<'a>) -> Result<Self> {
        let known: Vec<&str> = ParamId::ALL.iter().map(|id| id.name()).collect();
        let mut shapes = HashMap::new();
        for (name, view) in st.tensors() {
            if IGNORED.contains(&name.as_str()) {
                continue;
            }
            if !known.contains(&name.as_str()) && !CURVES.contains(&name.as_str()) {
                usage_bail!(
                    "tensor {name} {:?} is not part of a one-layer transformer without LayerNorm \
                     that bitgrok can analyse",
                    view.shape()
                );
            }
            shapes.insert(name, view.shape().to_vec());
        }
        Ok(Tensors { st, shapes })
    }

    fn shape(&self, id: ParamId) -> Result<&[usize]> {
        match self.shapes.get(id.name()) {
            Some(shape) => Ok(shape),
            None => usage_bail!("tensor {} is missing", id.name()),
        }
    }

    fn has(&self, id: ParamId) -> bool {
        self.shapes.contains_key(id.name())
    }

    /// The 2-d shape of `id`, or an error naming it.
    fn matrix(&self, id: ParamId) -> Result<(usize, usize)> {
        match self.shape(id)? {
            [r, c] => Ok((*r, *c)),
            s => usage_bail!(
                "tensor {} has shape {s:?}; expected 2 dimensions",
                id.name()
            ),
        }
    }

    /// TransformerLens's W_E is [V, D], the original code's [D, V]; D is W_U's first axis in
    /// both. A square W_E is told apart by W_in ([D, M] against [M, D]).
    fn layout(&self, extra: &ImportConfig) -> Result<Layout> {
        if let Some(layout) = extra.layout {
            return Ok(layout);
        }
        let (d, _) = self.matrix(ParamId::WU)?;
        let (e0, e1) = self.matrix(ParamId::WE)?;
        let (i0, i1) = self.matrix(ParamId::WIn)?;
        match (e0 == d, e1 == d) {
            (false, true) => Ok(Layout::TransformerLens),
            (true, false) => Ok(Layout::Nanda2023),
            (true, true) if i0 != i1 => Ok(if i0 == d {
                Layout::TransformerLens
            } else {
                Layout::Nanda2023
            }),
            _ => usage_bail!(
                "cannot tell the layout from the shapes (embed.W_E [{e0}, {e1}], unembed.W_U \
                 [{d}, ..], blocks.0.mlp.W_in [{i0}, {i1}]): give \"layout\" in --config"
            ),
        }
    }

    fn model_config(&self, layout: Layout, extra: &ImportConfig) -> Result<ModelConfig> {
        let (d_model, d_vocab_out) = self.matrix(ParamId::WU)?;
        let (d_vocab, d_mlp) = match layout {
            Layout::TransformerLens => (self.matrix(ParamId::WE)?.0, self.matrix(ParamId::WIn)?.1),
            Layout::Nanda2023 => (self.matrix(ParamId::WE)?.1, self.matrix(ParamId::WIn)?.0),
        };
        let (n_heads, d_head) = match (layout, self.shape(ParamId::WQ)?) {
            (Layout::TransformerLens, [h, _, dh]) | (Layout::Nanda2023, [h, dh, _]) => (*h, *dh),
            (_, s) => {
                usage_bail!("tensor blocks.0.attn.W_Q has shape {s:?}; expected 3 dimensions")
            }
        };
        let p = extra.p.unwrap_or(d_vocab.saturating_sub(1));
        let eq_output = match d_vocab_out {
            o if o == p => false,
            o if o == p + 1 => true,
            o => usage_bail!(
                "tensor unembed.W_U has {o} outputs; expected p = {p} or p + 1 (with an output for =)"
            ),
        };
        if d_vocab != p + 1 {
            usage_bail!(
                "tensor embed.W_E has {d_vocab} tokens; expected p + 1 = {}",
                p + 1
            );
        }
        for (field, given, implied) in [
            ("d_model", extra.d_model, d_model),
            ("n_heads", extra.n_heads, n_heads),
            ("d_head", extra.d_head, d_head),
            ("d_mlp", extra.d_mlp, d_mlp),
            ("d_vocab", extra.d_vocab, d_vocab),
            ("d_vocab_out", extra.d_vocab_out, d_vocab_out),
            ("n_ctx", extra.n_ctx, N_CTX),
            ("n_layers", extra.n_layers, 1),
        ] {
            if let Some(given) = given {
                if given != implied {
                    usage_bail!("--config gives {field} = {given}, the tensors imply {implied}");
                }
            }
        }
        for (field, value, allowed) in [
            ("act_fn", &extra.act_fn, "relu"),
            (
                "positional_embedding_type",
                &extra.positional_embedding_type,
                "standard",
            ),
        ] {
            if let Some(v) = value.as_deref().filter(|v| *v != allowed) {
                usage_bail!("--config gives {field} = {v:?}; bitgrok's model has {allowed:?}");
            }
        }
        if let Some(n) = &extra.normalization_type {
            usage_bail!("--config gives normalization_type = {n:?}; bitgrok's model has no LayerNorm (null)");
        }
        let causal = match extra.attention_dir.as_deref() {
            None | Some("causal") => true,
            Some("bidirectional") => false,
            Some(other) => usage_bail!(
                "--config gives attention_dir = {other:?}; expected \"causal\" or \"bidirectional\""
            ),
        };
        let biases = ParamId::ALL.iter().any(|id| id.is_bias() && self.has(*id));
        let config = ModelConfig {
            p,
            d_model,
            n_heads,
            d_head,
            d_mlp,
            weights: Weights::F32,
            quantize: Default::default(),
            weight_scale: Default::default(),
            weight_centre: Default::default(),
            act_quant: ActQuant::None,
            linear_norm: LinearNorm::None,
            pos_embed: self.has(ParamId::WPos),
            causal,
            final_norm: self.has(ParamId::LnFinal),
            biases,
            eq_output,
            init: Init::TransformerLens,
        };
        config.validate().map_err(|e| {
            anyhow::Error::new(crate::error::UsageError(format!(
                "the tensors imply an unusable model: {e}"
            )))
        })?;
        // A bitgrok export of a bit model carries its switches: keep them, so the analysis
        // runs the model the export came from.
        Ok(match &extra.bitgrok {
            Some(e) if same_shapes(&e.run.model, &config) => ModelConfig {
                act_quant: e.run.model.act_quant,
                linear_norm: e.run.model.linear_norm,
                ..config
            },
            _ => config,
        })
    }

    /// The parameters in bitgrok's (TransformerLens) layout; absent biases are zero.
    fn params(&self, layout: Layout, c: &ModelConfig) -> Result<Params> {
        let mut params = Params::zeros(c);
        for id in ParamId::all_present(c) {
            if id.is_bias() && !self.has(id) {
                continue;
            }
            let name = id.name();
            let stored = stored_shape(layout, id, &id.shape(c));
            if self.shape(id)? != stored.as_slice() {
                usage_bail!(
                    "tensor {name} has shape {:?}; the other tensors imply {stored:?}",
                    self.shape(id)?
                );
            }
            let view = self.st.tensor(name)?;
            let values = tensor_to_f64(name, view.dtype(), view.data())?;
            params
                .get_mut(id)
                .copy_from_slice(&to_transformer_lens(layout, id, c, &values));
        }
        Ok(params)
    }

    fn loss_curves(&self) -> Result<Option<(Vec<f64>, Vec<f64>)>> {
        let read = |name: &str| -> Result<Option<Vec<f64>>> {
            if !self.shapes.contains_key(name) {
                return Ok(None);
            }
            let view = self.st.tensor(name)?;
            if view.shape().len() != 1 {
                usage_bail!(
                    "tensor {name} has shape {:?}; expected a curve",
                    view.shape()
                );
            }
            Ok(Some(tensor_to_f64(name, view.dtype(), view.data())?))
        };
        Ok(match (read(TRAIN_LOSSES)?, read(TEST_LOSSES)?) {
            (Some(train), test) => Some((train, test.unwrap_or_default())),
            _ => None,
        })
    }
}

fn same_shapes(a: &ModelConfig, b: &ModelConfig) -> bool {
    (a.p, a.d_model, a.n_heads, a.d_head, a.d_mlp) == (b.p, b.d_model, b.n_heads, b.d_head, b.d_mlp)
}

/// The shape `id` has in the file, given its TransformerLens shape `tl`.
fn stored_shape(layout: Layout, id: ParamId, tl: &[usize]) -> Vec<usize> {
    match (layout, id) {
        (Layout::TransformerLens, _) => tl.to_vec(),
        (Layout::Nanda2023, ParamId::WE | ParamId::WIn | ParamId::WOut) => vec![tl[1], tl[0]],
        (Layout::Nanda2023, ParamId::WQ | ParamId::WK | ParamId::WV) => vec![tl[0], tl[2], tl[1]],
        (Layout::Nanda2023, ParamId::WO) => vec![tl[2], tl[0] * tl[1]],
        (Layout::Nanda2023, _) => tl.to_vec(),
    }
}

/// Reorders a stored tensor into TransformerLens layout.
fn to_transformer_lens(layout: Layout, id: ParamId, c: &ModelConfig, v: &[f64]) -> Vec<f64> {
    let (d, h, dh, m, vocab) = (c.d_model, c.n_heads, c.d_head, c.d_mlp, c.d_vocab());
    match (layout, id) {
        (Layout::TransformerLens, _) => v.to_vec(),
        (Layout::Nanda2023, ParamId::WE) => transpose(v, d, vocab),
        (Layout::Nanda2023, ParamId::WIn) => transpose(v, m, d),
        (Layout::Nanda2023, ParamId::WOut) => transpose(v, d, m),
        // [H, Dh, D] → [H, D, Dh]
        (Layout::Nanda2023, ParamId::WQ | ParamId::WK | ParamId::WV) => v
            .chunks_exact(dh * d)
            .flat_map(|head| transpose(head, dh, d))
            .collect(),
        // [D, H·Dh] → [H·Dh, D] = [H, Dh, D]
        (Layout::Nanda2023, ParamId::WO) => transpose(v, d, h * dh),
        (Layout::Nanda2023, _) => v.to_vec(),
    }
}

/// The transpose of a row-major `rows x cols` matrix.
fn transpose(v: &[f64], rows: usize, cols: usize) -> Vec<f64> {
    (0..cols)
        .flat_map(|j| (0..rows).map(move |i| v[i * cols + j]))
        .collect()
}
