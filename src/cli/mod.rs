//! Command-line interface: the commands (here), the options `train` and `sweep` share
//! ([`options`]), and the grids of `sweep` and `study` ([`grid`]).

mod grid;
mod options;

use std::path::PathBuf;

use anyhow::Result;
use clap::{Args, Parser, Subcommand};

use crate::model::{ActQuant, Preset, Weights};
use crate::optim::AdamW;
use crate::run::RunConfig;

pub use grid::{StudyArgs, SweepArgs, SweepGrid};
pub use options::{DeviceOptions, ModelOptions};

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
        #[command(flatten)]
        device: DeviceOptions,
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
    /// Write a study's report again from DIR/study_plan.json and the arms' sweep.json alone
    /// (no adapter needed), e.g. once arms trained on other machines are brought together.
    StudyReport { dir: PathBuf },
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
        #[command(flatten)]
        device: DeviceOptions,
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
    #[command(flatten)]
    pub device: DeviceOptions,
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
