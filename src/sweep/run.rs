//! `bitgrok sweep`: trains and analyses the models of a sweep (or of one shard of it), each in
//! its own run directory under the sweep's, and records a row per model as it finishes. Run
//! again, the same command continues: finished models are kept, interrupted ones resumed.

use std::collections::{BTreeMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Instant;

use anyhow::{Context, Result};

use super::file::{SweepFile, SweepRow};
use super::{ModelSettings, Shard, SweepSpec};
use crate::engine::device::Gpu;
use crate::engine::{self, OutOfGpuMemory};
use crate::report::compare::load_or_analyze;
use crate::run::{RunConfig, RunDir};
use crate::run_lock::DirLock;
use crate::train::{self, Control, PendingRun};

/// How a sweep ended.
pub struct Outcome {
    pub file: SweepFile,
    /// Stopped by a signal before every model of the shard was done.
    pub interrupted: bool,
}

/// Checks, before any GPU work, that `out` may take this sweep (or shard), creates it and locks
/// it for this process: refused are a shard beyond the grid, an existing file, the filesystem
/// root, a non-empty directory that is no sweep, and another sweep unless `force`.
pub fn prepare_out_dir(out: &Path, spec: &SweepSpec, shard: Shard, force: bool) -> Result<DirLock> {
    let models = spec.plan()?.len();
    if shard.count > models {
        crate::usage_bail!(
            "--shard {shard}: the grid holds {models} model{}, so {} of {} shards would train \
             nothing; cut it into at most {models}",
            if models == 1 { "" } else { "s" },
            shard.count - models,
            shard.count
        );
    }
    let is_sweep = |dir: &Path| dir.join(super::file::JSON_NAME).is_file();
    // The same sweep continues without --force; another is checked below.
    crate::out_dir::check(out, "sweep", is_sweep, true)?;
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let lock = DirLock::acquire(out)?;
    if !force && is_sweep(out) {
        let existing = SweepFile::read(out)?;
        if !spec.extends(&existing.spec) || existing.shard != shard {
            crate::usage_bail!(
                "{} holds another sweep (or another shard of it; the same grid with more seeds \
                 would continue it); pass --force to replace it, or choose another --out",
                out.display()
            );
        }
    }
    Ok(lock)
}

/// What to tell the user of an interrupted sweep: the command that continues it is the same
/// one, without `--force` (which would start the interrupted models over).
pub fn continue_hint(force: bool) -> &'static str {
    if force {
        "run the same command without --force to continue"
    } else {
        "run the same command again to continue"
    }
}

