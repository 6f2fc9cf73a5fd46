//! Model architecture: one layer, five switches, two presets (see README).

use serde::{Deserialize, Serialize};

/// How `Linear` quantises its weight matrix (`Qw`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Weights {
    /// Identity.
    F32,
    /// `sign(W - mean W) * mean|W|` (BitNet).
    Binary,
    /// `clamp(round(W / g), -1, 1) * g`, `g = max(mean|W|, 1e-5)` (BitNet b1.58).
    Ternary,
}

/// How `Linear` quantises its input activations (`Qa`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum ActQuant {
    None,
    /// Per-token absmax fake-quantisation to int8.
    Int8,
}

/// Normalisation applied to a `Linear` input before quantisation (`N`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LinearNorm {
    None,
    /// Per-token `x / sqrt(mean(x^2) + 1e-5)`, no gain.
    Rms,
}

/// Parameter initialisation scheme.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Init {
    /// Every weight matrix N(0, (0.8/sqrt(d_model))^2), as TransformerLens.
    TransformerLens,
    /// Embeddings N(0, 1); every other matrix U(+-1/sqrt(fan_in)), as PyTorch modules.
    Pytorch,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Preset {
    /// Full-precision model of Nanda et al. (TransformerLens grokking demo).
    Nanda,
    /// Ternary BitNet b1.58 model of the study bitgrok reproduces.
    SeedBitnet,
}

/// Epsilon of every RMS normalisation.
pub const NORM_EPS: f64 = 1e-5;
/// Floor of the absmax in int8 activation quantisation and of the ternary scale.
pub const QUANT_EPS: f64 = 1e-5;
/// Largest modulus: its p² pairs must stay a modest host allocation.
pub const MAX_P: usize = 4096;
/// Largest d_model, d_head, d_mlp and head count.
pub const MAX_WIDTH: usize = 16384;
/// Sequence length: `[a, b, =]`.
pub const N_CTX: usize = 3;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ModelConfig {
    pub p: usize,
    pub d_model: usize,
    pub n_heads: usize,
    pub d_head: usize,
    pub d_mlp: usize,
    pub weights: Weights,
    pub act_quant: ActQuant,
    pub linear_norm: LinearNorm,
    pub pos_embed: bool,
    pub causal: bool,
    pub final_norm: bool,
    /// Biases in every `Linear` and the unembedding (b_Q, b_K, b_V, b_O, b_in, b_out, b_U), as in
    /// TransformerLens and the original grokking code; bitgrok's presets have none.
    #[serde(default)]
    pub biases: bool,
    /// The unembedding also has an output for `=` (d_vocab_out = p + 1), never a label, as in
    /// the original grokking code.
    #[serde(default)]
    pub eq_output: bool,
    /// Not part of the architecture; absent from test-vector configs.
    #[serde(default = "default_init")]
    pub init: Init,
}

fn default_init() -> Init {
    Init::TransformerLens
}

impl ModelConfig {
    pub fn preset(preset: Preset, p: usize) -> Self {
        let base = ModelConfig {
            p,
            d_model: 128,
            n_heads: 4,
            d_head: 32,
            d_mlp: 512,
            weights: Weights::F32,
            act_quant: ActQuant::None,
            linear_norm: LinearNorm::None,
            pos_embed: true,
            causal: true,
            final_norm: false,
            biases: false,
            eq_output: false,
            init: Init::TransformerLens,
        };
        match preset {
            Preset::Nanda => base,
            Preset::SeedBitnet => ModelConfig {
                weights: Weights::Ternary,
                act_quant: ActQuant::Int8,
                linear_norm: LinearNorm::Rms,
                pos_embed: false,
                causal: false,
                final_norm: true,
                init: Init::Pytorch,
                ..base
            },
        }
    }

    /// Vocabulary: the p numbers and `=`.
    pub fn d_vocab(&self) -> usize {
        self.p + 1
    }

    /// Outputs of the unembedding: the p labels (and `=` with `eq_output`).
    pub fn d_vocab_out(&self) -> usize {
        self.p + self.eq_output as usize
    }

    /// Width of the concatenated heads.
    pub fn d_attn(&self) -> usize {
        self.n_heads * self.d_head
    }

    /// `Linear`s read their inputs as they are: no norm, no activation quantisation.
    pub fn plain_linear_inputs(&self) -> bool {
        self.linear_norm == LinearNorm::None && self.act_quant == ActQuant::None
    }

    /// The quantised `Linear`s take int8 codes: their products are integer sums, scaled once.
    pub fn integer_linears(&self) -> bool {
        self.weights != Weights::F32 && self.act_quant == ActQuant::Int8
    }

    /// Token id of `=`.
    pub fn eq_token(&self) -> usize {
        self.p
    }

    /// Checks the sizes make a model; returns the first problem, naming the option. The upper
    /// bounds keep hostile configs from asking for unbounded host memory; what the adapter can
    /// hold is checked against its limits when the engine is built.
    pub fn validate(&self) -> Result<(), String> {
        let ranges = [
            ("p", self.p, 2, MAX_P),
            ("d-model", self.d_model, 1, MAX_WIDTH),
            ("n-heads", self.n_heads, 1, MAX_WIDTH),
            ("d-head", self.d_head, 1, MAX_WIDTH),
            ("d-mlp", self.d_mlp, 1, MAX_WIDTH),
        ];
        for (name, value, min, max) in ranges {
            if !(min..=max).contains(&value) {
                return Err(format!("--{name} {value}: must be between {min} and {max}"));
            }
        }
        if self.n_heads * self.d_head != self.d_model {
            return Err(format!(
                "--d-head {}: n-heads × d-head must equal d-model ({} × {} ≠ {})",
                self.d_head, self.n_heads, self.d_head, self.d_model
            ));
        }
        Ok(())
    }
}
