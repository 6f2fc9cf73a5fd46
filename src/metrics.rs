//! A run's metrics, one owner for each fact about them: the row of `metrics.csv` (one epoch's
//! losses and accuracies), its writer and reader, and the one rule that finds the phases of
//! training in them, which training (`--stop-after-grok`) and the analyses share.

use std::path::Path;

use anyhow::{bail, Context, Result};
use serde::Serialize;

/// Loss and accuracy of one epoch (test values are NaN when it was not evaluated).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct EpochMetrics {
    pub epoch: usize,
    pub train_loss: f32,
    pub train_acc: f32,
    pub test_loss: f32,
    pub test_acc: f32,
    /// Test accuracy on pairs whose transpose is in the train set (free for a model symmetric
    /// in a and b), and on the others (which only generalisation gets right).
    pub test_acc_transpose_seen: f32,
    pub test_acc_transpose_unseen: f32,
    /// False once AdamW has produced a NaN or infinite parameter (at this epoch or before).
    pub params_finite: bool,
}

impl EpochMetrics {
    /// The same metrics without the test columns (an epoch a run does not evaluate).
    pub fn untested(self) -> Self {
        EpochMetrics {
            test_loss: f32::NAN,
            test_acc: f32::NAN,
            test_acc_transpose_seen: f32::NAN,
            test_acc_transpose_unseen: f32::NAN,
            ..self
        }
    }
}

/// The header of `metrics.csv`.
pub const HEADER: &str =
    "epoch,train_loss,test_loss,train_acc,test_acc,test_acc_transpose_seen,test_acc_transpose_unseen";

/// `metrics.csv`'s text for `rows`.
pub fn csv(rows: &[EpochMetrics]) -> String {
    let mut csv = String::from(HEADER);
    csv.push('\n');
    for m in rows {
        csv.push_str(&format!(
            "{},{:e},{:e},{},{},{},{}\n",
            m.epoch,
            m.train_loss,
            m.test_loss,
            m.train_acc,
            m.test_acc,
            m.test_acc_transpose_seen,
            m.test_acc_transpose_unseen
        ));
    }
    csv
}

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
        Some(HEADER) => true,
        Some(HEADER_WITHOUT_SPLIT) => false,
        _ => bail!(
            "{} does not start with the header {HEADER:?}",
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

/// How long (in epochs) a phase criterion must keep holding.
pub const SUSTAIN: usize = 500;

/// When a test accuracy counts as generalised, and when as a relapse, for a test set of
/// `test_pairs` pairs. Counted in wrong pairs, so that the rule means the same at every size:
/// - **generalised**: at most 0.1% of the test pairs wrong (Nanda et al.'s 99.9%), and never
///   fewer than one allowed. With fewer than 1,000 test pairs 99.9% would ask for every pair:
///   at p = 23 with 80% of the pairs trained (106 test pairs) one wrong pair, 99.06%, would
///   read as never generalised. From 1,000 test pairs on (p = 113 at 30%: 8,940) this is 99.9%.
/// - **relapsed**: 1% of the test pairs wrong (accuracy below 99%), and at least one more than
///   generalising allows.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Generalisation {
    test_pairs: usize,
}

/// The rule of [`Generalisation`] in words, as a literal for `concat!` ([`GENERALISATION_RULE`]).
#[macro_export]
macro_rules! generalisation_rule {
    () => {
        "99.9% of the test pairs right, and all but one of them when there are fewer than 1,000"
    };
}

/// The rule of [`Generalisation`], in words.
pub const GENERALISATION_RULE: &str = generalisation_rule!();

impl Generalisation {
    pub fn new(test_pairs: usize) -> Self {
        Generalisation { test_pairs }
    }

    /// The wrong test pairs generalising allows.
    pub fn allowed_errors(&self) -> usize {
        (self.test_pairs / 1000).max(1)
    }

    /// The wrong pairs an accuracy over the test set stands for (None for no accuracy).
    fn errors(&self, accuracy: f32) -> Option<usize> {
        accuracy
            .is_finite()
            .then(|| ((1.0 - accuracy as f64) * self.test_pairs as f64).round() as usize)
    }

    pub fn reached(&self, accuracy: f32) -> bool {
        self.test_pairs > 0
            && self
                .errors(accuracy)
                .is_some_and(|e| e <= self.allowed_errors())
    }

    pub fn relapsed(&self, accuracy: f32) -> bool {
        let below = (self.test_pairs as f64 * 0.01).floor() as usize + 1;
        self.errors(accuracy)
            .is_some_and(|e| e >= below.max(self.allowed_errors() + 1))
    }
}

