//! A run directory: `config.json`, `split.json`, `metrics.csv`, `checkpoints/epoch_NNNNN.safetensors`.
//! Every whole file is written atomically (temporary file, fsync, rename).

use std::collections::HashMap;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use crate::engine::{EpochMetrics, OptimizerState};
use crate::error::UsageError;
use crate::model::{params, ModelConfig, Params, Preset};
use crate::optim::AdamW;
use crate::task::Split;
use crate::usage_bail;

/// Everything needed to reproduce a run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunConfig {
    pub preset: Preset,
    pub model: ModelConfig,
    pub frac: f64,
    pub data_seed: u64,
    pub seed: u64,
    pub adamw: AdamW,
    pub epochs: usize,
    pub eval_every: usize,
    pub checkpoint_every: usize,
    pub stop_after_grok: Option<usize>,
    /// Filled in when the run starts.
    #[serde(default)]
    pub crate_version: String,
    #[serde(default)]
    pub adapter: String,
    /// For a run made by `bitgrok import`: where the model came from and what was assumed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub imported_from: Option<String>,
}

impl RunConfig {
    /// Checks every setting before any GPU work: a [`UsageError`] naming the option, the value
    /// and what is allowed.
    pub fn validate(&self) -> Result<()> {
        if let Err(e) = self.model.validate() {
            usage_bail!("{e}");
        }
        let p = self.model.p;
        if !(self.frac > 0.0 && self.frac < 1.0) {
            usage_bail!("--frac {}: must be strictly between 0 and 1", self.frac);
        }
        let n_train = Split::train_size(p, self.frac);
        if n_train == 0 || n_train == p * p {
            usage_bail!(
                "--frac {}: leaves an empty train or test set at p = {p} ({n_train} of {} pairs for training)",
                self.frac,
                p * p
            );
        }
        for (name, value) in [
            ("epochs", self.epochs),
            ("eval-every", self.eval_every),
            ("checkpoint-every", self.checkpoint_every),
        ] {
            if value == 0 {
                usage_bail!("--{name} 0: must be at least 1");
            }
        }
        let a = &self.adamw;
        if !(a.lr > 0.0 && a.lr.is_finite()) {
            usage_bail!("--lr {}: must be a positive number", a.lr);
        }
        if !(a.weight_decay >= 0.0 && a.weight_decay.is_finite()) {
            usage_bail!(
                "--weight-decay {}: must be a non-negative number",
                a.weight_decay
            );
        }
        let betas_ok = a.betas.iter().all(|b| (0.0..1.0).contains(b));
        if !(betas_ok && a.eps > 0.0 && a.eps.is_finite()) {
            usage_bail!(
                "AdamW betas {:?} and eps {}: betas must lie in [0, 1) and eps be positive",
                a.betas,
                a.eps
            );
        }
        Ok(())
    }
}

pub use crate::phases::GROK_ACCURACY;

pub struct RunDir {
    pub root: PathBuf,
}

pub const METRICS_HEADER: &str =
    "epoch,train_loss,test_loss,train_acc,test_acc,test_acc_transpose_seen,test_acc_transpose_unseen";

/// Suffix of the temporary files [`write_atomic`] renames into place.
const TEMPORARY_SUFFIX: &str = ".tmp";

/// Writes `bytes` to `path` so that a crash at any instant leaves either the old file or the new
/// one: a hidden temporary file beside it, fsync, rename, fsync of the directory (which makes the
/// rename itself durable).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let name = path
        .file_name()
        .with_context(|| format!("{} is not a file path", path.display()))?;
    let tmp = path.with_file_name(format!(".{}{TEMPORARY_SUFFIX}", name.to_string_lossy()));
    let mut f = fs::File::create(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
    f.write_all(bytes)
        .and_then(|()| f.sync_all())
        .with_context(|| format!("writing {}", tmp.display()))?;
    fs::rename(&tmp, path)
        .with_context(|| format!("renaming {} to {}", tmp.display(), path.display()))?;
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .with_context(|| format!("syncing {}", dir.display()))?;
    Ok(())
}

