//! Reading a run's `metrics.csv` back, and the epochs that mark its phases.

use std::path::Path;

use anyhow::{bail, Context, Result};
use serde::Serialize;

use crate::engine::EpochMetrics;
use crate::run::{GROK_ACCURACY, METRICS_HEADER};

/// Header of runs written before the test accuracy was split by transpose (those columns read
/// as NaN).
const HEADER_WITHOUT_SPLIT: &str = "epoch,train_loss,test_loss,train_acc,test_acc";

pub fn read(path: &Path) -> Result<Vec<EpochMetrics>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
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

/// Epochs that split training into Nanda et al.'s three phases, found from the accuracy curves,
/// with sustained criteria (a crossing that falls back is not a phase change):
/// - **memorised**: the first epoch from which train accuracy stays at 100% for [`SUSTAIN`]
///   epochs (or to the end of the run);
/// - **grokked**: the first epoch from which test accuracy stays ≥ 99.9% for [`SUSTAIN`] epochs
///   (or to the end of the run); `first_reached` is the first epoch it reached 99.9% at all;
/// - **cleanup starts** at the first epoch at or after memorisation when accuracy on the test
///   pairs whose transpose was not trained on (the ones only a general algorithm gets right)
///   exceeds [`cleanup_accuracy`] (chance is 1/p); it ends when the model groks. Circuit
///   formation is the stretch between memorisation and cleanup.
///
/// A run that reaches 99.9% and later falls below 99% has a **relapse** each time it does.
#[derive(Clone, Copy, Debug, Default, Serialize)]
pub struct Phases {
    pub memorised: Option<usize>,
    pub cleanup_start: Option<usize>,
    pub grokked: Option<usize>,
    pub first_reached: Option<usize>,
    pub relapses: usize,
    /// The lowest test accuracy recorded after `first_reached`.
    pub lowest_after_first: Option<f32>,
}

/// How long (in epochs) a phase criterion must keep holding.
pub const SUSTAIN: usize = 500;
/// A grokked run relapses when its test accuracy falls below this.
pub const RELAPSE_ACCURACY: f32 = 0.99;

/// The transpose-unseen accuracy that starts cleanup, for `unseen` such test pairs of modulus p:
/// 10%, or chance (1/p) plus four binomial standard errors when that is higher (few pairs at a
/// small p: at p = 23 with 53 such pairs, 15.5%), so that chance alone crosses it with
/// probability below 1e-4.
pub fn cleanup_accuracy(p: usize, unseen: usize) -> f32 {
    let chance = 1.0 / p as f64;
    let se = (chance * (1.0 - chance) / unseen.max(1) as f64).sqrt();
    (chance + 4.0 * se).max(0.1) as f32
}

impl Phases {
    /// The phases of a run's metrics rows (ascending epochs), with the cleanup cut of
    /// [`cleanup_accuracy`].
    pub fn find(rows: &[EpochMetrics], cleanup_cut: f32) -> Phases {
        let sustained = |ok: &dyn Fn(&EpochMetrics) -> bool,
                         finite: &dyn Fn(&EpochMetrics) -> bool| {
            let tested: Vec<&EpochMetrics> = rows.iter().filter(|m| finite(m)).collect();
            (0..tested.len())
                .find(|&i| {
                    let end = tested[i].epoch.saturating_add(SUSTAIN);
                    tested[i..]
                        .iter()
                        .take_while(|m| m.epoch <= end)
                        .all(|m| ok(m))
                })
                .map(|i| tested[i].epoch)
        };
        let memorised = sustained(&|m| m.train_acc >= 1.0, &|m| m.train_acc.is_finite());
        let grokked = sustained(&|m| m.test_acc >= GROK_ACCURACY, &|m| {
            m.test_acc.is_finite()
        });
        let first_reached = rows
            .iter()
            .find(|m| m.test_acc >= GROK_ACCURACY)
            .map(|m| m.epoch);
        let after_first = || {
            rows.iter().filter(move |m| {
                first_reached.is_some_and(|f| m.epoch >= f) && m.test_acc.is_finite()
            })
        };
        let mut relapses = 0;
        let mut up = true;
        for m in after_first() {
            if up && m.test_acc < RELAPSE_ACCURACY {
                relapses += 1;
                up = false;
            } else if !up && m.test_acc >= GROK_ACCURACY {
                up = true;
            }
        }
        let after = memorised.unwrap_or(usize::MAX);
        Phases {
            memorised,
            cleanup_start: rows
                .iter()
                .find(|m| m.epoch >= after && m.test_acc_transpose_unseen > cleanup_cut)
                .map(|m| m.epoch),
            grokked,
            first_reached,
            relapses,
            lowest_after_first: after_first().map(|m| m.test_acc).reduce(f32::min),
        }
    }
}

/// The checkpoint `analyze` takes when none is named, and why: for a run that grokked (by the
/// sustained rule), the checkpoint from the grokking epoch on with the best recorded test
/// accuracy (the latest on a tie: the most cleaned-up of equals); otherwise the last one.
pub fn analysed_checkpoint(
    rows: &[EpochMetrics],
    phases: &Phases,
    checkpoints: &[usize],
) -> Option<(usize, String)> {
    let last = *checkpoints.last()?;
    let Some(grokked) = phases.grokked else {
        let why = if !rows.iter().any(|m| m.test_acc.is_finite()) {
            "the last checkpoint (the run has no accuracy curve)"
        } else {
            "the last checkpoint (the run did not grok by the sustained rule)"
        };
        return Some((last, why.into()));
    };
    let accuracy = |e: usize| {
        rows.iter()
            .find(|m| m.epoch == e)
            .map(|m| m.test_acc)
            .filter(|a| a.is_finite())
    };
    let best = checkpoints
        .iter()
        .filter(|&&e| e >= grokked)
        .filter_map(|&e| accuracy(e).map(|a| (e, a)))
        .fold(None, |best: Option<(usize, f32)>, (e, a)| match best {
            Some((_, b)) if b > a => best,
            _ => Some((e, a)),
        });
    Some(match best {
        Some((e, a)) => (
            e,
            format!(
                "the checkpoint with the best test accuracy ({a:.4}) from the grokking epoch \
                 {grokked} on (the latest on a tie)"
            ),
        ),
        None => (
            last,
            format!(
                "the last checkpoint (none after the grokking epoch {grokked} has a test accuracy)"
            ),
        ),
    })
}
