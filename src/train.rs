//! The training loop: the host records chunks of epochs into single submissions, reads their
//! metrics back, writes metrics and checkpoints, and stops at the epoch budget or after grokking.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use anyhow::{anyhow, bail, Context, Result};
use indicatif::{ProgressBar, ProgressStyle};

use crate::engine::device::Gpu;
use crate::engine::{self, Engine, MAX_EPOCHS_PER_SUBMIT};
use crate::metrics;
use crate::metrics::EpochMetrics;
use crate::metrics::{Generalisation, Sustained, SUSTAIN};
use crate::model::Params;
use crate::optim::OptimizerState;
use crate::run::{ResumePoint, RunConfig, RunDir};
use crate::task::Split;

pub struct Summary {
    pub epochs: usize,
    pub final_metrics: EpochMetrics,
    /// First epoch from which train accuracy held at 1 ([`crate::metrics`]'s sustained rule).
    pub memorised_at: Option<usize>,
    /// First epoch from which test accuracy held generalised ([`Generalisation`]).
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
    resume(gpu, PendingRun::create(gpu, config, out, force)?, control)
}

/// A run to train from where it stands: a new one, or one to continue from its newest resume
/// point (from the start if it has none).
pub struct PendingRun {
    dir: RunDir,
    config: RunConfig,
    start: Start,
}

impl PendingRun {
    /// Creates a new run in `out` (an existing run only with `force`) and writes its config.
    pub fn create(gpu: &Gpu, config: &RunConfig, out: &Path, force: bool) -> Result<Self> {
        let (p, n_train) = (
            config.model.p,
            Split::train_size(config.model.p, config.frac),
        );
        engine::check_limits(gpu, &config.model, n_train.max(p * p - n_train), 1)?;
        let dir = RunDir::create(out, force)?;
        let mut config = config.clone();
        config.crate_version = env!("CARGO_PKG_VERSION").to_string();
        config.adapter = gpu.describe();
        dir.write_config(&config)?;
        Ok(PendingRun {
            dir,
            config,
            start: Start::default(),
        })
    }

    /// Reads the run in `out` to continue it, checked before any GPU work; `epochs` sets a
    /// new epoch budget.
    pub fn reopen(out: &Path, epochs: Option<usize>) -> Result<Self> {
        let dir = RunDir::open_for_writing(out)?;
        let mut config = dir.read_config()?;
        if config.imported_from.is_some() {
            crate::usage_bail!(
                "{} was imported: it has no optimiser state to resume from",
                out.display()
            );
        }
        let point = dir.read_resume_point(&config.model)?;
        let recorded_epochs = config.epochs;
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
                let mut history = metrics::read(&dir.metrics_path(), recorded_epochs)?;
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
        Ok(PendingRun { dir, config, start })
    }

    pub fn config(&self) -> &RunConfig {
        &self.config
    }

    /// The first epoch it will train.
    pub fn first_epoch(&self) -> usize {
        self.start.point.as_ref().map_or(1, |p| p.epoch + 1)
    }

    /// Whether it has reached its budget (its epochs, or the stop after grokking) and has
    /// nothing left to train.
    pub fn is_finished(&self) -> bool {
        let Some(point) = &self.start.point else {
            return false;
        };
        point.epoch >= PhaseTracker::replay(&self.start.history, &self.config).1
    }
}

/// Trains a run to its budget.
pub fn resume(gpu: &Gpu, run: PendingRun, control: Control) -> Result<Summary> {
    train_together(gpu, vec![run], control)?
        .pop()
        .expect("one summary per run")
}

/// One run of a group as the loop follows it.
struct Track<'a> {
    dir: &'a RunDir,
    config: &'a RunConfig,
    history: Vec<EpochMetrics>,
    phases: PhaseTracker,
    budget: usize,
    /// Why it stopped early: training diverged.
    failed: Option<anyhow::Error>,
}