/// Where a resumed run continues: the newest checkpoint with the optimiser's state.
pub struct ResumePoint {
    pub epoch: usize,
    pub params: Params,
    pub optimizer: OptimizerState,
}

const MOMENT1_PREFIX: &str = "adamw.exp_avg.";
const MOMENT2_PREFIX: &str = "adamw.exp_avg_sq.";

impl RunDir {
    /// Creates a new run directory; refuses an existing run unless `force`.
    pub fn create(root: &Path, force: bool) -> Result<RunDir> {
        let dir = RunDir {
            root: root.to_path_buf(),
        };
        if dir.config_path().exists() && !force {
            usage_bail!(
                "{} already holds a run; choose another --out or pass --force to overwrite it",
                root.display()
            );
        }
        if force && dir.checkpoint_dir().exists() {
            fs::remove_dir_all(dir.checkpoint_dir())?;
        }
        fs::create_dir_all(dir.checkpoint_dir())
            .with_context(|| format!("creating {}", root.display()))?;
        Ok(dir)
    }

    pub fn open(root: &Path) -> Result<RunDir> {
        let dir = RunDir {
            root: root.to_path_buf(),
        };
        if !dir.config_path().exists() {
            usage_bail!("{} is not a run directory (no config.json)", root.display());
        }
        Ok(dir)
    }

    pub fn config_path(&self) -> PathBuf {
        self.root.join("config.json")
    }

    pub fn metrics_path(&self) -> PathBuf {
        self.root.join("metrics.csv")
    }

    pub fn checkpoint_dir(&self) -> PathBuf {
        self.root.join("checkpoints")
    }

    /// The newest checkpoint with the optimiser state, overwritten at every checkpoint.
    pub fn resume_path(&self) -> PathBuf {
        self.root.join("resume.safetensors")
    }

    pub fn checkpoint_path(&self, epoch: usize) -> PathBuf {
        self.checkpoint_dir()
            .join(format!("epoch_{epoch:05}.safetensors"))
    }

    pub fn write_config(&self, config: &RunConfig) -> Result<()> {
        write_atomic(
            &self.config_path(),
            serde_json::to_string_pretty(config)?.as_bytes(),
        )
    }

    /// Reads and validates `config.json`.
    pub fn read_config(&self) -> Result<RunConfig> {
        let path = self.config_path();
        let text =
            fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
        let config: RunConfig = serde_json::from_str(&text).map_err(|e| {
            UsageError(format!("{} is not a valid run config: {e}", path.display()))
        })?;
        config
            .validate()
            .with_context(|| format!("{} holds an invalid run config", path.display()))?;
        Ok(config)
    }

    pub fn write_split(&self, split: &Split) -> Result<()> {
        write_atomic(
            &self.root.join("split.json"),
            serde_json::to_string(split)?.as_bytes(),
        )
    }

    pub fn write_metrics(&self, rows: &[EpochMetrics]) -> Result<()> {
        let mut csv = String::from(METRICS_HEADER);
        csv.push('\n');
        for m in rows {
            csv.push_str(&format!(
                "{},{:e},{:e},{},{},{},{}\n",
                m.epoch,
                m.train_loss,
                m.test_loss,
                m.train_acc,
                m.test_acc,
                m.test_acc_transpose_seen,
                m.test_acc_transpose_unseen
            ));
        }
        write_atomic(&self.metrics_path(), csv.as_bytes())
    }

    /// Saves parameters in TransformerLens names, with the model config and epoch in the header.
    pub fn write_checkpoint(&self, epoch: usize, params: &Params) -> Result<()> {
        let metadata = HashMap::from([
            ("config".to_string(), serde_json::to_string(&params.config)?),
            ("epoch".to_string(), epoch.to_string()),
            (
                "format".to_string(),
                "bitgrok checkpoint: latent parameters, TransformerLens names".to_string(),
            ),
        ]);
        let bytes = params.to_safetensors_bytes("", Some(metadata))?;
        write_atomic(&self.checkpoint_path(epoch), &bytes)
    }

