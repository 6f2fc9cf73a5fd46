//! Where `=` attends.

use super::{grid_panel, Analysis, Drawn, Figure, PANEL, WIDE};
use crate::plot::{self, BarChart, ColorScale, Heatmap};

/// Mean attention from `=` to each position, per head.
pub(super) fn attention_mean(an: &Analysis) -> Drawn {
    let s = &an.snapshot;
    let c = &s.config;
    let fig = Figure::new(
        "attention_mean.png",
        "Mean attention from = to each position, per head",
        "How much `=` attends to a, b and itself in each head, averaged over all pairs.",
    );
    let heads = c.n_heads;
    let at = &an.summary.attention_to;
    let mut labels = Vec::new();
    let mut values = Vec::new();
    for h in 0..heads {
        for (to, v) in [("a", at.to_a[h]), ("b", at.to_b[h]), ("=", at.to_eq[h])] {
            labels.push(format!("h{h} {to}"));
            values.push(v);
        }
    }
    plot::bar_charts(
        &fig.path(an),
        &[BarChart {
            title: "Mean attention from =".into(),
            x_label: "head, key position".into(),
            y_label: "attention".into(),
            labels,
            values,
            highlight: vec![],
            log_y: false,
        }],
        1,
        WIDE,
    )?;
    Ok(Some(fig))
}

/// Attention from `=` to a over the (a, b) grid, per head.
pub(super) fn attention_grid(an: &Analysis) -> Drawn {
    let s = &an.snapshot;
    let c = &s.config;
    let p = c.p;
    let heads = c.n_heads;
    let fig = Figure::new(
        "attention_grid.png",
        "Attention from = to a over the (a, b) grid",
        "Attention from `=` to a for every input pair; periodic stripes mean the head reads a Fourier feature of the inputs.",
    );
    let to_a: Vec<Vec<f64>> = (0..heads)
        .map(|h| {
            (0..p * p)
                .map(|i| s.attn_pattern[(i * heads + h) * 3])
                .collect()
        })
        .collect();
    let panels: Vec<Heatmap> = to_a
        .iter()
        .enumerate()
        .map(|(h, v)| {
            grid_panel(
                format!("head {h}: attention = → a"),
                v,
                p,
                ColorScale::Sequential,
            )
        })
        .collect();
    plot::heatmaps(&fig.path(an), &panels, heads.min(4), PANEL)?;
    Ok(Some(fig))
}
