//! A run directory: `config.json`, `split.json`, `metrics.csv`, `checkpoints/epoch_NNNNN.safetensors`.
//! Every whole file is written atomically (temporary file, fsync, rename).

use std::collections::HashMap;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

use crate::bounded_read;
use crate::error::UsageError;
use crate::metrics::{self, EpochMetrics};
use crate::model::{params, ModelConfig, Params, Preset};
use crate::optim::{AdamW, OptimizerState};
use crate::run_lock::{DirLock, LOCK_NAME};
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

/// The study's modulus, training fraction and split seed (Nanda et al.), every run's default.
pub const DEFAULT_P: usize = 113;
pub const DEFAULT_FRAC: f64 = 0.3;
pub const DEFAULT_DATA_SEED: u64 = 598;
/// Default epoch budget of a new run.
pub const DEFAULT_EPOCHS: usize = 25_000;
pub const DEFAULT_EVAL_EVERY: usize = 1;
pub const DEFAULT_CHECKPOINT_EVERY: usize = 100;

impl RunConfig {
    /// A preset's run with every default: its architecture at the default widths and modulus,
    /// 30% of the pairs split with data seed 598, seed 0, AdamW's defaults, 25,000 epochs, a test
    /// evaluation every epoch and a checkpoint every 100.
    pub fn preset(preset: Preset) -> RunConfig {
        RunConfig {
            preset,
            model: ModelConfig::preset(preset, DEFAULT_P),
            frac: DEFAULT_FRAC,
            data_seed: DEFAULT_DATA_SEED,
            seed: 0,
            adamw: AdamW::default(),
            epochs: DEFAULT_EPOCHS,
            eval_every: DEFAULT_EVAL_EVERY,
            checkpoint_every: DEFAULT_CHECKPOINT_EVERY,
            stop_after_grok: None,
            crate_version: String::new(),
            adapter: String::new(),
            imported_from: None,
        }
    }

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
        // The GPU computes in f32: a smaller rate would be a rate of zero, or lose precision.
        if a.lr < f32::MIN_POSITIVE as f64 || a.lr > f32::MAX as f64 {
            usage_bail!(
                "--lr {:e}: must lie between {:e} and {:e}, the normal range of the f32 the GPU \
                 trains in",
                a.lr,
                f32::MIN_POSITIVE,
                f32::MAX
            );
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

pub struct RunDir {
    pub root: PathBuf,
    /// Held by a process that writes the run (see [`crate::run_lock`]), until it is dropped.
    _lock: Option<DirLock>,
}

/// Suffix of the temporary files [`write_atomic`] renames into place.
pub(crate) const TEMPORARY_SUFFIX: &str = ".tmp";

/// Writes `bytes` to `path` so that a crash at any instant leaves either the old file or the new
/// one: a hidden temporary file beside it, fsync, rename, fsync of the directory (which makes the
/// rename itself durable). The temporary name is unique to the writing process and call, so
/// two writers never share one.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    static WRITES: AtomicU64 = AtomicU64::new(0);
    let name = path
        .file_name()
        .with_context(|| format!("{} is not a file path", path.display()))?;
    let tmp = path.with_file_name(format!(
        ".{}.{}.{}{TEMPORARY_SUFFIX}",
        name.to_string_lossy(),
        std::process::id(),
        WRITES.fetch_add(1, Ordering::Relaxed)
    ));
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

const RESUME_FILE: &str = "resume.safetensors";

/// What a run directory holds besides its checkpoints and resume point, in the order `--force`
/// removes them after those two: `config.json`, what makes a directory a run, goes last, so
/// that a replacement interrupted half-way never pairs a new config with old training state.
const RUN_FILES: [&str; 4] = ["metrics.csv", "split.json", "analysis", "config.json"];

impl RunDir {
    /// Whether `root` holds a run (a `config.json`).
    pub fn is_run(root: &Path) -> bool {
        root.join("config.json").is_file()
    }

    /// Refuses, before any GPU work, an `--out` that [`Self::create`] would refuse.
    pub fn check_new(root: &Path, force: bool) -> Result<()> {
        crate::out_dir::check(root, "run", Self::is_run, force)
    }

    /// Creates a new run directory and locks it; refuses an existing run unless `force` (then
    /// removes the run's own files, never others) and any other non-empty directory.
    pub fn create(root: &Path, force: bool) -> Result<RunDir> {
        Self::check_new(root, force)?;
        fs::create_dir_all(root).with_context(|| format!("creating {}", root.display()))?;
        let lock = DirLock::acquire(root)?;
        // Again under the lock: another process may have written here in the meantime.
        Self::check_new(root, force)?;
        let dir = RunDir {
            root: root.to_path_buf(),
            _lock: Some(lock),
        };
        if Self::is_run(root) {
            dir.remove_run_files()?;
        }
        fs::create_dir_all(dir.checkpoint_dir())
            .with_context(|| format!("creating {}", root.display()))?;
        Ok(dir)
    }

    /// Removes what bitgrok writes into a run directory (checkpoints by their names, the
    /// analysis directory's files), leaving anything else where it is.
    fn remove_run_files(&self) -> Result<()> {
        let remove_file = |path: &Path| match fs::remove_file(path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                Err(e).with_context(|| format!("removing {}", path.display()))
            }
            _ => Ok(()),
        };
        remove_file(&self.resume_path())?;
        let checkpoints = self.checkpoint_dir();
        if checkpoints.is_dir() {
            for epoch in self.checkpoint_epochs()? {
                remove_file(&self.checkpoint_path(epoch))?;
            }
            let _ = fs::remove_dir(&checkpoints); // kept if it holds other files
        }
        for name in RUN_FILES {
            let path = self.root.join(name);
            if name == "analysis" {
                let Ok(entries) = fs::read_dir(&path) else {
                    continue;
                };
                for entry in entries {
                    let entry = entry?;
                    if entry.file_type()?.is_file() {
                        remove_file(&entry.path())?;
                    }
                }
                let _ = fs::remove_dir(&path);
            } else {
                remove_file(&path)?;
            }
        }
        Ok(())
    }

    /// Whether `path` is (or would be) one of the files bitgrok keeps in this run directory:
    /// its top-level files, anything under `checkpoints/` or `analysis/`, the lock.
    pub fn owns(&self, path: &Path) -> bool {
        let resolve = |p: &Path| -> Option<PathBuf> {
            let parent = match p.parent() {
                Some(d) if !d.as_os_str().is_empty() => d,
                _ => Path::new("."),
            };
            Some(fs::canonicalize(parent).ok()?.join(p.file_name()?))
        };
        let (Ok(root), Some(path)) = (fs::canonicalize(&self.root), resolve(path)) else {
            return false;
        };
        let Ok(relative) = path.strip_prefix(&root) else {
            return false;
        };
        let mut components = relative.components();
        let first = components
            .next()
            .map(|c| c.as_os_str().to_string_lossy().into_owned());
        match first.as_deref() {
            Some("checkpoints" | "analysis") => true,
            Some(name) => {
                components.next().is_none()
                    && (name == RESUME_FILE || name == LOCK_NAME || RUN_FILES.contains(&name))
            }
            None => false,
        }
    }

    /// Opens a run to read it.
    pub fn open(root: &Path) -> Result<RunDir> {
        let dir = RunDir {
            root: root.to_path_buf(),
            _lock: None,
        };
        if !dir.config_path().exists() {
            usage_bail!("{} is not a run directory (no config.json)", root.display());
        }
        Ok(dir)
    }

    /// Opens a run to write it: refused while another process writes it.
    pub fn open_for_writing(root: &Path) -> Result<RunDir> {
        let mut dir = Self::open(root)?;
        dir._lock = Some(DirLock::acquire(root)?);
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
        self.root.join(RESUME_FILE)
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

    /// Reads and validates `config.json`, and checks it against `split.json` when there is one.
    pub fn read_config(&self) -> Result<RunConfig> {
        let path = self.config_path();
        let text = bounded_read::read_to_string(&path, bounded_read::SMALL_JSON, "a run config")?;
        let config: RunConfig = serde_json::from_str(&text).map_err(|e| {
            UsageError(format!("{} is not a valid run config: {e}", path.display()))
        })?;
        config
            .validate()
            .with_context(|| format!("{} holds an invalid run config", path.display()))?;
        self.check_split(&config)?;
        Ok(config)
    }

    fn split_path(&self) -> PathBuf {
        self.root.join("split.json")
    }

    /// `split.json`, when present, must be the split `config.json` implies: an edited `frac` or
    /// data seed would otherwise silently change what the checkpoints are evaluated on.
    fn check_split(&self, config: &RunConfig) -> Result<()> {
        let path = self.split_path();
        if !path.exists() {
            return Ok(());
        }
        let p = config.model.p as u64;
        // Each pair index takes at most 11 characters with its comma.
        let max = 12 * p * p + 4096;
        let text = bounded_read::read_to_string(&path, max, "the split of this run")?;
        let stored: Split = serde_json::from_str(&text)
            .with_context(|| format!("{} is not a valid split", path.display()))?;
        let settings = |s: &Split| (s.p, s.frac, s.data_seed);
        let implied = (config.model.p, config.frac, config.data_seed);
        if settings(&stored) != implied {
            bail!(
                "{} was made with p = {}, frac = {}, data seed {} but {} says p = {}, frac = {}, \
                 data seed {}: config.json was changed after the run was made",
                path.display(),
                stored.p,
                stored.frac,
                stored.data_seed,
                self.config_path().display(),
                implied.0,
                implied.1,
                implied.2
            );
        }
        if stored != Split::new(implied.0, implied.1, implied.2) {
            bail!(
                "{} does not hold the split its p, frac and data seed imply",
                path.display()
            );
        }
        Ok(())
    }

    pub fn write_split(&self, split: &Split) -> Result<()> {
        write_atomic(&self.split_path(), serde_json::to_string(split)?.as_bytes())
    }

    pub fn write_metrics(&self, rows: &[EpochMetrics]) -> Result<()> {
        write_atomic(&self.metrics_path(), metrics::csv(rows).as_bytes())
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
        let bytes = params::serialize_with_checksum(&[("", params)], metadata)?;
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
            &params::serialize_with_checksum(&parts, metadata)?,
        )
    }

    /// The resume point, or None when the run stopped before its first one was written.
    pub fn read_resume_point(&self, config: &ModelConfig) -> Result<Option<ResumePoint>> {
        let path = self.resume_path();
        if !path.exists() {
            return Ok(None);
        }
        let read = || -> Result<ResumePoint> {
            let bytes = params::map_checked(&path, config, 3)?;
            let st = safetensors::SafeTensors::deserialize(&bytes)?;
            let (_, header) = safetensors::SafeTensors::read_metadata(&bytes)?;
            let meta = header
                .metadata()
                .as_ref()
                .context("the header has no metadata")?;
            check_header_config(meta, config)?;
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
        let dir = self.checkpoint_dir();
        let entries = fs::read_dir(&dir).with_context(|| format!("reading {}", dir.display()))?;
        for entry in entries {
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
        let path = self.checkpoint_path(epoch);
        let load = || -> Result<Params> {
            let bytes = params::map_checked(&path, config, 1)?;
            let (_, header) = safetensors::SafeTensors::read_metadata(&bytes)?;
            if let Some(meta) = header.metadata() {
                check_header_config(meta, config)?;
            }
            let st = safetensors::SafeTensors::deserialize(&bytes)?;
            Params::from_safetensors(config, &st, "")
        };
        let params =
            load().with_context(|| format!("loading parameters from {}", path.display()))?;
        Ok((epoch, params))
    }
}

/// The model config a checkpoint or resume point was written with (its `config` metadata,
/// when it has one) must be the run's: an edited config.json would otherwise silently give the
/// parameters another meaning.
fn check_header_config(meta: &HashMap<String, String>, config: &ModelConfig) -> Result<()> {
    let Some(text) = meta.get("config") else {
        return Ok(());
    };
    let stored: ModelConfig =
        serde_json::from_str(text).context("its \"config\" metadata is not a model config")?;
    if stored == *config {
        return Ok(());
    }
    let (stored, expected) = (
        serde_json::to_value(&stored)?,
        serde_json::to_value(config)?,
    );
    let differences: Vec<String> = expected
        .as_object()
        .into_iter()
        .flatten()
        .filter(|(key, value)| stored.get(key.as_str()) != Some(value))
        .map(|(key, value)| {
            let was = stored
                .get(key.as_str())
                .map_or("nothing".into(), |v| v.to_string());
            format!("{key} {was} here, {value} in config.json")
        })
        .collect();
    bail!(
        "it was written for another model than config.json describes ({}): config.json was \
         changed after the run was made",
        differences.join(", ")
    )
}
