//! Command-line interface.

use std::path::PathBuf;

use anyhow::Result;
use clap::{Args, Parser, Subcommand};

use crate::error::UsageError;
use crate::model::config::{DEFAULT_D_HEAD, DEFAULT_D_MLP, DEFAULT_D_MODEL, DEFAULT_N_HEADS};
use crate::model::{
    ActQuant, Init, LinearNorm, ModelConfig, Preset, QuantScope, WeightCentre, WeightScale, Weights,
};
use crate::optim::AdamW;
use crate::run::{
    ModelOverrides, RunConfig, DEFAULT_CHECKPOINT_EVERY, DEFAULT_DATA_SEED, DEFAULT_EPOCHS,
    DEFAULT_EVAL_EVERY, DEFAULT_FRAC, DEFAULT_P,
};
use crate::study::{ArmPlan, Design, StudyPlan};
use crate::sweep::axes::Setting;
use crate::sweep::{parse_seeds, Shard, SplitMode, SweepSpec};

#[derive(Parser)]
#[command(
    name = "bitgrok",
    version,
    about = "Train full-precision, binary and ternary transformers on \
modular addition in WGSL compute shaders, and take them apart"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
    /// List the wgpu adapters and mark the one bitgrok would use.
    Devices {
        #[arg(long)]
        adapter: Option<String>,
    },
    /// Train a model on (a + b) mod p.
    Train(TrainArgs),
    /// Conformance: the GPU engine against the CPU reference on this adapter (every switch
    /// combination), or against reference files.
    Check {
        /// Reference files in the test-vector format (see README) instead of the switch sweep.
        #[arg(long, num_args = 1..)]
        vectors: Vec<PathBuf>,
        #[arg(long)]
        adapter: Option<String>,
    },
    /// Interpretability analysis of a run: figures, analysis.json and report.md in RUN/analysis.
    Analyze {
        run: PathBuf,
        /// Checkpoint epoch (default: the newest).
        #[arg(long)]
        epoch: Option<usize>,
        #[arg(long)]
        adapter: Option<String>,
    },
    /// Several runs side by side, with a verdict on whether they learned the same algorithm.
    Compare {
        #[arg(required = true, num_args = 2..)]
        runs: Vec<PathBuf>,
        /// Output directory of compare.md and its figures.
        #[arg(long, default_value = "compare")]
        out: PathBuf,
        #[arg(long)]
        adapter: Option<String>,
    },
    /// The study end to end: train full-precision, ternary and binary models, analyse and
    /// compare them (a reduced configuration on CPU adapters unless --full).
    Reproduce {
        #[arg(long, default_value = "runs/reproduce")]
        out: PathBuf,
        /// Use the study's configuration (p = 113) even on a CPU adapter.
        #[arg(long)]
        full: bool,
        /// Overwrite existing runs in the output directory.
        #[arg(long)]
        force: bool,
        #[arg(long)]
        adapter: Option<String>,
    },
    /// Train a grid of models (weight precisions × activation quantisations × weight decays ×
    /// learning rates × seeds), each into OUT/NAME, with a row per model in OUT/sweep.csv.
    /// Running the same command again continues an interrupted sweep.
    Sweep(SweepArgs),
    /// Run a study design (arms, each a sweep) into OUT/arms/ARM and write its report,
    /// OUT/study.md with study.json and figures. Running the same command again continues it.
    Study(StudyArgs),
    /// Join the shard directories of one sweep (`sweep --shard I/N`) into OUT.
    SweepMerge {
        #[arg(required = true, num_args = 1..)]
        shards: Vec<PathBuf>,
        #[arg(long)]
        out: PathBuf,
    },
    /// Statistics per variant, figures and a verdict for a sweep, in DIR/report.
    SweepReport { dir: PathBuf },
    /// Time training epochs of each preset's seed configuration, at each weight precision, on
    /// this adapter.
    Bench {
        /// Weight precisions to time, comma-separated.
        #[arg(
            long,
            value_enum,
            value_delimiter = ',',
            default_value = "f32,binary,ternary"
        )]
        weights: Vec<Weights>,
        /// Numbers of models trained together (as a sweep does), comma-separated, e.g. 1,8,64.
        #[arg(long, value_delimiter = ',', default_value = "1",
              value_parser = clap::value_parser!(u64).range(1..))]
        models: Vec<u64>,
        #[arg(long, default_value_t = 113)]
        p: usize,
        /// d_model (d_head = d_model / 4, d_mlp = 4 d_model); default: the presets' 128.
        #[arg(long)]
        d_model: Option<usize>,
        /// Epochs timed per measurement.
        #[arg(long, default_value_t = 5)]
        epochs: usize,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
        /// Time every dispatch of the epoch alone instead (per preset, weight precision and
        /// number of models).
        #[arg(long)]
        kernels: bool,
        /// Workgroups a matrix product should occupy before its contraction is split (split-K
        /// on GPUs; 0 never splits). Default: the adapter's layout (512 on GPUs).
        #[arg(long)]
        split_target: Option<usize>,
        #[arg(long)]
        adapter: Option<String>,
    },
    /// A run's checkpoint as a TransformerLens HookedTransformer state dict (OUT) and its
    /// HookedTransformerConfig (OUT with extension .config.json).
    Export {
        run: PathBuf,
        /// Checkpoint epoch (default: the newest).
        #[arg(long)]
        epoch: Option<usize>,
        #[arg(long)]
        out: PathBuf,
    },
    /// A checkpoint trained elsewhere (TransformerLens or Nanda et al. 2023 layout) as a run
    /// directory for analyze and compare.
    Import {
        model: PathBuf,
        /// HookedTransformerConfig fields (JSON) to check the tensors against, and p, frac,
        /// data_seed or layout where the tensors cannot tell.
        #[arg(long)]
        config: Option<PathBuf>,
        #[arg(long)]
        out: PathBuf,
        /// Overwrite an existing run directory.
        #[arg(long)]
        force: bool,
    },
    /// Loss and accuracy of a run's checkpoint on its train and test sets.
    Eval {
        run: PathBuf,
        /// Checkpoint epoch (default: the newest).
        #[arg(long)]
        epoch: Option<usize>,
        #[arg(long)]
        adapter: Option<String>,
    },
}

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
    /// Stop N epochs after the run groks (test accuracy 99.9% held for 500 epochs), rounded up
    /// to a checkpoint.
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
    fn setting_lists(&self) -> Vec<Vec<Setting>> {
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
    fn single_settings(&self) -> Result<Vec<Setting>> {
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
    fn apply_schedule(&self, config: &mut RunConfig) {
        config.data_seed = self.data_seed;
        config.epochs = self.epochs.unwrap_or(DEFAULT_EPOCHS);
        config.eval_every = self.eval_every;
        config.checkpoint_every = self.checkpoint_every;
        config.stop_after_grok = self.stop_after_grok;
    }
}

#[derive(Args)]
pub struct TrainArgs {
    /// Architecture, initialisation and defaults; every switch below overrides it.
    #[arg(long, value_enum, default_value = "seed-bitnet")]
    pub preset: Preset,
    #[command(flatten)]
    pub model: ModelOptions,
    /// Seed of the parameter initialisation.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Weight quantisation of every Linear [preset: nanda f32, seed-bitnet ternary].
    #[arg(long, value_enum)]
    pub weights: Option<Weights>,
    /// Activation quantisation of every Linear input [preset: nanda none, seed-bitnet int8].
    #[arg(long, value_enum)]
    pub act_quant: Option<ActQuant>,
    #[arg(long, default_value_t = AdamW::default().lr, allow_hyphen_values = true)]
    pub lr: f64,
    #[arg(long, default_value_t = AdamW::default().weight_decay, allow_hyphen_values = true)]
    pub weight_decay: f64,
    /// Run directory.
    #[arg(long, required_unless_present = "resume")]
    pub out: Option<PathBuf>,
    /// Overwrite an existing run directory.
    #[arg(long)]
    pub force: bool,
    /// Continue the run in RUN_DIR from its newest checkpoint (only --epochs and --adapter may
    /// be given with it: everything else comes from the run's config.json).
    #[arg(long, value_name = "RUN_DIR", conflicts_with_all = RESUME_CONFLICTS)]
    pub resume: Option<PathBuf>,
    /// Adapter to use: a substring of its name (see `bitgrok devices`).
    #[arg(long)]
    pub adapter: Option<String>,
}

/// What a sweep trains: the preset, the shared options and the grid's axes (the options of a
/// study design's arm, too).
#[derive(Args)]
pub struct SweepGrid {
    /// Architecture and defaults, as for `train`.
    #[arg(long, value_enum, default_value = "seed-bitnet")]
    pub preset: Preset,
    #[command(flatten)]
    pub model: ModelOptions,
    /// per-seed: seeds move the train/test split too; fixed: they vary the initialisation alone.
    #[arg(long, value_enum, default_value = "per-seed")]
    pub split: SplitMode,
    /// Weight precisions, comma-separated [default: the preset's]. f32 models ignore
    /// --quantize, --weight-scale and --weight-centre.
    #[arg(long, value_enum, value_delimiter = ',')]
    pub weights: Vec<Weights>,
    /// Activation quantisations, comma-separated [default: the preset's].
    #[arg(long, value_enum, value_delimiter = ',')]
    pub act_quant: Vec<ActQuant>,
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "1",
        allow_hyphen_values = true
    )]
    pub weight_decay: Vec<f64>,
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "0.001",
        allow_hyphen_values = true
    )]
    pub lr: Vec<f64>,
    /// Seeds (initialisation and data split): ranges and lists, e.g. 0-15 or 0,3,7-9.
    #[arg(long, default_value = "0")]
    pub seeds: String,
}

