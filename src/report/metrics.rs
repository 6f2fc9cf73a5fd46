//! Reading a run's `metrics.csv` back, and the epochs that mark its phases.

use std::path::Path;

use anyhow::{bail, Context, Result};
use serde::Serialize;

use crate::engine::EpochMetrics;
use crate::run::{GROK_ACCURACY, METRICS_HEADER};

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

/// Epochs that split training into Nanda et al.'s three phases, found from the accuracy curves:
/// memorisation ends when train accuracy first reaches 100%; cleanup starts when accuracy on the
/// test pairs whose transpose was not trained on (the ones only a general algorithm gets right)
/// first exceeds 10%; it ends when test accuracy first reaches 99.9% (grokked). Circuit
/// formation is the stretch in between.
#[derive(Clone, Copy, Debug, Default, Serialize)]
pub struct Phases {
    pub memorised: Option<usize>,
    pub cleanup_start: Option<usize>,
    pub grokked: Option<usize>,
}

/// Accuracy on transpose-unseen test pairs that marks the start of cleanup.
const CLEANUP_ACCURACY: f32 = 0.1;

impl Phases {
    pub fn find(rows: &[EpochMetrics]) -> Phases {
        let first = |f: &dyn Fn(&EpochMetrics) -> bool| rows.iter().find(|m| f(m)).map(|m| m.epoch);
        let memorised = first(&|m| m.train_acc >= 1.0);
        let after = memorised.unwrap_or(usize::MAX);
        Phases {
            memorised,
            cleanup_start: first(&|m| {
                m.epoch >= after && m.test_acc_transpose_unseen > CLEANUP_ACCURACY
            }),
            grokked: first(&|m| m.test_acc >= GROK_ACCURACY),
        }
    }
}
