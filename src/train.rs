//! The training loop: the host records chunks of epochs into single submissions, reads their
//! metrics back, writes metrics and checkpoints, and stops at the epoch budget or after grokking.

use std::path::Path;
use std::time::Instant;

use anyhow::{bail, Result};
use indicatif::{ProgressBar, ProgressStyle};

use crate::engine::device::Gpu;
use crate::engine::{Engine, EpochMetrics, MAX_EPOCHS_PER_SUBMIT};
use crate::model::Params;
use crate::run::{RunConfig, RunDir, GROK_ACCURACY};
use crate::task::Split;

pub struct Summary {
    pub epochs: usize,
    pub final_metrics: EpochMetrics,
    /// First epoch with train accuracy 1.
    pub memorised_at: Option<usize>,
    /// First epoch with test accuracy ≥ [`GROK_ACCURACY`].
    pub grokked_at: Option<usize>,
    pub epochs_per_second: f64,
}

/// The last epoch of the chunk starting at `start`: chunks end at checkpoints and the budget.
fn chunk_end(start: usize, budget: usize, checkpoint_every: usize) -> usize {
    let next_checkpoint = (start / checkpoint_every + 1) * checkpoint_every;
    (start + MAX_EPOCHS_PER_SUBMIT - 1)
        .min(next_checkpoint)
        .min(budget)
}

pub fn train(
    gpu: &Gpu,
    config: &RunConfig,
    out: &Path,
    force: bool,
    progress: bool,
) -> Result<Summary> {
    let dir = RunDir::create(out, force)?;
    let mut config = config.clone();
    config.crate_version = env!("CARGO_PKG_VERSION").to_string();
    config.adapter = gpu.describe();
    dir.write_config(&config)?;
    let split = Split::new(config.model.p, config.frac, config.data_seed);
    dir.write_split(&split)?;

    let params = Params::init(&config.model, config.seed);
    dir.write_checkpoint(0, &params)?;
    let (train_set, test_set) = (split.train_examples(), split.test_examples());
    let mut engine = Engine::new(gpu, &params, &train_set, Some(&test_set), &config.adamw)?;

    let bar = if progress {
        ProgressBar::new(config.epochs as u64)
    } else {
        ProgressBar::hidden()
    };
    bar.set_style(
        ProgressStyle::with_template("{bar:30} {pos}/{len} epochs  {per_sec}  eta {eta}  {msg}")
            .expect("valid template"),
    );
    let started = Instant::now();
    let mut history: Vec<EpochMetrics> = Vec::new();
    let (mut memorised_at, mut grokked_at) = (None, None);
    let mut budget = config.epochs;
    let mut epoch = 1;
    while epoch <= budget {
        let end = chunk_end(epoch, budget, config.checkpoint_every);
        let (eval_every, last_epoch) = (config.eval_every, budget);
        let is_eval = move |e: usize| e.is_multiple_of(eval_every) || e == last_epoch;
        let metrics = engine.run_epochs(epoch, end - epoch + 1, is_eval)?;
        for m in &metrics {
            if !m.train_loss.is_finite() || (is_eval(m.epoch) && !m.test_loss.is_finite()) {
                dir.write_metrics(&history)?;
                bail!(
                    "training diverged at epoch {}: train loss {}, test loss {}; the last good checkpoint stays in {}",
                    m.epoch,
                    m.train_loss,
                    m.test_loss,
                    dir.checkpoint_dir().display()
                );
            }
            if memorised_at.is_none() && m.train_acc >= 1.0 {
                memorised_at = Some(m.epoch);
            }
            if grokked_at.is_none() && m.test_acc >= GROK_ACCURACY {
                grokked_at = Some(m.epoch);
                if let Some(extra) = config.stop_after_grok {
                    budget = budget.min(m.epoch + extra);
                    bar.set_length(budget as u64);
                }
            }
        }
        history.extend(metrics.into_iter().filter(|m| m.epoch <= budget));
        let last = history.last().copied().expect("at least one epoch ran");
        let last_test = history.iter().rev().find(|m| m.test_loss.is_finite());
        bar.set_position(last.epoch as u64);
        bar.set_message(format!(
            "train {:.3e} ({:.1}%)  test {}",
            last.train_loss,
            100.0 * last.train_acc,
            last_test.map_or("-".into(), |t| format!(
                "{:.3e} ({:.1}%)",
                t.test_loss,
                100.0 * t.test_acc
            ))
        ));
        dir.write_metrics(&history)?;
        if last.epoch % config.checkpoint_every == 0 || last.epoch == budget {
            dir.write_checkpoint(last.epoch, &engine.params()?)?;
        }
        epoch = last.epoch + 1;
    }
    bar.finish();
    let seconds = started.elapsed().as_secs_f64();
    let final_metrics = *history.last().expect("at least one epoch");
    Ok(Summary {
        epochs: final_metrics.epoch,
        final_metrics,
        memorised_at,
        grokked_at,
        epochs_per_second: final_metrics.epoch as f64 / seconds,
    })
}

#[cfg(test)]
mod tests {
    use super::chunk_end;

    #[test]
    fn chunks_stop_at_checkpoints_and_budget() {
        assert_eq!(chunk_end(1, 1000, 100), 100);
        assert_eq!(chunk_end(101, 1000, 100), 200);
        assert_eq!(chunk_end(1, 50, 100), 50);
        assert_eq!(chunk_end(1, 5000, 1000), 256);
    }
}