impl Track<'_> {
    /// A signal checkpoints the epoch it stopped at; continuing past it, the run removes that
    /// checkpoint (off the `--checkpoint-every` schedule and not the end of the budget), so that
    /// it ends with the files an uninterrupted run writes.
    fn remove_interruption_checkpoint(&self, resumed_at: usize) -> Result<()> {
        let scheduled = resumed_at.is_multiple_of(self.config.checkpoint_every);
        if resumed_at == 0 || scheduled || resumed_at >= self.budget {
            return Ok(());
        }
        let path = self.dir.checkpoint_path(resumed_at);
        match std::fs::remove_file(&path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                Err(e).with_context(|| format!("removing {}", path.display()))
            }
            _ => Ok(()),
        }
    }

    fn active(&self, epoch: usize) -> bool {
        self.failed.is_none() && epoch <= self.budget
    }

    /// Whether the run evaluates the test batch after `epoch`.
    fn evaluates(&self, epoch: usize) -> bool {
        epoch.is_multiple_of(self.config.eval_every) || epoch == self.budget
    }

    /// Takes a chunk's metrics: records them, writes them and, at checkpoints, the end of the
    /// budget or an interruption, the checkpoint and resume point.
    fn take(
        &mut self,
        snapshots: &mut Snapshots,
        model: usize,
        metrics: Vec<EpochMetrics>,
        interrupted: bool,
    ) -> Result<()> {
        let evaluates: Vec<bool> = metrics.iter().map(|m| self.evaluates(m.epoch)).collect();
        for (m, &evaluated) in metrics.iter().zip(&evaluates) {
            if let Some(problem) = divergence(m, evaluated) {
                self.dir.write_metrics(&self.history)?;
                self.failed = Some(anyhow!(
                    "training diverged at epoch {}: {problem}; the last good checkpoint stays in {}",
                    m.epoch,
                    self.dir.checkpoint_dir().display()
                ));
                return Ok(());
            }
            self.budget = self.phases.observe(m, self.config, self.budget);
        }
        let budget = self.budget;
        self.history.extend(
            metrics
                .into_iter()
                .zip(evaluates)
                .filter(|(m, _)| m.epoch <= budget)
                .map(|(m, evaluated)| if evaluated { m } else { m.untested() }),
        );
        self.dir.write_metrics(&self.history)?;
        let last = self.history.last().expect("at least one epoch ran").epoch;
        if last.is_multiple_of(self.config.checkpoint_every) || last == budget || interrupted {
            let (params, optimizer) = snapshots.of(model)?;
            self.dir.write_checkpoint(last, params)?;
            self.dir
                .write_resume_point(&ResumePoint {
                    epoch: last,
                    params: params.clone(),
                    optimizer: optimizer.clone(),
                })
                .context("writing the resume point")?;
        }
        Ok(())
    }
}

/// The engine's parameters and AdamW states after a chunk, read back when the first run
/// needs them for a checkpoint.
struct Snapshots<'e, 'g> {
    engine: &'e Engine<'g>,
    read: Option<Vec<(Params, OptimizerState)>>,
}

impl Snapshots<'_, '_> {
    fn of(&mut self, model: usize) -> Result<&(Params, OptimizerState)> {
        if self.read.is_none() {
            self.read = Some(self.engine.snapshots()?);
        }
        Ok(&self.read.as_ref().expect("just read")[model])
    }
}