#[derive(Args)]
pub struct SweepArgs {
    #[command(flatten)]
    pub grid: SweepGrid,
    /// Train only slice I of N of the grid (models I, I + N, I + 2N, ... in plan order), e.g.
    /// one Slurm array task each; join the slices with `sweep-merge`.
    #[arg(long, value_name = "I/N")]
    pub shard: Option<Shard>,
    /// Train at most K models at once (models of one shape share every dispatch) [default: as
    /// many as a GPU's buffer limits allow; one on a CPU adapter].
    #[arg(long, value_name = "K", value_parser = clap::value_parser!(u64).range(1..))]
    pub together: Option<u64>,
    #[arg(long)]
    pub out: PathBuf,
    /// Retrain models whose run directories exist, and replace another sweep in OUT.
    #[arg(long)]
    pub force: bool,
    /// Keep of each finished model its analysed and last checkpoints only, and no analysis
    /// figures (analysis.json, report.md and metrics.csv stay).
    #[arg(long)]
    pub compact: bool,
    #[arg(long)]
    pub adapter: Option<String>,
}

#[derive(Args)]
pub struct StudyArgs {
    /// The design: a TOML file of arms, each a sweep (see studies/quantisation.toml).
    pub design: PathBuf,
    #[arg(long)]
    pub out: PathBuf,
    /// The design's reduced size (its [reduced] options), for CPU adapters.
    #[arg(long)]
    pub reduced: bool,
    /// Train only these arms now (comma-separated names), e.g. to spread a study over several
    /// machines or sessions; the report covers every arm trained so far.
    #[arg(long, value_delimiter = ',')]
    pub arms: Vec<String>,
    /// Train at most K models at once, as for `sweep`.
    #[arg(long, value_name = "K", value_parser = clap::value_parser!(u64).range(1..))]
    pub together: Option<u64>,
    /// Retrain existing models, and replace another study in OUT.
    #[arg(long)]
    pub force: bool,
    /// Keep every checkpoint and analysis figure of each model (by default a study keeps its
    /// analysed and last checkpoints and analysis.json, as `sweep --compact`).
    #[arg(long)]
    pub keep_checkpoints: bool,
    #[arg(long)]
    pub adapter: Option<String>,
}

