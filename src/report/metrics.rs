//! Reading a run's `metrics.csv` back, and the epochs that mark its phases.

use std::path::Path;

use anyhow::{bail, Context, Result};

use crate::engine::EpochMetrics;
use crate::run::METRICS_HEADER;

/// Header of runs written before the test accuracy was split by transpose (those columns read
/// as NaN).
const HEADER_WITHOUT_SPLIT: &str = "epoch,train_loss,test_loss,train_acc,test_acc";

/// Bytes one row of `metrics.csv` can take (an epoch and six numbers, with room to spare).
const MAX_ROW_BYTES: u64 = 512;

/// Most bytes the `metrics.csv` of a run of `epochs` epochs can take.
pub fn max_len(epochs: usize) -> u64 {
    MAX_ROW_BYTES.saturating_mul(epochs as u64 + 2)
}

/// The rows of the `metrics.csv` of a run of at most `epochs` epochs (the file's size is bounded
/// by what such a run writes).
pub fn read(path: &Path, epochs: usize) -> Result<Vec<EpochMetrics>> {
    let text =
        crate::bounded_read::read_to_string(path, max_len(epochs), "the metrics of this run")?;
    let mut lines = text.lines();
    let split = match lines.next() {
        Some(METRICS_HEADER) => true,
        Some(HEADER_WITHOUT_SPLIT) => false,
        _ => bail!(
            "{} does not start with the header {METRICS_HEADER:?}",
            path.display()
        ),
    };
    lines
        .enumerate()
        .map(|(i, line)| {
            let f: Vec<&str> = line.split(',').collect();
            let num = |j: usize| -> Result<f32> {
                f.get(j).and_then(|s| s.parse().ok()).with_context(|| {
                    format!("{} line {}: bad field {}", path.display(), i + 2, j + 1)
                })
            };
            Ok(EpochMetrics {
                epoch: f[0]
                    .parse()
                    .with_context(|| format!("{} line {}: bad epoch", path.display(), i + 2))?,
                train_loss: num(1)?,
                test_loss: num(2)?,
                train_acc: num(3)?,
                test_acc: num(4)?,
                test_acc_transpose_seen: if split { num(5)? } else { f32::NAN },
                test_acc_transpose_unseen: if split { num(6)? } else { f32::NAN },
                params_finite: true,
            })
        })
        .collect()
}

pub use crate::phases::{cleanup_accuracy, Phases, RELAPSE_ACCURACY, SUSTAIN};

/// The checkpoint `analyze` takes when none is named, and why: the one with the best recorded
/// test accuracy (the latest on a tie: the most cleaned-up of equals) from the epoch the run
/// grokked (by the sustained rule) on; for a run that reached 99.9% without holding it, from
/// the first epoch at 99.9% on (a relapsed state is not the algorithm it found); otherwise the
/// last checkpoint.
pub fn analysed_checkpoint(
    rows: &[EpochMetrics],
    phases: &Phases,
    checkpoints: &[usize],
) -> Option<(usize, String)> {
    let last = *checkpoints.last()?;
    let (from, what) = match (phases.grokked, phases.first_reached) {
        (Some(g), _) => (g, format!("the grokking epoch {g}")),
        (None, Some(f)) => (
            f,
            format!("epoch {f}, when the run first reached 99.9% without holding it"),
        ),
        (None, None) => {
            let why = if !rows.iter().any(|m| m.test_acc.is_finite()) {
                "the last checkpoint (the run has no accuracy curve)"
            } else {
                "the last checkpoint (the run never reached 99.9% test accuracy)"
            };
            return Some((last, why.into()));
        }
    };
    let accuracy = |e: usize| {
        rows.iter()
            .find(|m| m.epoch == e)
            .map(|m| m.test_acc)
            .filter(|a| a.is_finite())
    };
    let best = checkpoints
        .iter()
        .filter(|&&e| e >= from)
        .filter_map(|&e| accuracy(e).map(|a| (e, a)))
        .fold(None, |best: Option<(usize, f32)>, (e, a)| match best {
            Some((_, b)) if b > a => best,
            _ => Some((e, a)),
        });
    Some(match best {
        Some((e, a)) => (
            e,
            format!(
                "the checkpoint with the best test accuracy ({a:.4}) since {what} (the latest on \
                 a tie)"
            ),
        ),
        None => (
            last,
            format!("the last checkpoint (none since {what} has a test accuracy)"),
        ),
    })
}