    /// Saves what [`Self::read_resume_point`] reads: parameters, AdamW moments and step.
    pub fn write_resume_point(&self, point: &ResumePoint) -> Result<()> {
        let metadata = HashMap::from([
            (
                "config".to_string(),
                serde_json::to_string(&point.params.config)?,
            ),
            ("epoch".to_string(), point.epoch.to_string()),
            ("step".to_string(), point.optimizer.step.to_string()),
            (
                "format".to_string(),
                "bitgrok resume point: latent parameters and AdamW state".to_string(),
            ),
        ]);
        let o = &point.optimizer;
        let parts = [
            ("", &point.params),
            (MOMENT1_PREFIX, &o.m),
            (MOMENT2_PREFIX, &o.v),
        ];
        write_atomic(
            &self.resume_path(),
            &params::serialize(&parts, Some(metadata))?,
        )
    }

    /// The resume point, or None when the run stopped before its first one was written.
    pub fn read_resume_point(&self, config: &ModelConfig) -> Result<Option<ResumePoint>> {
        let path = self.resume_path();
        if !path.exists() {
            return Ok(None);
        }
        let bytes = fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
        let read = || -> Result<ResumePoint> {
            let st = safetensors::SafeTensors::deserialize(&bytes)?;
            let (_, header) = safetensors::SafeTensors::read_metadata(&bytes)?;
            let meta = header
                .metadata()
                .as_ref()
                .context("the header has no metadata")?;
            let number = |key: &str| -> Result<u64> {
                meta.get(key)
                    .and_then(|v| v.parse().ok())
                    .with_context(|| format!("metadata {key:?} is missing or not a number"))
            };
            let step = u32::try_from(number("step")?).context("metadata \"step\" is too large")?;
            Ok(ResumePoint {
                epoch: number("epoch")? as usize,
                params: Params::from_safetensors(config, &st, "")?,
                optimizer: OptimizerState {
                    step,
                    m: Params::from_safetensors(config, &st, MOMENT1_PREFIX)?,
                    v: Params::from_safetensors(config, &st, MOMENT2_PREFIX)?,
                },
            })
        };
        read()
            .map(Some)
            .with_context(|| format!("{} is not a valid resume point", path.display()))
    }

    /// Removes temporary files a killed process left behind.
    pub fn remove_temporaries(&self) -> Result<()> {
        for dir in [self.root.clone(), self.checkpoint_dir()] {
            let Ok(entries) = fs::read_dir(&dir) else {
                continue;
            };
            for entry in entries {
                let path = entry?.path();
                let name = path.file_name().unwrap_or_default().to_string_lossy();
                if name.starts_with('.') && name.ends_with(TEMPORARY_SUFFIX) {
                    fs::remove_file(&path)
                        .with_context(|| format!("removing {}", path.display()))?;
                }
            }
        }
        Ok(())
    }

    /// Epochs with a checkpoint, ascending.
    pub fn checkpoint_epochs(&self) -> Result<Vec<usize>> {
        let mut epochs = Vec::new();
        for entry in fs::read_dir(self.checkpoint_dir())? {
            let name = entry?.file_name();
            let name = name.to_string_lossy();
            if let Some(num) = name
                .strip_prefix("epoch_")
                .and_then(|s| s.strip_suffix(".safetensors"))
            {
                if let Ok(e) = num.parse() {
                    epochs.push(e);
                }
            }
        }
        epochs.sort();
        Ok(epochs)
    }

    /// Loads the checkpoint of `epoch`, or the newest one.
    pub fn load_checkpoint(
        &self,
        config: &ModelConfig,
        epoch: Option<usize>,
    ) -> Result<(usize, Params)> {
        let epochs = self.checkpoint_epochs()?;
        let epoch = match epoch {
            Some(e) if epochs.contains(&e) => e,
            Some(e) => usage_bail!(
                "no checkpoint for epoch {e} in {} (have {:?})",
                self.root.display(),
                epochs
            ),
            None => *epochs
                .last()
                .with_context(|| format!("{} has no checkpoints", self.root.display()))?,
        };
        Ok((epoch, Params::load(config, &self.checkpoint_path(epoch))?))
    }
}