/// An arm's options parsed as `sweep` would parse them.
#[derive(Parser)]
#[command(name = "arm", no_binary_name = true)]
struct ArmOptions {
    #[command(flatten)]
    grid: SweepGrid,
}

impl StudyArgs {
    /// Every arm's sweep, each validated, from the design file.
    pub fn plan(&self) -> Result<StudyPlan> {
        let design = Design::read(&self.design)?;
        let mut arms = Vec::new();
        for arm in &design.arms {
            let args = design.arm_args(arm, self.reduced)?;
            let parsed = ArmOptions::try_parse_from(&args).map_err(|e| {
                let text = e.to_string();
                let first = text.lines().next().unwrap_or_default();
                UsageError(format!(
                    "{}: arm {:?}: {}",
                    self.design.display(),
                    arm.name,
                    first.trim_start_matches("error: ")
                ))
            })?;
            let spec = parsed.grid.spec().map_err(|e| {
                UsageError(format!(
                    "{}: arm {:?}: {e:#}",
                    self.design.display(),
                    arm.name
                ))
            })?;
            arms.push(ArmPlan {
                name: arm.name.clone(),
                question: arm.question.clone(),
                options: args.join(" "),
                spec,
            });
        }
        for name in &self.arms {
            if !arms.iter().any(|a| &a.name == name) {
                crate::usage_bail!(
                    "--arms {name}: {} has no such arm (it has {})",
                    self.design.display(),
                    arms.iter()
                        .map(|a| a.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                );
            }
        }
        Ok(StudyPlan {
            title: design.title,
            question: design.question,
            reduced: self.reduced,
            arms,
        })
    }
}

/// `values`, or the preset's `default` when none were given.
fn or_preset<T: Clone>(values: &[T], default: T) -> Vec<T> {
    if values.is_empty() {
        vec![default]
    } else {
        values.to_vec()
    }
}

impl SweepGrid {
    /// The sweep's specification, every model's configuration validated.
    pub fn spec(&self) -> Result<SweepSpec> {
        let m = &self.model;
        let preset = ModelConfig::preset(self.preset, m.p[0]);
        let seeds = parse_seeds(&self.seeds).map_err(|e| UsageError(format!("--seeds {e}")))?;
        let mut overrides = ModelOverrides::default();
        let mut axes = Vec::new();
        for list in m.setting_lists() {
            match list.as_slice() {
                [] => {}
                [one] => {
                    one.record(&mut overrides);
                }
                _ => axes.push(list),
            }
        }
        let mut schedule = RunConfig::preset(self.preset);
        m.apply_schedule(&mut schedule);
        let spec = SweepSpec {
            preset: self.preset,
            p: m.p[0],
            frac: m.frac[0],
            d_model: m.d_model[0],
            n_heads: m.n_heads[0],
            d_head: m.d_head[0],
            d_mlp: m.d_mlp[0],
            epochs: schedule.epochs,
            eval_every: schedule.eval_every,
            checkpoint_every: schedule.checkpoint_every,
            stop_after_grok: schedule.stop_after_grok,
            data_seed: schedule.data_seed,
            split: self.split,
            overrides,
            axes,
            weights: or_preset(&self.weights, preset.weights),
            act_quant: or_preset(&self.act_quant, preset.act_quant),
            weight_decay: self.weight_decay.clone(),
            lr: self.lr.clone(),
            seeds,
        };
        let plan = spec.plan()?;
        let mut names: Vec<&str> = plan.iter().map(|(s, _)| s.name.as_str()).collect();
        names.sort_unstable();
        if let Some(w) = names.windows(2).find(|w| w[0] == w[1]) {
            crate::usage_bail!(
                "a setting is listed twice: two models would be named {}",
                w[0]
            );
        }
        Ok(spec)
    }
}

/// Options that a resumed run takes from its config.json instead.
const RESUME_CONFLICTS: [&str; 29] = [
    "preset",
    "p",
    "frac",
    "data_seed",
    "seed",
    "d_model",
    "n_heads",
    "d_head",
    "d_mlp",
    "weights",
    "quantize",
    "weight_scale",
    "weight_centre",
    "init",
    "act_quant",
    "linear_norm",
    "pos_embed",
    "no_pos_embed",
    "causal",
    "no_causal",
    "final_norm",
    "no_final_norm",
    "lr",
    "weight_decay",
    "eval_every",
    "checkpoint_every",
    "stop_after_grok",
    "out",
    "force",
];

impl TrainArgs {
    /// The run configuration, validated before any GPU work (a [`crate::error::UsageError`]
    /// naming the option, the value and what is allowed).
    pub fn run_config(&self) -> Result<RunConfig> {
        let mut config = RunConfig::preset(self.preset);
        let m = &mut config.model;
        m.weights = self.weights.unwrap_or(m.weights);
        m.act_quant = self.act_quant.unwrap_or(m.act_quant);
        for setting in self.model.single_settings()? {
            setting.apply(&mut config);
        }
        self.model.apply_schedule(&mut config);
        config.seed = self.seed;
        config.adamw.lr = self.lr;
        config.adamw.weight_decay = self.weight_decay;
        config.validate()?;
        Ok(config)
    }
}