pub fn sweep(
    gpu: &Gpu,
    spec: &SweepSpec,
    shard: Shard,
    out: &Path,
    options: SweepOptions,
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
    let mut rows = BTreeMap::new();
    let (mut pending, mut trained) = (Vec::new(), Vec::new());
    for (i, (settings, config)) in plan.iter().enumerate() {
        let dir = out.join(&settings.name);
        // A link is a model that another arm of a study owns, and retrains when forced.
        let force = options.force && !dir.is_symlink();
        match pending_run(gpu, config, &dir, force)? {
            Some(run) => pending.push((i, run)),
            None => trained.push(i),
        }
    }
    let analysed = analysed_rows(gpu, &trained, &plan, out, options.compact);
    for (i, row) in trained.into_iter().zip(analysed) {
        rows.insert(i, row?);
    }
    file.rows = rows.values().cloned().collect();
    file.write(out)?;
    let mut queue: VecDeque<_> = groups(gpu, pending, options.together).into();
    while let Some(group) = queue.pop_front() {
        let (positions, runs): (Vec<usize>, Vec<PendingRun>) = group.into_iter().unzip();
        let names: Vec<&str> = positions.iter().map(|&i| plan[i].0.name.as_str()).collect();
        println!(
            "[{}/{} models] training {} together from epoch {} (shard {shard}): {}",
            rows.len() + runs.len(),
            plan.len(),
            runs.len(),
            runs[0].first_epoch(),
            names.join(", ")
        );
        let control = Control {
            progress: true,
            stop: options.stop,
        };
        let started = Instant::now();
        let summaries = match train::train_together(gpu, runs, control) {
            Err(e) if positions.len() > 1 && e.downcast_ref::<OutOfGpuMemory>().is_some() => {
                println!("  {e:#}: trying half as many");
                let halves = positions.chunks(positions.len().div_ceil(2)).map(|half| {
                    half.iter()
                        .map(|&i| {
                            let (settings, config) = &plan[i];
                            let dir = out.join(&settings.name);
                            let run = pending_run(gpu, config, &dir, false)?
                                .context("an unfinished run is pending")?;
                            Ok((i, run))
                        })
                        .collect::<Result<Vec<_>>>()
                });
                let halves = halves.collect::<Result<Vec<_>>>()?;
                for half in halves.into_iter().rev() {
                    queue.push_front(half);
                }
                continue;
            }
            summaries => summaries?,
        };
        let seconds = started.elapsed().as_secs_f64();
        let mut interrupted = false;
        // A model that diverged fails the sweep, once the rest of its group is recorded.
        let mut failed = None;
        let mut finished = Vec::new();
        for (&i, summary) in positions.iter().zip(summaries) {
            let settings = &plan[i].0;
            match summary {
                Err(e) => {
                    failed.get_or_insert(e.context(format!("model {}", settings.name)));
                }
                Ok(summary) if summary.interrupted => interrupted = true,
                Ok(_) => finished.push(i),
            }
        }
        let analysed = analysed_rows(gpu, &finished, &plan, out, options.compact);
        for (i, row) in finished.into_iter().zip(analysed) {
            let (settings, row) = (&plan[i].0, row?);
            println!(
                "  {}: memorised at {}, grokked at {}; key frequencies {:?}, {:.0}% of neurons \
                 clustered pre-ReLU ({:.0}% post-ReLU), {}",
                settings.name,
                row.memorised_at.map_or("-".into(), |e| e.to_string()),
                row.grokked_at.map_or("-".into(), |e| e.to_string()),
                row.key_frequencies,
                100.0 * row.levels.clustered_pre,
                100.0 * row.clustered_fraction,
                row.levels.kind,
            );
            rows.insert(i, row);
        }
        println!("  {} models took {seconds:.1} s", positions.len());
        file.rows = rows.values().cloned().collect();
        file.write(out)?;
        if let Some(e) = failed {
            return Err(e);
        }
        if interrupted {
            println!("  interrupted; {}", continue_hint(options.force));
            return Ok(Outcome {
                file,
                interrupted: true,
            });
        }
    }
    Ok(Outcome {
        file,
        interrupted: options.stop.is_some_and(|s| s.load(Ordering::SeqCst)),
    })
}

/// How a sweep runs.
#[derive(Clone, Copy, Default)]
pub struct SweepOptions<'a> {
    /// Replace runs of other configurations.
    pub force: bool,
    /// Most models one engine trains together (None: as many as the adapter holds).
    pub together: Option<usize>,
    /// Set by a signal: checkpoint and stop.
    pub stop: Option<&'a AtomicBool>,
    /// Keep of each finished model only what its row and a later analysis need ([`compact_run`]).
    pub compact: bool,
}

/// Removes from a finished, analysed run every checkpoint but the analysed one and the last
/// (the analysis cache checks the one, `train --resume --epochs` extends from the other, and
/// the analysed checkpoint stays the default choice: it was the latest of the best), and the
/// analysis figures, which `bitgrok analyze` draws again. analysis.json, report.md,
/// metrics.csv and the resume point stay.
pub fn compact_run(dir: &Path, analysed: usize) -> Result<()> {
    let run = RunDir::open(dir)?;
    let epochs = run.checkpoint_epochs()?;
    let last = epochs.last().copied();
    for epoch in epochs {
        if epoch != analysed && Some(epoch) != last {
            let path = run.checkpoint_path(epoch);
            std::fs::remove_file(&path).with_context(|| format!("removing {}", path.display()))?;
        }
    }
    let figures = dir.join("analysis");
    for entry in
        std::fs::read_dir(&figures).with_context(|| format!("reading {}", figures.display()))?
    {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "png") {
            std::fs::remove_file(&path).with_context(|| format!("removing {}", path.display()))?;
        }
    }
    Ok(())
}

