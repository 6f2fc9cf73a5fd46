//! A run directory: `config.json`, `split.json`, `metrics.csv`, `checkpoints/epoch_NNNNN.safetensors`.
//! Every whole file is written atomically (temporary file, fsync, rename).

use std::collections::HashMap;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

use crate::engine::EpochMetrics;
use crate::model::{ModelConfig, Params, Preset};
use crate::optim::AdamW;
use crate::task::Split;

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
}

/// Test accuracy at which a run counts as generalised.
pub const GROK_ACCURACY: f32 = 0.999;

pub struct RunDir {
    pub root: PathBuf,
}

pub const METRICS_HEADER: &str =
    "epoch,train_loss,test_loss,train_acc,test_acc,test_acc_transpose_seen,test_acc_transpose_unseen";

/// Writes `bytes` to `path` so that a crash leaves either the old file or the new one.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = path.with_extension("tmp");
    let mut f = fs::File::create(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
    f.write_all(bytes)?;
    f.sync_all()?;
    fs::rename(&tmp, path)
        .with_context(|| format!("renaming {} to {}", tmp.display(), path.display()))?;
    Ok(())
}

impl RunDir {
    /// Creates a new run directory; refuses an existing run unless `force`.
    pub fn create(root: &Path, force: bool) -> Result<RunDir> {
        let dir = RunDir {
            root: root.to_path_buf(),
        };
        if dir.config_path().exists() && !force {
            bail!(
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
            bail!("{} is not a run directory (no config.json)", root.display());
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

    pub fn read_config(&self) -> Result<RunConfig> {
        let text = fs::read_to_string(self.config_path())?;
        serde_json::from_str(&text)
            .with_context(|| format!("parsing {}", self.config_path().display()))
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
            Some(e) => bail!(
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
