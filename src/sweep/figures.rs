//! The figures of `bitgrok sweep-report`: every generalised run per variant, at each level.

use std::path::Path;

use anyhow::Result;

use super::file::SweepRow;
use super::report::VariantStats;
use crate::plot::{self, BarChart, Scatter};

/// The figures' files and captions.
pub(crate) const FIGURES: [(&str, &str); 3] = [
    (
        "grokking_epochs.png",
        "Epoch each run first generalised, per variant",
    ),
    (
        "grokked_fraction.png",
        "Fraction of runs that generalised, and that held it",
    ),
    (
        "algorithm_measures.png",
        "Every run, per variant, at each level (filled: generalised; hollow: did not): key frequencies (features); the clock form's share of the logit variance and the \
         loss with the key frequencies removed from W_E over chance's (algorithm); neurons \
         clustered pre- and post-ReLU at the 0.85 cut, with the rectification null \
         (implementation)",
    ),
];

/// One point per run at its variant's position (spread sideways so that equal values stay
/// visible), filled for a run that generalised and hollow for one that did not.
fn strip(
    variants: &[VariantStats],
    (title, y_label): (&str, &str),
    y_range: (f64, f64),
    f: &dyn Fn(&SweepRow) -> f64,
) -> Scatter {
    let (mut points, mut hollow) = (Vec::new(), Vec::new());
    for (i, v) in variants.iter().enumerate() {
        let runs = &v.rows;
        for (j, r) in runs.iter().enumerate() {
            let offset = if runs.len() > 1 {
                0.5 * (j as f64 / (runs.len() - 1) as f64 - 0.5)
            } else {
                0.0
            };
            points.push((i as f64 + offset, f(r)));
            hollow.push(!r.levels.generalised);
        }
    }
    Scatter {
        hollow,
        title: title.into(),
        x_label: "variant".into(),
        y_label: y_label.into(),
        points,
        labels: Vec::new(),
        x_ticks: variants
            .iter()
            .enumerate()
            .map(|(i, v)| (i as f64, v.label.clone()))
            .collect(),
        y_range: Some(y_range),
    }
}

/// The strip plots and bar charts of `sweep-report`, per variant.
pub(crate) fn figures(variants: &[VariantStats], out: &Path) -> Result<()> {
    let any = variants.iter().any(|v| v.generalised > 0);
    let width = |per: u32| per * variants.len().max(4) as u32;
    if any {
        plot::scatters(
            &out.join(FIGURES[0].0),
            &[strip(
                variants,
                ("Epoch the run first generalised", "epoch"),
                (0.0, 1.0),
                &|r| r.levels.reached_at.map_or(f64::NAN, |e| e as f64),
            )],
            1,
            (width(160), 420),
        )?;
    }
    let fraction = |title: &str, count: &dyn Fn(&VariantStats) -> usize| BarChart {
        title: title.into(),
        x_label: "variant".into(),
        y_label: "fraction of runs".into(),
        labels: variants.iter().map(|v| v.label.clone()).collect(),
        values: variants
            .iter()
            .map(|v| count(v) as f64 / v.runs as f64)
            .collect(),
        highlight: Vec::new(),
        log_y: false,
    };
    plot::bar_charts(
        &out.join(FIGURES[1].0),
        &[
            fraction("Generalised", &|v| v.generalised),
            fraction("Held it (grokked, sustained)", &|v| v.grokked),
        ],
        2,
        (width(120), 420),
    )?;
    let panels = [
        strip(
            variants,
            ("Features: key frequencies", "count"),
            (0.0, 1.0),
            &|r| r.key_frequencies.len() as f64,
        ),
        strip(
            variants,
            (
                "Algorithm: clock form's share of logit variance",
                "fraction",
            ),
            (0.0, 1.0),
            &|r| r.levels.clock_form_fraction,
        ),
        strip(
            variants,
            (
                "Algorithm: loss without the key frequencies / ln p",
                "ratio",
            ),
            (0.0, 1.5),
            &|r| r.levels.all_keys_ablated_over_chance,
        ),
        strip(
            variants,
            ("Implementation: clustered pre-ReLU (0.85)", "fraction"),
            (0.0, 1.0),
            &|r| r.levels.clustered_pre,
        ),
        strip(
            variants,
            ("Implementation: clustered post-ReLU (0.85)", "fraction"),
            (0.0, 1.0),
            &|r| r.levels.clustered_post,
        ),
        strip(
            variants,
            ("Implementation: rectification null, post-ReLU", "fraction"),
            (0.0, 1.0),
            &|r| r.levels.clustered_null,
        ),
    ];
    plot::scatters(&out.join(FIGURES[2].0), &panels, 3, (width(100), 360))?;
    Ok(())
}
