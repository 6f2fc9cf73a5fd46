//! The options `train` and `sweep` share.

use anyhow::Result;
use clap::Args;

use crate::engine::device::{FloatProducts, Gpu, TensorCores};
use crate::error::UsageError;
use crate::model::config::{DEFAULT_D_HEAD, DEFAULT_D_MLP, DEFAULT_D_MODEL, DEFAULT_N_HEADS};
use crate::model::{Init, LinearNorm, QuantScope, WeightCentre, WeightScale};
use crate::run::{
    RunConfig, DEFAULT_CHECKPOINT_EVERY, DEFAULT_DATA_SEED, DEFAULT_EPOCHS, DEFAULT_EVAL_EVERY,
    DEFAULT_FRAC, DEFAULT_P,
};
use crate::sweep::axes::Setting;

/// The settings `train` and `sweep` share: the task, the architecture's switches and the
/// training length. Every task, width and switch option takes a comma-separated list: `train`
/// takes one value, a sweep makes each list with more than one an axis of its grid.
#[derive(Args)]
pub struct ModelOptions {
    /// Modulus (vocabulary p + 1).
    #[arg(long, value_delimiter = ',', default_values_t = [DEFAULT_P])]
    pub p: Vec<usize>,
    /// Fraction of the p² pairs used for training.
    #[arg(long, value_delimiter = ',', default_values_t = [DEFAULT_FRAC], allow_hyphen_values = true)]
    pub frac: Vec<f64>,
    /// Seed of the train/test split (a sweep's seed s splits with DATA_SEED + s, or with
    /// DATA_SEED under --split fixed).
    #[arg(long, default_value_t = DEFAULT_DATA_SEED)]
    pub data_seed: u64,
    #[arg(long, value_delimiter = ',', default_values_t = [DEFAULT_D_MODEL])]
    pub d_model: Vec<usize>,
    #[arg(long, value_delimiter = ',', default_values_t = [DEFAULT_N_HEADS])]
    pub n_heads: Vec<usize>,
    #[arg(long, value_delimiter = ',', default_values_t = [DEFAULT_D_HEAD])]
    pub d_head: Vec<usize>,
    #[arg(long, value_delimiter = ',', default_values_t = [DEFAULT_D_MLP])]
    pub d_mlp: Vec<usize>,
    /// Weight matrices binary and ternary weights quantise: attn, mlp, embed, unembed, joined
    /// by + (or all) [default: attn+mlp]; `train` also reads `attn,mlp` as one scope.
    #[arg(long, value_name = "SCOPE", value_delimiter = ',')]
    pub quantize: Vec<QuantScope>,
    /// Scale of the quantised weights: absmean, or none (the codes themselves) [default:
    /// absmean].
    #[arg(long, value_enum, value_delimiter = ',')]
    pub weight_scale: Vec<WeightScale>,
    /// Quantise W itself, or W - mean W (with the gradient through the mean) [default: none].
    #[arg(long, value_enum, value_delimiter = ',')]
    pub weight_centre: Vec<WeightCentre>,
    /// Parameter initialisation [preset: nanda nanda, seed-bitnet pytorch].
    #[arg(long, value_enum, value_delimiter = ',')]
    pub init: Vec<Init>,
    /// Normalisation of every Linear input [preset: nanda none, seed-bitnet rms].
    #[arg(long, value_enum, value_delimiter = ',')]
    pub linear_norm: Vec<LinearNorm>,
    /// Learned positional embedding: on (the flag alone) or off [preset: nanda on, seed-bitnet
    /// off].
    #[arg(long, value_enum, value_delimiter = ',', num_args = 0..=1, default_missing_value = "on",
          conflicts_with = "no_pos_embed")]
    pub pos_embed: Vec<OnOff>,
    /// The same as --pos-embed off.
    #[arg(long)]
    pub no_pos_embed: bool,
    /// Causal attention mask: on (the flag alone) or off [preset: nanda on, seed-bitnet off].
    #[arg(long, value_enum, value_delimiter = ',', num_args = 0..=1, default_missing_value = "on",
          conflicts_with = "no_causal")]
    pub causal: Vec<OnOff>,
    /// The same as --causal off.
    #[arg(long)]
    pub no_causal: bool,
    /// RMSNorm with gain before the unembedding: on (the flag alone) or off [preset: nanda off,
    /// seed-bitnet on].
    #[arg(long, value_enum, value_delimiter = ',', num_args = 0..=1, default_missing_value = "on",
          conflicts_with = "no_final_norm")]
    pub final_norm: Vec<OnOff>,
    /// The same as --final-norm off.
    #[arg(long)]
    pub no_final_norm: bool,
    /// Epoch budget [default: 25000; with --resume: the run's own, or this to extend it].
    #[arg(long)]
    pub epochs: Option<usize>,
    /// Evaluate the test set every N epochs.
    #[arg(long, default_value_t = DEFAULT_EVAL_EVERY)]
    pub eval_every: usize,
    #[arg(long, default_value_t = DEFAULT_CHECKPOINT_EVERY)]
    pub checkpoint_every: usize,
    /// Stop N epochs after the run groks (generalised, 99.9% of the test pairs right or all but
    /// one below 1,000 of them, held for 500 epochs), rounded up to a checkpoint.
    #[arg(long)]
    pub stop_after_grok: Option<usize>,
}

