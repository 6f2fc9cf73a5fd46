//! What `sweep-report` and `study` print alike: the table of variants, the verdicts' criteria
//! and p-values.

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
         null (%) | readout (%) | kind |\n\
         |---|---|---|---|---|---|---|---|---|---|---|---|---|\n",
    );
    for v in variants {
        let _ = writeln!(
            md,
            "| {} | {} | {} / {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
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
            cell(&v.clustered_readout, 100.0, 0),
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

/// What [`variant_table`]'s columns mean.
pub(crate) const TABLE_LEGEND: &str =
    "Mean ± standard deviation (median) over the runs that generalised; held: grokked by the \
sustained rule. Clustered: neurons with ≥ 85% of their variance \
in one frequency, pre- and post-ReLU, and the rectification null's post-ReLU fraction; readout: \
the same pre-ReLU with the MLP input norm's per-pair scale undone (what a neuron reads from the \
residual stream; equal to pre-ReLU for a model without that norm).";

/// "= 0.012", "< 0.001" or "n/a".
pub(crate) fn p_text(p: f64) -> String {
    if p.is_nan() {
        "n/a".into()
    } else if p < 1e-3 {
        "< 0.001".into()
    } else {
        format!("= {p:.3}")
    }
}

/// The verdict's criteria, as the report states them.
pub(crate) const CRITERIA: &str = concat!(
    "Criteria: the level measures are taken over the runs that generalised (",
    crate::generalisation_rule!(),
    "; whether they held it is reported as relapses and the grokked \
count), and a variant is compared only with at least 3 of them. **Features** agree when at least \
80% of both variants' runs have a clear set of key frequencies. The **algorithm** agrees when at \
least 80% of both variants' runs have a loss that depends on the key frequencies alone (removing \
them from W_E, and from the MLP output, leaves the model no better than chance, ln p; removing \
every other frequency from W_E raises the loss by less than 0.1 ln p) and the majority kind is \
the same (clock: distance irrelevance ≥ 0.6 and gradient symmetricity < 0.9; pizza: distance \
irrelevance < 0.4 and gradient symmetricity ≥ 0.9; else mixed); it is undecided when neither \
variant reaches 80%. The **implementation** differs \
when the fractions of neurons with ≥ 85% of their pre-ReLU variance in one frequency differ by a \
two-sided Mann-Whitney test at p < 0.05 after Holm's correction over every test of the report, \
with at least 20 points between the medians. Effects are differences of medians with percentile \
bootstrap 95% intervals (2,000 resamples). Which frequencies a run picks depends on its seed, so \
they are not compared."
);
