//! The table of variants that `sweep-report` and `study` print.

use std::fmt::Write;

use super::report::{SpreadJson, VariantStats};

fn cell(s: &SpreadJson, scale: f64, digits: usize) -> String {
    if s.n == 0 {
        return "-".into();
    }
    format!(
        "{:.digits$} ± {:.digits$} (median {:.digits$})",
        scale * s.mean,
        scale * s.sd,
        scale * s.median
    )
}

/// One row per variant: runs, how many generalised and held it, the accuracy on all pairs of
/// every run, and the level measures (mean ± sd, median) over the runs that generalised.
pub(crate) fn variant_table(variants: &[VariantStats]) -> String {
    let mut md = String::from(
        "| variant | runs | generalised / held | all-pairs accuracy (%), every run | epoch reached | \
         relapses | key frequencies | clock form (%) | clustered pre-ReLU (%) | post-ReLU (%) | \
         null (%) | kind |\n\
         |---|---|---|---|---|---|---|---|---|---|---|---|\n",
    );
    for v in variants {
        let _ = writeln!(
            md,
            "| {} | {} | {} / {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            v.label,
            v.runs,
            v.generalised,
            v.grokked,
            cell(&v.accuracy_all_pairs, 100.0, 1),
            cell(&v.generalisation_epoch, 1.0, 0),
            cell(&v.relapses, 1.0, 1),
            cell(&v.key_frequencies, 1.0, 1),
            cell(&v.clock_form_fraction, 100.0, 0),
            cell(&v.clustered_pre, 100.0, 0),
            cell(&v.clustered_post, 100.0, 0),
            cell(&v.clustered_null, 100.0, 0),
            if v.generalised == 0 {
                "-".into()
            } else {
                v.kinds
                    .iter()
                    .filter(|(_, s)| *s > 0.0)
                    .map(|(k, s)| format!("{k} {:.0}%", 100.0 * s))
                    .collect::<Vec<_>>()
                    .join(", ")
            }
        );
    }
    md
}