/// A switch's value in lists: `--causal on,off`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum OnOff {
    On,
    Off,
}

impl ModelOptions {
    /// Every list of settings given, in the order of the options (the switch pairs' `--no-x`
    /// read as `--x off`).
    pub(super) fn setting_lists(&self) -> Vec<Vec<Setting>> {
        fn list<T: Copy>(values: &[T], setting: fn(T) -> Setting) -> Vec<Setting> {
            values.iter().map(|&v| setting(v)).collect()
        }
        let switch = |values: &[OnOff], off: bool, setting: fn(bool) -> Setting| {
            if off {
                vec![setting(false)]
            } else {
                values.iter().map(|&v| setting(v == OnOff::On)).collect()
            }
        };
        vec![
            list(&self.p, Setting::P),
            list(&self.frac, Setting::Frac),
            list(&self.d_model, Setting::DModel),
            list(&self.n_heads, Setting::NHeads),
            list(&self.d_head, Setting::DHead),
            list(&self.d_mlp, Setting::DMlp),
            list(&self.quantize, Setting::Quantize),
            list(&self.weight_scale, Setting::WeightScale),
            list(&self.weight_centre, Setting::WeightCentre),
            list(&self.init, Setting::Init),
            list(&self.linear_norm, Setting::LinearNorm),
            switch(&self.pos_embed, self.no_pos_embed, Setting::PosEmbed),
            switch(&self.causal, self.no_causal, Setting::Causal),
            switch(&self.final_norm, self.no_final_norm, Setting::FinalNorm),
        ]
    }

    /// The settings for `train`: one value per option (several quantize scopes are one scope).
    pub(super) fn single_settings(&self) -> Result<Vec<Setting>> {
        let mut settings = Vec::new();
        for list in self.setting_lists() {
            match list.as_slice() {
                [] => {}
                [one] => settings.push(*one),
                [Setting::Quantize(_), ..] => {
                    let groups: Vec<String> = list.iter().map(|s| s.to_string()).collect();
                    let scope = groups.join("+").parse().map_err(UsageError)?;
                    settings.push(Setting::Quantize(scope));
                }
                [first, ..] => crate::usage_bail!(
                    "--{} {}: train takes one value (a sweep takes several)",
                    first.option(),
                    list.iter()
                        .map(|s| s.to_string())
                        .collect::<Vec<_>>()
                        .join(",")
                ),
            }
        }
        Ok(settings)
    }

    /// Sets the training length, evaluation and checkpoint cadence and split seed given.
    pub(super) fn apply_schedule(&self, config: &mut RunConfig) {
        config.data_seed = self.data_seed;
        config.epochs = self.epochs.unwrap_or(DEFAULT_EPOCHS);
        config.eval_every = self.eval_every;
        config.checkpoint_every = self.checkpoint_every;
        config.stop_after_grok = self.stop_after_grok;
    }
}

/// The adapter a command trains on, and how it runs the integer products.
#[derive(Args)]
pub struct DeviceOptions {
    /// Adapter to use: a substring of its name (see `bitgrok devices`).
    #[arg(long)]
    pub adapter: Option<String>,
    /// Where the integer products (int8 activations times binary or ternary weights) run. They
    /// are exact on every path, so the choice changes the speed, never the result
    #[arg(long, value_enum, default_value_t = TensorCores::Auto)]
    pub tensor_cores: TensorCores,
    /// How the products with a float operand (every product of full-precision models, the
    /// gradients of all) run. split-f16 agrees with f32 within `bitgrok check`'s tolerances, not
    /// bit for bit
    #[arg(long, value_enum, default_value_t = FloatProducts::F32)]
    pub float_products: FloatProducts,
}

impl DeviceOptions {
    pub fn open(&self) -> Result<Gpu> {
        Gpu::open(
            self.adapter.as_deref(),
            self.tensor_cores,
            self.float_products,
        )
    }
}