/// Trains runs of one model configuration that start at the same epoch together, in one
/// engine: each run's metrics, checkpoints and resume points are what training it alone writes.
/// Returns a summary (or why it stopped early) per run, in order.
pub fn train_together(
    gpu: &Gpu,
    mut runs: Vec<PendingRun>,
    control: Control,
) -> Result<Vec<Result<Summary>>> {
    for run in &runs {
        run.dir.remove_temporaries()?;
        run.dir.write_config(&run.config)?;
    }
    let starts: Vec<Start> = runs
        .iter_mut()
        .map(|r| std::mem::take(&mut r.start))
        .collect();
    let mut tracks = Vec::new();
    let mut inits = Vec::new();
    let mut first_epochs = Vec::new();
    for (PendingRun { dir, config, .. }, start) in runs.iter().zip(starts) {
        let split = Split::new(config.model.p, config.frac, config.data_seed);
        let (params, optimizer, first_epoch) = match start.point {
            Some(point) => (point.params, Some(point.optimizer), point.epoch + 1),
            None => {
                dir.write_split(&split)?;
                let params = Params::init(&config.model, config.seed);
                dir.write_checkpoint(0, &params)?;
                (params, None, 1)
            }
        };
        let (phases, budget) = PhaseTracker::replay(&start.history, config);
        first_epochs.push(first_epoch);
        inits.push((
            params,
            optimizer,
            split.train_examples(),
            split.test_examples(),
        ));
        tracks.push(Track {
            dir,
            config,
            history: start.history,
            phases,
            budget,
            failed: None,
        });
    }
    for (track, &first) in tracks.iter().zip(&first_epochs) {
        track.remove_interruption_checkpoint(first - 1)?;
    }
    let first_epoch = first_epochs[0];
    if first_epochs.iter().any(|&e| e != first_epoch) {
        bail!("runs trained together must start at the same epoch");
    }
    let engine_members: Vec<engine::Member> = inits
        .iter()
        .zip(&tracks)
        .map(|((params, _, train, test), t)| engine::Member {
            params,
            train,
            test: Some(test),
            adamw: &t.config.adamw,
        })
        .collect();
    let mut engine = Engine::stacked(gpu, &engine_members)?;
    for (model, (_, optimizer, _, _)) in inits.iter().enumerate() {
        if let Some(optimizer) = optimizer {
            engine.set_optimizer_state(model, optimizer)?;
        }
    }

    let last_budget = |tracks: &[Track]| tracks.iter().map(|t| t.budget).max().unwrap_or(0);
    let bar = if control.progress {
        ProgressBar::new(last_budget(&tracks) as u64)
    } else {
        ProgressBar::hidden()
    };
    bar.set_style(
        ProgressStyle::with_template("{bar:30} {pos}/{len} epochs  {per_sec}  eta {eta}  {msg}")
            .expect("valid template"),
    );
    let started = Instant::now();
    let mut epoch = first_epoch;
    bar.set_position(epoch as u64 - 1);
    let mut chunk_len = 1;
    let mut interrupted = false;
    while tracks.iter().any(|t| t.active(epoch)) {
        let active: Vec<&Track> = tracks.iter().filter(|t| t.active(epoch)).collect();
        let end = active
            .iter()
            .map(|t| chunk_end(epoch, t.budget, t.config.checkpoint_every, chunk_len))
            .min()
            .expect("an active run");
        let is_eval = |e: usize| active.iter().any(|t| t.evaluates(e));
        let chunk_started = Instant::now();
        let metrics = engine.run_epochs(epoch, end - epoch + 1, is_eval)?;
        let per_epoch = chunk_started.elapsed().as_secs_f64() / (end - epoch + 1) as f64;
        chunk_len = (SUBMISSION_SECONDS / per_epoch.max(1e-9)) as usize;
        interrupted = control.stop.is_some_and(|s| s.load(Ordering::SeqCst));
        let mut snapshots = Snapshots {
            engine: &engine,
            read: None,
        };
        for (model, (track, metrics)) in tracks.iter_mut().zip(metrics).enumerate() {
            if track.active(epoch) {
                track.take(&mut snapshots, model, metrics, interrupted)?;
            }
        }
        bar.set_length(last_budget(&tracks) as u64);
        bar.set_position(end as u64);
        bar.set_message(progress_message(&tracks));
        epoch = end + 1;
        if interrupted {
            break;
        }
    }
    bar.finish();
    let seconds = started.elapsed().as_secs_f64();
    Ok(tracks
        .into_iter()
        .map(|t| {
            if let Some(failed) = t.failed {
                return Err(failed);
            }
            let final_metrics = *t.history.last().context("the run has no epochs to train")?;
            Ok(Summary {
                epochs: final_metrics.epoch,
                final_metrics,
                memorised_at: t.phases.memorised_at(),
                grokked_at: t.phases.grokked_at(),
                epochs_per_second: (final_metrics.epoch + 1 - first_epoch) as f64 / seconds,
                interrupted: interrupted && final_metrics.epoch < t.budget,
            })
        })
        .collect())
}

/// Memorisation and grokking by the sustained rule of [`crate::metrics`] (the one the analyses
/// use), and the budget `--stop-after-grok` leaves.
#[derive(Default)]
struct PhaseTracker {
    memorised: Sustained,
    grokked: Sustained,
}

impl PhaseTracker {
    /// The phases and the budget after the metrics a run has recorded so far.
    fn replay(history: &[EpochMetrics], config: &RunConfig) -> (Self, usize) {
        let mut phases = PhaseTracker::default();
        let budget = history
            .iter()
            .fold(config.epochs, |budget, m| phases.observe(m, config, budget));
        (phases, budget)
    }

