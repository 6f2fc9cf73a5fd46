//! A cached `analysis/analysis.json` is tied to what it analysed: the checkpoint's epoch and the
//! digests of that checkpoint, of the run config and of the metrics. `compare` and `sweep` use
//! it only while all of them still describe the run's state (and the checkpoint is the one
//! `analyze` takes by default), and analyse again otherwise
//! (after a resume, a `--force` retrain, an edit).

use std::path::Path;

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use super::Summary;
use crate::bounded_read;
use crate::checksum::digest;
use crate::engine::device::Gpu;
use crate::metrics;
use crate::model::params;
use crate::run::{RunConfig, RunDir};

/// The version of the analysis's rules and measures: a cache of another version is analysed
/// again. 1: the generalisation rule of [`crate::metrics::Generalisation`] (before it, 99.9%
/// of the test pairs at every size) and the neurons' readout; 2: the algorithm level's
/// ablations of a model that quantises its embedding or unembedding edit, and unembed with,
/// the quantised matrices; 3: every frequency's embedding ablation.
const ANALYSIS_VERSION: u32 = 3;

/// What an analysis read (`analysis.json`'s `analysed`), and by which version of the analysis.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AnalysedFiles {
    /// 0 for an analysis written before versions were recorded.
    #[serde(default)]
    pub version: u32,
    pub epoch: usize,
    pub checkpoint: String,
    pub config: String,
    pub metrics: String,
}

impl AnalysedFiles {
    /// The digests of the run's checkpoint of `epoch`, its config (as parsed) and its metrics.
    pub fn of(dir: &RunDir, config: &RunConfig, epoch: usize) -> Result<Self> {
        let checkpoint = params::map_checked(&dir.checkpoint_path(epoch), &config.model, 1)?;
        let metrics_path = dir.metrics_path();
        let metrics = if metrics_path.exists() {
            digest(&bounded_read::read(
                &metrics_path,
                metrics::max_len(config.epochs),
                "the metrics of this run",
            )?)
        } else {
            String::new()
        };
        Ok(AnalysedFiles {
            version: ANALYSIS_VERSION,
            epoch,
            checkpoint: digest(&checkpoint),
            config: digest(serde_json::to_string(config)?.as_bytes()),
            metrics,
        })
    }
}

/// The analysis of the run's default checkpoint: `analysis/analysis.json` when it was made from
/// the run's files as they are now, else analysed afresh. Either way the numbers are the ones
/// read back from the file, so a row made now equals a row made from the cache later.
/// `progress` shows the analysis's progress bar.
pub fn load_or_analyze(gpu: &Gpu, run: &Path, progress: bool) -> Result<Summary> {
    let mut summary = match fresh(run)? {
        Some(summary) => summary,
        None => {
            super::analyze(gpu, run, None, progress)?;
            let summary = read(run)?.context("analyze wrote no analysis.json")?;
            summary.with_context(|| format!("parsing {}", path(run).display()))?
        }
    };
    // The run may have moved since it was analysed.
    summary.run = run.to_path_buf();
    Ok(summary)
}

fn path(run: &Path) -> std::path::PathBuf {
    run.join("analysis").join("analysis.json")
}

/// `analysis.json` parsed (an error for a file that does not parse), if there is one.
fn read(run: &Path) -> Result<Option<serde_json::Result<Summary>>> {
    let path = path(run);
    if !path.exists() {
        return Ok(None);
    }
    let text = bounded_read::read_to_string(&path, 64 << 20, "an analysis")?;
    Ok(Some(serde_json::from_str(&text)))
}

/// The cached analysis, if there is one and it is of the run's current files.
fn fresh(run: &Path) -> Result<Option<Summary>> {
    // An unreadable cache (an older format, a damaged file) is recomputed, not trusted.
    let Some(Ok(summary)) = read(run)? else {
        return Ok(None);
    };
    let Some(analysed) = &summary.analysed else {
        return Ok(None);
    };
    let dir = RunDir::open(run)?;
    let config = dir.read_config()?;
    // An analysis of another checkpoint than `analyze` takes by default (`--epoch`) is not the
    // run's.
    if super::default_checkpoint(&dir, &config)? != Some(analysed.epoch) {
        return Ok(None);
    }
    let current = AnalysedFiles::of(&dir, &config, analysed.epoch)
        .with_context(|| format!("checking {} against the run", path(run).display()))?;
    Ok((current == *analysed).then_some(summary))
}
