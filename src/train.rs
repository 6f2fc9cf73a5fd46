//! The training loop: the host records chunks of epochs into single submissions, reads their
//! metrics back, writes metrics and checkpoints, and stops at the epoch budget or after grokking.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use indicatif::{ProgressBar, ProgressStyle};

use crate::engine::device::Gpu;
use crate::engine::{self, Engine, EpochMetrics, MAX_EPOCHS_PER_SUBMIT};
use crate::model::Params;
use crate::report::metrics;
use crate::run::{ResumePoint, RunConfig, RunDir, GROK_ACCURACY};
use crate::task::Split;

pub struct Summary {
    pub epochs: usize,
    pub final_metrics: EpochMetrics,
    /// First epoch with train accuracy 1.
    pub memorised_at: Option<usize>,
    /// First epoch with test accuracy ≥ [`GROK_ACCURACY`].
    pub grokked_at: Option<usize>,
    pub epochs_per_second: f64,
    /// Stopped early by a signal, with a checkpoint and resume point at `epochs`.
    pub interrupted: bool,
}

/// How a training loop is watched: a progress bar, and a flag (set by SIGINT/SIGTERM) that makes
/// it checkpoint and stop at the next submission boundary.
#[derive(Clone, Copy, Default)]
pub struct Control<'a> {
    pub progress: bool,
    pub stop: Option<&'a AtomicBool>,
}

/// Wall-clock time one submission aims at: long enough to amortise the metrics readback, short
/// enough that a signal is answered promptly. Chunk lengths never change the numbers.
const SUBMISSION_SECONDS: f64 = 0.5;

/// The last epoch of the chunk starting at `start`: chunks end at checkpoints and the budget.
fn chunk_end(start: usize, budget: usize, checkpoint_every: usize, max_len: usize) -> usize {
    let next_checkpoint = start.div_ceil(checkpoint_every) * checkpoint_every;
    (start + max_len.clamp(1, MAX_EPOCHS_PER_SUBMIT) - 1)
        .min(next_checkpoint)
        .min(budget)
}

/// Where the loop starts: epoch 0 of a fresh run, or a resume point with the metrics before it.
#[derive(Default)]
struct Start {
    point: Option<ResumePoint>,
    history: Vec<EpochMetrics>,
}

/// Trains a new run in `out` (an existing run only with `force`).
pub fn train(
    gpu: &Gpu,
    config: &RunConfig,
    out: &Path,
    force: bool,
    control: Control,
) -> Result<Summary> {
    let (p, n_train) = (
        config.model.p,
        Split::train_size(config.model.p, config.frac),
    );
    engine::check_limits(gpu, &config.model, n_train.max(p * p - n_train))?;
    let dir = RunDir::create(out, force)?;
    let mut config = config.clone();
    config.crate_version = env!("CARGO_PKG_VERSION").to_string();
    config.adapter = gpu.describe();
    dir.write_config(&config)?;
    run(gpu, &dir, &config, Start::default(), control)
}

/// A run to continue from its newest resume point (from the start if it has none), read and
/// checked before any GPU work.
pub struct Resumption {
    dir: RunDir,
    config: RunConfig,
    start: Start,
}

impl Resumption {
    /// Reads the run in `out`; `epochs` sets a new epoch budget.
    pub fn prepare(out: &Path, epochs: Option<usize>) -> Result<Self> {
        let dir = RunDir::open(out)?;
        let mut config = dir.read_config()?;
        if config.imported_from.is_some() {
            crate::usage_bail!(
                "{} was imported: it has no optimiser state to resume from",
                out.display()
            );
        }
        let point = dir.read_resume_point(&config.model)?;
        if let Some(epochs) = epochs {
            let done = point.as_ref().map_or(0, |p| p.epoch);
            if epochs < done.max(1) {
                crate::usage_bail!(
                    "--epochs {epochs}: must be at least {} (the run is at epoch {done})",
                    done.max(1)
                );
            }
            config.epochs = epochs;
        }
        let start = match point {
            None => Start::default(),
            Some(point) => {
                let mut history = metrics::read(&dir.metrics_path())?;
                history.retain(|m| m.epoch <= point.epoch);
                if history.last().map(|m| m.epoch) != Some(point.epoch) {
                    bail!(
                        "{} ends before the resume point's epoch {}",
                        dir.metrics_path().display(),
                        point.epoch
                    );
                }
                Start {
                    point: Some(point),
                    history,
                }
            }
        };
        Ok(Resumption { dir, config, start })
    }
}

/// Continues a run.
pub fn resume(gpu: &Gpu, r: Resumption, control: Control) -> Result<Summary> {
    r.dir.remove_temporaries()?;
    r.dir.write_config(&r.config)?;
    run(gpu, &r.dir, &r.config, r.start, control)
}

