//! `bitgrok sweep`: trains and analyses the models of a sweep (or of one shard of it), each in
//! its own run directory under the sweep's, and records a row per model as it finishes. Run
//! again, the same command continues: finished models are kept, interrupted ones resumed.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use anyhow::{Context, Result};

use super::file::{SweepFile, SweepRow};
use super::{Shard, SweepSpec};
use crate::engine::device::Gpu;
use crate::report::compare::load_or_analyze;
use crate::run::{RunConfig, RunDir};
use crate::train::{self, Control};

/// How a sweep ended.
pub struct Outcome {
    pub file: SweepFile,
    /// Stopped by a signal before every model of the shard was done.
    pub interrupted: bool,
}

/// Refuses, before any GPU work, a sweep directory that holds another sweep (unless `force`).
pub fn check_out_dir(out: &Path, spec: &SweepSpec, shard: Shard, force: bool) -> Result<()> {
    if force || !out.join(super::file::JSON_NAME).exists() {
        return Ok(());
    }
    let existing = SweepFile::read(out)?;
    if existing.spec != *spec || existing.shard != shard {
        crate::usage_bail!(
            "{} holds another sweep (or another shard of it); pass --force to replace it, or \
             choose another --out",
            out.display()
        );
    }
    Ok(())
}

pub fn sweep(
    gpu: &Gpu,
    spec: &SweepSpec,
    shard: Shard,
    out: &Path,
    force: bool,
    stop: Option<&AtomicBool>,
) -> Result<Outcome> {
    let plan: Vec<_> = spec
        .plan()?
        .into_iter()
        .enumerate()
        .filter(|(position, _)| shard.contains(*position))
        .map(|(_, model)| model)
        .collect();
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let mut file = SweepFile {
        spec: spec.clone(),
        shard,
        rows: Vec::new(),
    };
    file.write(out)?;
    for (i, (settings, config)) in plan.iter().enumerate() {
        let dir = out.join(&settings.name);
        let started = Instant::now();
        println!(
            "[{}/{}] {} (shard {shard})",
            i + 1,
            plan.len(),
            settings.name
        );
        let interrupted = train_one(gpu, config, &dir, force, stop)?;
        if interrupted {
            println!("  interrupted; run the same command again to continue");
            return Ok(Outcome {
                file,
                interrupted: true,
            });
        }
        let summary = load_or_analyze(gpu, &dir)?;
        let row = SweepRow::new(settings.clone(), PathBuf::from(&settings.name), &summary);
        println!(
            "  memorised at {}, grokked at {}; key frequencies {:?}, {:.0}% of neurons clustered, \
             distance irrelevance {:.2}; {:.1} s",
            row.memorised_at.map_or("-".into(), |e| e.to_string()),
            row.grokked_at.map_or("-".into(), |e| e.to_string()),
            row.key_frequencies,
            100.0 * row.clustered_fraction,
            row.distance_irrelevance,
            started.elapsed().as_secs_f64()
        );
        file.rows.push(row);
        file.write(out)?;
    }
    Ok(Outcome {
        file,
        interrupted: stop.is_some_and(|s| s.load(Ordering::SeqCst)),
    })
}

/// Trains one model into `dir`: a finished run of the same configuration is kept, an
/// unfinished one resumed. Returns whether a signal interrupted it.
fn train_one(
    gpu: &Gpu,
    config: &RunConfig,
    dir: &Path,
    force: bool,
    stop: Option<&AtomicBool>,
) -> Result<bool> {
    let control = Control {
        progress: true,
        stop,
    };
    if !force && dir.exists() {
        let existing = RunDir::open(dir)?.read_config()?;
        let same = RunConfig {
            crate_version: existing.crate_version.clone(),
            adapter: existing.adapter.clone(),
            ..config.clone()
        };
        if existing != same {
            crate::usage_bail!(
                "{} holds a run of another configuration; pass --force to replace it",
                dir.display()
            );
        }
        if dir.join("analysis").join("analysis.json").exists() {
            return Ok(false);
        }
        let resumption = train::Resumption::prepare(dir, None)?;
        return Ok(train::resume(gpu, resumption, control)?.interrupted);
    }
    Ok(train::train(gpu, config, dir, force, control)?.interrupted)
}
