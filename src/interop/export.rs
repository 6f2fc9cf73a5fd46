//! `bitgrok export`: a run's checkpoint as a TransformerLens `HookedTransformer` state dict and
//! the matching `HookedTransformerConfig`.

use std::path::{Path, PathBuf};

use anyhow::Result;
use serde::Serialize;

use crate::model::{params, ActQuant, LinearNorm, ModelConfig, ParamId, Params, Weights};
use crate::model::{WeightCentre, WeightScale};
use crate::reference::effective_params;
use crate::run::{write_atomic, RunConfig, RunDir};

/// `model.config.json`: the `HookedTransformerConfig` fields, and under `bitgrok` what the
/// export leaves out (pop it before `HookedTransformerConfig(**cfg)`).
#[derive(Serialize)]
pub struct TransformerLensConfig {
    pub n_layers: usize,
    pub d_model: usize,
    pub n_heads: usize,
    pub d_head: usize,
    pub d_mlp: usize,
    pub d_vocab: usize,
    pub d_vocab_out: usize,
    pub n_ctx: usize,
    pub act_fn: &'static str,
    pub normalization_type: Option<&'static str>,
    pub attention_dir: &'static str,
    pub positional_embedding_type: &'static str,
    pub bitgrok: ExportNote,
}

#[derive(Serialize)]
pub struct ExportNote {
    pub run: RunConfig,
    pub epoch: usize,
    /// True when TransformerLens computes bitgrok's logits from this export.
    pub exact_in_transformer_lens: bool,
    /// What the model does that TransformerLens cannot express (empty when exact).
    pub not_expressible: Vec<String>,
    pub notes: Vec<String>,
}

/// Paths written by [`export`].
pub struct Exported {
    pub weights: PathBuf,
    pub config: PathBuf,
    pub epoch: usize,
    pub note: ExportNote,
}

/// The config path beside a weights path: `model.safetensors` → `model.config.json`.
pub fn config_path(weights: &Path) -> PathBuf {
    weights.with_extension("config.json")
}

/// Writes the checkpoint of `epoch` (default: the newest) of `run` to `out` and its config
/// beside it.
pub fn export(run: &Path, epoch: Option<usize>, out: &Path) -> Result<Exported> {
    let dir = RunDir::open(run)?;
    for path in [out.to_path_buf(), config_path(out)] {
        if dir.owns(&path) {
            crate::usage_bail!(
                "--out {}: {} is a file of the run itself; export outside its checkpoints/, \
                 analysis/ and its own files",
                out.display(),
                path.display()
            );
        }
    }
    let config = dir.read_config()?;
    let (epoch, latent) = dir.load_checkpoint(&config.model, epoch)?;
    let c = &config.model;
    let state_dict = transformer_lens_params(&effective_params(&latent));
    let (not_expressible, notes) = limitations(c);
    let note = ExportNote {
        run: config.clone(),
        epoch,
        exact_in_transformer_lens: not_expressible.is_empty(),
        not_expressible,
        notes,
    };
    let tl = TransformerLensConfig {
        n_layers: 1,
        d_model: c.d_model,
        n_heads: c.n_heads,
        d_head: c.d_head,
        d_mlp: c.d_mlp,
        d_vocab: c.d_vocab(),
        d_vocab_out: c.d_vocab_out(),
        n_ctx: crate::model::config::N_CTX,
        act_fn: "relu",
        normalization_type: None,
        attention_dir: if c.causal { "causal" } else { "bidirectional" },
        positional_embedding_type: "standard",
        bitgrok: note,
    };
    let metadata = std::collections::HashMap::from([(
        "format".to_string(),
        "TransformerLens HookedTransformer state dict exported by bitgrok (effective weights)"
            .to_string(),
    )]);
    write_atomic(
        out,
        &params::serialize(&[("", &state_dict)], Some(metadata))?,
    )?;
    let config_file = config_path(out);
    write_atomic(&config_file, serde_json::to_string_pretty(&tl)?.as_bytes())?;
    Ok(Exported {
        weights: out.to_path_buf(),
        config: config_file,
        epoch,
        note: tl.bitgrok,
    })
}

/// The parameters in TransformerLens's full set of names: biases and a positional embedding
/// (zeros where bitgrok has none), full-precision weights.
pub fn transformer_lens_params(effective: &Params) -> Params {
    let c = &effective.config;
    let tl = ModelConfig {
        biases: true,
        pos_embed: true,
        weights: Weights::F32,
        quantize: Default::default(),
        weight_scale: WeightScale::Absmean,
        weight_centre: WeightCentre::None,
        ..c.clone()
    };
    let mut out = Params::zeros(&tl);
    for (id, values) in effective.iter() {
        out.get_mut(id).copy_from_slice(values);
    }
    out
}

/// What TransformerLens cannot express about `c`, and what the export changed but kept exact.
fn limitations(c: &ModelConfig) -> (Vec<String>, Vec<String>) {
    let mut missing = Vec::new();
    let mut notes = Vec::new();
    if c.linear_norm == LinearNorm::Rms {
        missing.push("a per-token RMS norm (no gain) of the input of every Linear layer (W_Q, W_K, W_V, W_O, W_in, W_out)".to_string());
    }
    if c.act_quant == ActQuant::Int8 {
        missing.push(
            "per-token absmax int8 quantisation of the input of every Linear layer".to_string(),
        );
    }
    if c.final_norm {
        missing.push("an RMS norm with gain before the unembedding only: ln_final.w holds the gain, but TransformerLens's normalization_type \"RMS\" would also add ln1 and ln2".to_string());
    }
    if c.weights != Weights::F32 {
        let quantised: Vec<&str> = ParamId::all_present(c)
            .into_iter()
            .filter(|&id| c.quantises(id))
            .map(ParamId::name)
            .collect();
        let centred = match c.weight_centre {
            WeightCentre::None => "",
            WeightCentre::Mean => " of W - mean W",
        };
        let scale = match c.weight_scale {
            WeightScale::Absmean => "the matrix's scale times its codes",
            WeightScale::None => "its codes, unscaled",
        };
        notes.push(format!(
            "{} weights (--quantize {}: {}) are exported as their effective values ({scale}{centred}), not the latent ones",
            crate::model::name_of(c.weights),
            c.quantize,
            quantised.join(", ")
        ));
        notes.push("TransformerLens cannot express the weight quantiser itself: it computes the logits from these effective weights, but a model trained or fine-tuned there would leave the codes".to_string());
    }
    if !c.pos_embed {
        notes.push("the model has no positional embedding: pos_embed.W_pos is zero".to_string());
    }
    if !c.biases {
        notes.push("the model has no biases: every b_* is zero".to_string());
    }
    (missing, notes)
}