    /// Records an epoch's metrics; returns the epoch budget from now on. `--stop-after-grok N`
    /// stops N epochs after the grokking epoch, and no earlier than the epoch that confirms it
    /// (test accuracy held for [`SUSTAIN`] epochs), rounded up to a checkpoint: chunks never cross
    /// one, so the chunk that confirms grokking never trains past the new budget.
    fn observe(&mut self, m: &EpochMetrics, config: &RunConfig, budget: usize) -> usize {
        if m.train_acc.is_finite() {
            self.memorised.observe(m.epoch, m.train_acc >= 1.0);
        }
        if !m.test_acc.is_finite() || self.grokked.confirmed().is_some() {
            return budget;
        }
        let rule = Generalisation::new(Split::test_size(config.model.p, config.frac));
        self.grokked.observe(m.epoch, rule.reached(m.test_acc));
        match (self.grokked.confirmed(), config.stop_after_grok) {
            (Some(grokked), Some(extra)) => {
                // Saturating: a stop further away than any budget leaves the budget.
                let every = config.checkpoint_every;
                let stop = grokked.saturating_add(extra.max(SUSTAIN)).max(m.epoch);
                budget.min(stop.div_ceil(every).saturating_mul(every))
            }
            _ => budget,
        }
    }

    fn memorised_at(&self) -> Option<usize> {
        self.memorised.finish()
    }

    fn grokked_at(&self) -> Option<usize> {
        self.grokked.finish()
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

/// The progress bar's message: the losses of a single run, how many have grokked in a group.
fn progress_message(tracks: &[Track]) -> String {
    if let [track] = tracks {
        return run_progress(&track.history);
    }
    let grokked = tracks
        .iter()
        .filter(|t| t.phases.grokked_at().is_some())
        .count();
    let failed = tracks.iter().filter(|t| t.failed.is_some()).count();
    let mut message = format!("{} models, {grokked} grokked", tracks.len());
    if failed > 0 {
        message += &format!(", {failed} diverged");
    }
    message
}

fn run_progress(history: &[EpochMetrics]) -> String {
    let Some(last) = history.last() else {
        return String::new();
    };
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
    use super::{chunk_end, PhaseTracker};
    use crate::metrics::EpochMetrics;
    use crate::model::Preset;

    #[test]
    fn a_stop_after_grokking_beyond_any_budget_leaves_the_budget() {
        let mut config = crate::run::RunConfig::preset(Preset::Nanda);
        let grokked = EpochMetrics {
            epoch: 900,
            train_loss: 0.0,
            train_acc: 1.0,
            test_loss: 0.0,
            test_acc: 1.0,
            test_acc_transpose_seen: 1.0,
            test_acc_transpose_unseen: 1.0,
            params_finite: true,
        };
        // Test accuracy holds from epoch 900; the rule confirms it at 1,400.
        let held = |epoch| EpochMetrics { epoch, ..grokked };
        for (extra, budget) in [(usize::MAX, 5000), (usize::MAX - 899, 5000), (750, 1700)] {
            config.stop_after_grok = Some(extra);
            let mut phases = PhaseTracker::default();
            assert_eq!(phases.observe(&held(900), &config, 5000), 5000);
            assert_eq!(phases.observe(&held(1399), &config, 5000), 5000);
            let observed = phases.observe(&held(1400), &config, 5000);
            assert_eq!(observed, budget, "--stop-after-grok {extra}");
        }
        // A stop shorter than the confirmation waits for it.
        config.stop_after_grok = Some(150);
        let mut phases = PhaseTracker::default();
        phases.observe(&held(900), &config, 5000);
        assert_eq!(phases.observe(&held(1400), &config, 5000), 1400);
        // A relapse restarts the count.
        let mut phases = PhaseTracker::default();
        phases.observe(&held(900), &config, 5000);
        phases.observe(
            &EpochMetrics {
                test_acc: 0.9,
                ..held(1000)
            },
            &config,
            5000,
        );
        assert_eq!(phases.observe(&held(1400), &config, 5000), 5000);
        assert_eq!(phases.grokked_at(), Some(1400));
    }

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
