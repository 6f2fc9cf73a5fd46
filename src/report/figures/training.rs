//! Training curves and progress measures.

use super::{captions, dashed, line_charts, series, Analysis, Drawn, Figure, PANEL};
use crate::metrics::Phases;
use crate::model::Weights;
use crate::plot::LineChart;

/// Loss and accuracy per epoch, phases marked.
pub(super) fn training_curves(an: &Analysis) -> Drawn {
    let fig = Figure::new(
        "training_curves.png",
        "Training curves",
        captions::training_curves(&an.summary),
    );
    let marks: Vec<(f64, String)> = [
        ("memorised", an.phases.memorised),
        (
            "generalised",
            an.phases
                .first_reached
                .filter(|&f| Some(f) != an.phases.grokked),
        ),
        ("grokked", an.phases.grokked),
    ]
    .into_iter()
    .filter_map(|(name, e)| e.map(|e| (e as f64, name.to_string())))
    .collect();
    let marks = merge_close(marks, an.metrics.last().map_or(0.0, |m| m.epoch as f64));
    let curve = |f: &dyn Fn(&crate::metrics::EpochMetrics) -> f32| -> Vec<(f64, f64)> {
        an.metrics
            .iter()
            .map(|m| (m.epoch as f64, f(m) as f64))
            .filter(|(_, y)| y.is_finite())
            .collect()
    };
    let mut panels = vec![
        LineChart {
            title: "Loss".into(),
            x_label: "epoch".into(),
            y_label: "cross-entropy".into(),
            log_y: true,
            series: vec![
                series("train", curve(&|m| m.train_loss)),
                series("test", curve(&|m| m.test_loss)),
            ],
            vlines: marks.clone(),
            spans: vec![],
            y_range: None,
        },
        LineChart {
            title: "Accuracy".into(),
            x_label: "epoch".into(),
            y_label: "accuracy".into(),
            log_y: false,
            series: vec![
                series("train", curve(&|m| m.train_acc)),
                series("test", curve(&|m| m.test_acc)),
                dashed(
                    "test, transpose in train",
                    curve(&|m| m.test_acc_transpose_seen),
                ),
                dashed(
                    "test, transpose not in train",
                    curve(&|m| m.test_acc_transpose_unseen),
                ),
            ],
            vlines: marks,
            spans: vec![],
            y_range: Some((0.0, 1.02)),
        },
    ];
    // Imported runs may have loss curves without accuracies, or no curves at all.
    panels.retain(|panel| panel.series.iter().any(|s| !s.points.is_empty()));
    if panels.is_empty() {
        return Ok(None);
    }
    let columns = panels.len();
    line_charts(&fig.path(an), &panels, columns, PANEL)?;
    Ok(Some(fig))
}

/// Restricted/excluded loss, weight norms and Gini over the checkpoints, phases shaded.
pub(super) fn progress_measures(an: &Analysis) -> Drawn {
    let s = &an.snapshot;
    let c = &s.config;
    let fig = Figure::new(
        "progress_measures.png",
        "Progress measures over training",
        captions::progress_measures(&an.summary),
    );
    let pr = &an.summary.progress;
    let pts = |f: &dyn Fn(&crate::report::ProgressPoint) -> f64| -> Vec<(f64, f64)> {
        pr.iter()
            .map(|q| (q.epoch as f64, f(q)))
            .filter(|(_, y)| y.is_finite())
            .collect()
    };
    let end = an.metrics.last().map_or(0.0, |m| m.epoch as f64);
    let spans = phase_spans(&an.phases, end);
    let mut norm_series = vec![series("latent", pts(&|q| q.sum_squared_weights))];
    if c.weights != Weights::F32 {
        norm_series.push(dashed("quantised", pts(&|q| q.sum_squared_quantised)));
    }
    line_charts(
        &fig.path(an),
        &[
            LineChart {
                title: "Restricted and excluded loss".into(),
                x_label: "epoch".into(),
                y_label: "loss".into(),
                log_y: true,
                series: vec![
                    series("train", pts(&|q| q.train_loss)),
                    series("test", pts(&|q| q.test_loss)),
                    dashed("restricted", pts(&|q| q.restricted_loss)),
                    dashed("excluded (train)", pts(&|q| q.excluded_loss)),
                ],
                vlines: vec![],
                spans: spans.clone(),
                y_range: None,
            },
            LineChart {
                title: "Sum of squared weights".into(),
                x_label: "epoch".into(),
                y_label: "sum of squares".into(),
                log_y: false,
                series: norm_series,
                vlines: vec![],
                spans: spans.clone(),
                y_range: None,
            },
            LineChart {
                title: "Gini coefficient of Fourier norms".into(),
                x_label: "epoch".into(),
                y_label: "Gini".into(),
                log_y: false,
                series: vec![
                    series("W_E", pts(&|q| q.gini_embedding)),
                    series("W_L", pts(&|q| q.gini_logit_map)),
                ],
                vlines: vec![],
                spans,
                y_range: Some((0.0, 1.0)),
            },
        ],
        3,
        (520, 420),
    )?;
    Ok(Some(fig))
}

