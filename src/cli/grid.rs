//! What `sweep` and `study` train: a sweep's grid, and a study design's arms parsed as grids.

use std::path::PathBuf;

use anyhow::Result;
use clap::{Args, Parser};

use super::{DeviceOptions, ModelOptions};
use crate::error::UsageError;
use crate::model::{ActQuant, ModelConfig, Preset, Weights};
use crate::run::RunConfig;
use crate::study::{ArmPlan, Design, StudyPlan};
use crate::sweep::axes::ModelOverrides;
use crate::sweep::{parse_seeds, Shard, SplitMode, SweepSpec};

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
    #[command(flatten)]
    pub device: DeviceOptions,
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
    #[command(flatten)]
    pub device: DeviceOptions,
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