/// The rows of the trained models at `positions` of the plan, in that order, analysed at once on
/// as many threads as the machine has: after a few forward passes an analysis is CPU work
/// (Fourier transforms, neuron measures, figures), which one model at a time would leave to
/// one core for long stretches while the GPU waits for the next group.
fn analysed_rows(
    gpu: &Gpu,
    positions: &[usize],
    plan: &[(ModelSettings, RunConfig)],
    out: &Path,
    compact: bool,
) -> Vec<Result<SweepRow>> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let threads = threads.min(positions.len());
    let next = AtomicUsize::new(0);
    let rows: Vec<Mutex<Option<Result<SweepRow>>>> =
        positions.iter().map(|_| Mutex::new(None)).collect();
    std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| loop {
                let k = next.fetch_add(1, Ordering::Relaxed);
                let Some(&i) = positions.get(k) else { break };
                let settings = &plan[i].0;
                // Progress bars of parallel analyses would overwrite each other.
                let row = analysed_row(
                    gpu,
                    settings,
                    &out.join(&settings.name),
                    compact,
                    threads == 1,
                );
                *rows[k].lock().unwrap_or_else(|p| p.into_inner()) = Some(row);
            });
        }
    });
    rows.into_iter()
        .map(|row| {
            row.into_inner()
                .unwrap_or_else(|p| p.into_inner())
                .expect("every position is analysed")
        })
        .collect()
}

/// The row of a trained model, analysing it first unless it has been (and compacting it when
/// asked).
fn analysed_row(
    gpu: &Gpu,
    settings: &ModelSettings,
    dir: &Path,
    compact: bool,
    progress: bool,
) -> Result<SweepRow> {
    let summary = load_or_analyze(gpu, dir, progress)?;
    if compact {
        compact_run(dir, summary.epoch)?;
    }
    Ok(SweepRow::new(
        settings.clone(),
        PathBuf::from(&settings.name),
        &summary,
    ))
}

/// Splits the runs to train into groups one engine trains together: runs of one model
/// configuration that start at the same epoch, at most as many as the adapter's limits allow
/// and `together` (default: the adapter's [`crate::engine::device::Parallelism::models_together`]), in plan order. (A group the adapter's memory cannot hold is halved when it
/// fails to allocate.)
fn groups(
    gpu: &Gpu,
    pending: Vec<(usize, PendingRun)>,
    together: Option<usize>,
) -> Vec<Vec<(usize, PendingRun)>> {
    let mut groups: Vec<Vec<(usize, PendingRun)>> = Vec::new();
    for (i, run) in pending {
        let c = run.config();
        let max_batch = c.model.p * c.model.p;
        let wanted = together.unwrap_or(gpu.parallelism.models_together);
        let limit = engine::max_models(gpu, &c.model, max_batch).min(wanted);
        let joins = |g: &Vec<(usize, PendingRun)>| {
            let first = &g[0].1;
            g.len() < limit
                && first.config().model == c.model
                && first.first_epoch() == run.first_epoch()
        };
        match groups.iter_mut().find(|g| joins(g)) {
            Some(group) => group.push((i, run)),
            None => groups.push(vec![(i, run)]),
        }
    }
    groups
}

/// The run to train in `dir`: None for a finished one of the same configuration (it is kept),
/// an unfinished one to continue, or a new one.
fn pending_run(
    gpu: &Gpu,
    config: &RunConfig,
    dir: &Path,
    force: bool,
) -> Result<Option<PendingRun>> {
    if !force && RunDir::is_run(dir) {
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
        let run = PendingRun::reopen(dir, None)?;
        return Ok((!run.is_finished()).then_some(run));
    }
    Ok(Some(PendingRun::create(gpu, config, dir, force)?))
}