/// The phases as spans of epochs up to `end`, the last epoch. A phase that takes no epochs is
/// left out: with quantised weights train accuracy can flicker after test accuracy has
/// settled, so memorisation may be sustained only after grokking, and cleanup then has no
/// epochs between its start and the grokking epoch.
fn phase_spans(ph: &Phases, end: f64) -> Vec<(f64, f64, String)> {
    let mut spans = Vec::new();
    if let Some(m) = ph.memorised {
        let m = m as f64;
        spans.push((0.0, m, "memorisation".to_string()));
        let formation_end = ph.cleanup_start.map_or(end, |e| e as f64);
        spans.push((m, formation_end, "circuit formation".to_string()));
        if let Some(cs) = ph.cleanup_start {
            let cleanup_end = ph.grokked.map_or(end, |g| g as f64);
            spans.push((cs as f64, cleanup_end, "cleanup".to_string()));
        }
    }
    spans.retain(|(start, end, _)| end > start);
    spans
}

/// Phase marks closer than 3% of the run's `end` drawn as one line, labelled with each name
/// (their labels would print over each other; the caption gives every epoch).
fn merge_close(mut marks: Vec<(f64, String)>, end: f64) -> Vec<(f64, String)> {
    marks.sort_by(|a, b| a.0.total_cmp(&b.0));
    let mut merged: Vec<(f64, String)> = Vec::new();
    for (epoch, name) in marks {
        match merged.last_mut() {
            Some((last, names)) if epoch - *last < 0.03 * end => *names += &format!(", {name}"),
            _ => merged.push((epoch, name)),
        }
    }
    merged
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn close_phase_marks_share_a_line() {
        let marks = |m: &[(f64, &str)]| m.iter().map(|&(e, n)| (e, n.to_string())).collect();
        // Grokked two epochs before memorisation held (seen at p = 23), and far from both.
        assert_eq!(
            merge_close(
                marks(&[
                    (1123.0, "memorised"),
                    (828.0, "generalised"),
                    (1121.0, "grokked")
                ]),
                3000.0
            ),
            marks(&[(828.0, "generalised"), (1121.0, "grokked, memorised")])
        );
        assert_eq!(merge_close(Vec::new(), 0.0), Vec::new());
    }

    #[test]
    fn phases_without_epochs_are_left_out() {
        let spans = |ph: Phases| -> Vec<String> {
            phase_spans(&ph, 3000.0)
                .into_iter()
                .map(|(a, b, name)| format!("{name} {a}-{b}"))
                .collect()
        };
        let grokked = Phases {
            memorised: Some(200),
            cleanup_start: Some(900),
            grokked: Some(1500),
            ..Phases::default()
        };
        assert_eq!(
            spans(grokked),
            [
                "memorisation 0-200",
                "circuit formation 200-900",
                "cleanup 900-1500"
            ]
        );
        // Memorisation sustained only after the run grokked (seen in a ternary run with the
        // RMS norm and int8 activations): cleanup would end before it starts.
        let late = Phases {
            memorised: Some(2825),
            cleanup_start: Some(2825),
            grokked: Some(2820),
            ..Phases::default()
        };
        assert_eq!(spans(late), ["memorisation 0-2825"]);
        let not_yet = Phases {
            memorised: Some(300),
            ..Phases::default()
        };
        assert_eq!(
            spans(not_yet),
            ["memorisation 0-300", "circuit formation 300-3000"]
        );
    }
}