/// The transpose-unseen accuracy that starts cleanup, for `unseen` such test pairs of modulus p:
/// 10%, or chance (1/p) plus four binomial standard errors when that is higher (few pairs at a
/// small p: at p = 23 with 53 such pairs, 15.5%), so that chance alone crosses it with
/// probability below 1e-4.
pub fn cleanup_accuracy(p: usize, unseen: usize) -> f32 {
    let chance = 1.0 / p as f64;
    let se = (chance * (1.0 - chance) / unseen.max(1) as f64).sqrt();
    (chance + 4.0 * se).max(0.1) as f32
}

/// The first epoch from which a criterion holds at every recorded epoch of the next [`SUSTAIN`]
/// epochs (or to the end of the run), found as the epochs stream in: a stretch of holding epochs
/// that starts at s is confirmed as soon as the window [s, s + SUSTAIN] is known to hold, or, when
/// the run ends inside it, by [`Sustained::finish`].
#[derive(Clone, Copy, Debug, Default)]
pub struct Sustained {
    start: Option<usize>,
    confirmed: Option<usize>,
}

impl Sustained {
    /// Records whether the criterion holds at `epoch` (epochs ascending).
    pub fn observe(&mut self, epoch: usize, holds: bool) {
        if self.confirmed.is_some() {
            return;
        }
        if let Some(s) = self.start {
            let end = s.saturating_add(SUSTAIN);
            // Every recorded epoch of [s, s + SUSTAIN] held: this one closes the window, or lies
            // past it (where a failure no longer matters).
            if epoch > end || (epoch == end && holds) {
                self.confirmed = Some(s);
                return;
            }
        }
        match (holds, self.start) {
            (true, None) => self.start = Some(epoch),
            (false, _) => self.start = None,
            (true, Some(_)) => {}
        }
    }

    /// The confirmed epoch, if the criterion has held for [`SUSTAIN`] epochs.
    pub fn confirmed(&self) -> Option<usize> {
        self.confirmed
    }

    /// At the end of the run: the confirmed epoch, or the start of a stretch that held to the end.
    pub fn finish(&self) -> Option<usize> {
        self.confirmed.or(self.start)
    }
}

/// Epochs that split training into Nanda et al.'s three phases, found from the accuracy curves,
/// with sustained criteria (a crossing that falls back is not a phase change):
/// - **memorised**: the first epoch from which train accuracy stays at 100% for [`SUSTAIN`]
///   epochs (or to the end of the run);
/// - **grokked**: the first epoch from which test accuracy stays generalised ([`Generalisation`])
///   for [`SUSTAIN`] epochs (or to the end of the run); `first_reached` is the first epoch it
///   generalised at all;
/// - **cleanup starts** at the first epoch at or after memorisation when accuracy on the test
///   pairs whose transpose was not trained on (the ones only a general algorithm gets right)
///   exceeds [`cleanup_accuracy`] (chance is 1/p); it ends when the model groks. Circuit
///   formation is the stretch between memorisation and cleanup.
///
/// A run that generalises and later relapses ([`Generalisation::relapsed`]) has a **relapse**
/// each time it does.
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

impl Phases {
    /// The phases of a run's metrics rows (ascending epochs), with its test set's `rule` and the
    /// cleanup cut of [`cleanup_accuracy`].
    pub fn find(rows: &[EpochMetrics], rule: Generalisation, cleanup_cut: f32) -> Phases {
        let (mut memorised, mut grokked) = (Sustained::default(), Sustained::default());
        for m in rows {
            if m.train_acc.is_finite() {
                memorised.observe(m.epoch, m.train_acc >= 1.0);
            }
            if m.test_acc.is_finite() {
                grokked.observe(m.epoch, rule.reached(m.test_acc));
            }
        }
        let (memorised, grokked) = (memorised.finish(), grokked.finish());
        let first_reached = rows
            .iter()
            .find(|m| rule.reached(m.test_acc))
            .map(|m| m.epoch);
        let after_first = || {
            rows.iter().filter(move |m| {
                first_reached.is_some_and(|f| m.epoch >= f) && m.test_acc.is_finite()
            })
        };
        let mut relapses = 0;
        let mut up = true;
        for m in after_first() {
            if up && rule.relapsed(m.test_acc) {
                relapses += 1;
                up = false;
            } else if !up && rule.reached(m.test_acc) {
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