fn run(
    gpu: &Gpu,
    dir: &RunDir,
    config: &RunConfig,
    start: Start,
    control: Control,
) -> Result<Summary> {
    let split = Split::new(config.model.p, config.frac, config.data_seed);
    let (train_set, test_set) = (split.train_examples(), split.test_examples());
    let (params, first_epoch) = match &start.point {
        Some(point) => (point.params.clone(), point.epoch + 1),
        None => {
            dir.write_split(&split)?;
            let params = Params::init(&config.model, config.seed);
            dir.write_checkpoint(0, &params)?;
            (params, 1)
        }
    };
    let mut engine = Engine::new(gpu, &params, &train_set, Some(&test_set), &config.adamw)?;
    if let Some(point) = &start.point {
        engine.set_optimizer_state(&point.optimizer)?;
    }

    let bar = if control.progress {
        ProgressBar::new(config.epochs as u64)
    } else {
        ProgressBar::hidden()
    };
    bar.set_style(
        ProgressStyle::with_template("{bar:30} {pos}/{len} epochs  {per_sec}  eta {eta}  {msg}")
            .expect("valid template"),
    );
    let started = Instant::now();
    let mut history = start.history;
    let mut phases = PhaseTracker::default();
    let mut budget = config.epochs;
    for m in &history {
        budget = phases.observe(m, config, budget);
    }
    let mut epoch = first_epoch;
    bar.set_position(epoch as u64 - 1);
    let mut chunk_len = 1;
    let mut interrupted = false;
    while epoch <= budget {
        let end = chunk_end(epoch, budget, config.checkpoint_every, chunk_len);
        let (eval_every, last_epoch) = (config.eval_every, budget);
        let is_eval = move |e: usize| e.is_multiple_of(eval_every) || e == last_epoch;
        let chunk_started = Instant::now();
        let metrics = engine.run_epochs(epoch, end - epoch + 1, is_eval)?;
        let per_epoch = chunk_started.elapsed().as_secs_f64() / metrics.len() as f64;
        chunk_len = (SUBMISSION_SECONDS / per_epoch.max(1e-9)) as usize;
        for m in &metrics {
            if let Some(problem) = divergence(m, is_eval(m.epoch)) {
                dir.write_metrics(&history)?;
                bail!(
                    "training diverged at epoch {}: {problem}; the last good checkpoint stays in {}",
                    m.epoch,
                    dir.checkpoint_dir().display()
                );
            }
            budget = phases.observe(m, config, budget);
        }
        bar.set_length(budget as u64);
        history.extend(metrics.into_iter().filter(|m| m.epoch <= budget));
        let last = history.last().copied().expect("at least one epoch ran");
        bar.set_position(last.epoch as u64);
        bar.set_message(progress_message(&history));
        dir.write_metrics(&history)?;
        interrupted = control.stop.is_some_and(|s| s.load(Ordering::SeqCst));
        if last.epoch % config.checkpoint_every == 0 || last.epoch == budget || interrupted {
            let params = engine.params()?;
            dir.write_checkpoint(last.epoch, &params)?;
            dir.write_resume_point(&ResumePoint {
                epoch: last.epoch,
                params,
                optimizer: engine.optimizer_state()?,
            })
            .context("writing the resume point")?;
        }
        epoch = last.epoch + 1;
        if interrupted {
            break;
        }
    }
    bar.finish();
    let seconds = started.elapsed().as_secs_f64();
    let final_metrics = *history.last().context("the run has no epochs to train")?;
    Ok(Summary {
        epochs: final_metrics.epoch,
        final_metrics,
        memorised_at: phases.memorised_at,
        grokked_at: phases.grokked_at,
        epochs_per_second: (final_metrics.epoch + 1 - first_epoch) as f64 / seconds,
        interrupted,
    })
}

/// Memorisation and grokking epochs, and the budget `--stop-after-grok` leaves.
#[derive(Default)]
struct PhaseTracker {
    memorised_at: Option<usize>,
    grokked_at: Option<usize>,
}

impl PhaseTracker {
    /// Records an epoch's metrics; returns the epoch budget from now on. The stop after grokking
    /// is rounded up to a checkpoint: chunks never cross one, so the chunk that detects grokking
    /// never trains past the new budget, whatever its length.
    fn observe(&mut self, m: &EpochMetrics, config: &RunConfig, budget: usize) -> usize {
        if self.memorised_at.is_none() && m.train_acc >= 1.0 {
            self.memorised_at = Some(m.epoch);
        }
        if self.grokked_at.is_none() && m.test_acc >= GROK_ACCURACY {
            self.grokked_at = Some(m.epoch);
            if let Some(extra) = config.stop_after_grok {
                let every = config.checkpoint_every;
                return budget.min((m.epoch + extra).div_ceil(every) * every);
            }
        }
        budget
    }
}

/// What went non-finite in an epoch, if anything.
fn divergence(m: &EpochMetrics, evaluated: bool) -> Option<String> {
    if !m.params_finite {
        Some("a parameter became NaN or infinite".into())
    } else if !m.train_loss.is_finite() {
        Some(format!("train loss {}", m.train_loss))
    } else if evaluated && !m.test_loss.is_finite() {
        Some(format!("test loss {}", m.test_loss))
    } else {
        None
    }
}

fn progress_message(history: &[EpochMetrics]) -> String {
    let last = history.last().expect("at least one epoch");
    let last_test = history.iter().rev().find(|m| m.test_loss.is_finite());
    format!(
        "train {:.3e} ({:.1}%)  test {}",
        last.train_loss,
        100.0 * last.train_acc,
        last_test.map_or("-".into(), |t| format!(
            "{:.3e} ({:.1}%)",
            t.test_loss,
            100.0 * t.test_acc
        ))
    )
}

#[cfg(test)]
mod tests {
    use super::chunk_end;

    #[test]
    fn chunks_stop_at_checkpoints_and_budget() {
        assert_eq!(chunk_end(1, 1000, 100, 256), 100);
        assert_eq!(chunk_end(101, 1000, 100, 256), 200);
        assert_eq!(chunk_end(1, 50, 100, 256), 50);
        assert_eq!(chunk_end(1, 5000, 1000, 1000), 256);
        assert_eq!(chunk_end(1, 5000, 1000, 10), 10);
        assert_eq!(chunk_end(7, 5000, 1000, 0), 7);
        // A chunk that starts on a checkpoint ends there.
        assert_eq!(chunk_end(25, 1000, 25, 100), 25);
    }
}
