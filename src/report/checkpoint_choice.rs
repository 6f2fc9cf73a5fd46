//! The checkpoint `analyze` takes when none is named.

use crate::metrics::{EpochMetrics, Phases};

/// The checkpoint `analyze` takes when none is named, and why: the one with the best recorded
/// test accuracy (the latest on a tie: the most cleaned-up of equals) from the epoch the run
/// grokked (by the sustained rule) on; for a run that generalised without holding it, from the
/// first epoch it generalised on (a relapsed state is not the algorithm it found); otherwise the
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
            format!("epoch {f}, when the run first generalised without holding it"),
        ),
        (None, None) => {
            let why = if !rows.iter().any(|m| m.test_acc.is_finite()) {
                "the last checkpoint (the run has no accuracy curve)"
            } else {
                "the last checkpoint (the run never generalised)"
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
