//! The algorithm at the logits: frequency ablations, clock or pizza.

use super::{captions, numbered, percentile_scale, Analysis, Drawn, Figure, PANEL};
use crate::plot::{self, BarChart, Heatmap};

/// The loss with each key frequency ablated from W_E and from the MLP output.
pub(super) fn frequency_ablations(an: &Analysis) -> Drawn {
    let al = &an.summary.algorithm;
    if al.ablations.is_empty() {
        return Ok(None);
    }
    let fig = Figure::new(
        "frequency_ablations.png",
        "Loss with each key frequency ablated from the embedding and from the MLP output",
        captions::frequency_ablations(&an.summary),
    );
    let ablation_chart = |title: &str, base: f64, per_key: Vec<f64>, rest: &[(&str, f64)]| {
        let mut labels = vec!["none".to_string()];
        labels.extend(al.ablations.iter().map(|a| a.frequency.to_string()));
        labels.extend(rest.iter().map(|r| r.0.to_string()));
        let mut values = vec![base];
        values.extend(per_key);
        values.extend(rest.iter().map(|r| r.1));
        let n = values.len();
        BarChart {
            title: title.into(),
            x_label: "frequency ablated".into(),
            y_label: "loss over all pairs".into(),
            labels,
            values,
            highlight: (1..n).collect(),
            log_y: true,
        }
    };
    plot::bar_charts(
        &fig.path(an),
        &[
            ablation_chart(
                "ablated from W_E",
                al.loss,
                al.ablations.iter().map(|a| a.embedding_loss).collect(),
                &[
                    ("all keys", al.embedding_all_keys_loss),
                    ("all others", al.embedding_non_keys_loss),
                ],
            ),
            ablation_chart(
                "ablated from the MLP output",
                al.mlp_baseline_loss,
                al.ablations.iter().map(|a| a.mlp_loss).collect(),
                &[("all keys", al.mlp_all_keys_loss)],
            ),
        ],
        2,
        PANEL,
    )?;
    Ok(Some(fig))
}

/// The correct logit over (a + b, a − b).
pub(super) fn clock_pizza(an: &Analysis) -> Drawn {
    let s = &an.snapshot;
    let p = s.config.p;
    let fig = Figure::new(
        "clock_pizza.png",
        "Correct-class logit over (a + b, a − b)",
        captions::clock_pizza(&an.summary),
    );
    let mut grid = vec![0.0; p * p];
    for a in 0..p {
        for b in 0..p {
            let label = (a + b) % p;
            grid[((a + b) % p) * p + (a + p - b) % p] = s.logits[(a * p + b, label)];
        }
    }
    plot::heatmaps(
        &fig.path(an),
        &[Heatmap {
            title: format!(
                "correct logit ({}): distance irrelevance {:.2}, gradient symmetricity {:.2}",
                an.summary.clock_pizza.kind,
                an.summary.distance_irrelevance,
                an.summary.gradient_symmetricity
            ),
            values: &grid,
            rows: p,
            cols: p,
            x_label: "(a − b) mod p".into(),
            y_label: "(a + b) mod p".into(),
            x_ticks: numbered(p),
            y_ticks: numbered(p),
            scale: percentile_scale(&grid, 0.01),
        }],
        1,
        (700, 640),
    )?;
    Ok(Some(fig))
}
