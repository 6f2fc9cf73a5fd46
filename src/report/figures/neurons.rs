//! The MLP neurons: activations, frequency profiles pre- and post-ReLU, clusters and the
//! rectification null.

use nalgebra::DMatrix;

use super::{
    captions, grid_panel, line_charts, row_major, series, ticks, Analysis, Drawn, Figure, PANEL,
};
use crate::plot::{self, BarChart, ColorScale, Heatmap, LineChart, Series};
use crate::report::CLUSTER_THRESHOLD;

/// The first neurons over (a, b), pre- and post-ReLU.
pub(super) fn activations(an: &Analysis) -> Drawn {
    let s = &an.snapshot;
    let c = &s.config;
    let p = c.p;
    let fig = Figure::new(
        "neuron_activations.png",
        "MLP neuron activations over (a, b)",
        "The first MLP neurons over the (a, b) grid. Periodic patterns are the signature of the Fourier algorithm.",
    );
    let shown = c.d_mlp.min(4);
    let pre: Vec<Vec<f64>> = (0..shown)
        .map(|j| s.mlp_pre.column(j).iter().copied().collect())
        .collect();
    let post: Vec<Vec<f64>> = pre
        .iter()
        .map(|v| v.iter().map(|x| x.max(0.0)).collect())
        .collect();
    let mut panels = Vec::new();
    for (j, v) in pre.iter().enumerate() {
        panels.push(grid_panel(
            format!("neuron {j}, pre-ReLU"),
            v,
            p,
            ColorScale::Diverging,
        ));
    }
    for (j, v) in post.iter().enumerate() {
        panels.push(grid_panel(
            format!("neuron {j}, post-ReLU"),
            v,
            p,
            ColorScale::Sequential,
        ));
    }
    plot::heatmaps(&fig.path(an), &panels, shown, (420, 380))?;
    Ok(Some(fig))
}

/// The neuron best explained by one frequency, in the 2D Fourier basis.
pub(super) fn fourier_2d(an: &Analysis) -> Drawn {
    let s = &an.snapshot;
    let p = s.config.p;
    let fig = Figure::new(
        "neuron_fourier_2d.png",
        "2D Fourier transform of a neuron's activation",
        "The neuron whose variance is best explained by one frequency, in the 2D Fourier basis; energy in the (const, k), (k, const) and (k, k) terms is the trig-identity structure.",
    );
    let top = best_clustered_neuron(&s.neuron_fractions);
    let fourier_2d = row_major(&crate::analysis::fourier::fourier_2d(
        &s.mlp_pre
            .column(top)
            .iter()
            .map(|x| x.max(0.0))
            .collect::<Vec<_>>(),
        &s.basis,
    ));
    plot::heatmaps(
        &fig.path(an),
        &[Heatmap {
            title: format!("neuron {top}: activation in the 2D Fourier basis"),
            values: &fourier_2d,
            rows: p,
            cols: p,
            x_label: "component of b".into(),
            y_label: "component of a".into(),
            x_ticks: ticks(&s.basis.labels),
            y_ticks: ticks(&s.basis.labels),
            scale: ColorScale::Diverging,
        }],
        1,
        (700, 640),
    )?;
    Ok(Some(fig))
}

/// Variance explained per neuron and frequency, pre- and post-ReLU, on one scale.
pub(super) fn frequency_fractions(an: &Analysis) -> Drawn {
    let s = &an.snapshot;
    let c = &s.config;
    let k = s.basis.num_frequencies();
    let fig = Figure::new(
        "neuron_frequency_fractions.png",
        "Fraction of each neuron's variance explained by each frequency, pre- and post-ReLU",
        "Each row is a neuron, each column a frequency, on one 0–1 scale (the 0.85 cut marked on the colour bar); neurons grouped by their dominant pre-ReLU frequency, each group by its largest share.",
    );
    let order = neuron_order(&s.neuron_fractions_pre);
    let sorted = |fractions: &DMatrix<f64>| -> Vec<f64> {
        order
            .iter()
            .flat_map(|&j| fractions.row(j).iter().copied().collect::<Vec<_>>())
            .collect()
    };
    let (pre_sorted, post_sorted) = (sorted(&s.neuron_fractions_pre), sorted(&s.neuron_fractions));
    let threshold = CLUSTER_THRESHOLD;
    let fraction_panel = |title: &str, values| Heatmap {
        title: title.into(),
        values,
        rows: c.d_mlp,
        cols: k,
        x_label: "frequency".into(),
        y_label: "neuron (by dominant pre-ReLU frequency)".into(),
        x_ticks: (0..k).map(|i| (i, (i + 1).to_string())).collect(),
        y_ticks: vec![],
        scale: ColorScale::Fixed {
            lo: 0.0,
            hi: 1.0,
            mark: Some(threshold),
        },
    };
    plot::heatmaps(
        &fig.path(an),
        &[
            fraction_panel("pre-ReLU", &pre_sorted),
            fraction_panel("post-ReLU (Nanda et al.'s measure)", &post_sorted),
        ],
        2,
        (620, 640),
    )?;
    Ok(Some(fig))
}

/// The largest share per neuron, sorted, pre- and post-ReLU.
pub(super) fn max_fraction(an: &Analysis) -> Drawn {
    let s = &an.snapshot;
    let c = &s.config;
    let threshold = CLUSTER_THRESHOLD;
    let fig = Figure::new(
        "neuron_max_fraction.png",
        "Largest fraction of variance explained by one frequency, per neuron (sorted)",
        captions::max_fraction(&an.summary),
    );
    let max_shares = |fractions: &DMatrix<f64>| -> Vec<(f64, f64)> {
        let mut v: Vec<f64> = (0..c.d_mlp).map(|j| fractions.row(j).max()).collect();
        v.sort_by(|a, b| b.total_cmp(a));
        v.into_iter()
            .enumerate()
            .map(|(i, f)| (i as f64, f))
            .collect()
    };
    line_charts(
        &fig.path(an),
        &[LineChart {
            title: "Max fraction explained by one frequency".into(),
            x_label: "neuron (sorted)".into(),
            y_label: "fraction".into(),
            log_y: false,
            series: vec![
                series("pre-ReLU", max_shares(&s.neuron_fractions_pre)),
                series("post-ReLU", max_shares(&s.neuron_fractions)),
                Series {
                    label: format!("{threshold} threshold"),
                    points: vec![(0.0, threshold), (c.d_mlp as f64, threshold)],
                    dashed: true,
                    colour: None,
                },
            ],
            vlines: vec![],
            spans: vec![],
            y_range: Some((0.0, 1.02)),
        }],
        1,
        PANEL,
    )?;
    Ok(Some(fig))
}

/// Post-ReLU clusters per frequency.
pub(super) fn clusters(an: &Analysis) -> Drawn {
    let neurons = &an.summary.neurons;
    let (cluster_labels, cluster_values): (Vec<String>, Vec<f64>) = neurons
        .cluster_sizes
        .iter()
        .map(|&(f, n)| (f.to_string(), n as f64))
        .unzip();
    if cluster_values.is_empty() {
        return Ok(None);
    }
    let fig = Figure::new(
        "neuron_clusters.png",
        "Neuron clusters per frequency (≥ 85% of variance)",
        captions::clusters(&an.summary),
    );
    plot::bar_charts(
        &fig.path(an),
        &[BarChart {
            title: format!(
                "{} of {} neurons clustered",
                neurons.clustered, neurons.d_mlp
            ),
            x_label: "frequency".into(),
            y_label: "neurons".into(),
            labels: cluster_labels,
            values: cluster_values,
            highlight: vec![],
            log_y: false,
        }],
        1,
        PANEL,
    )?;
    Ok(Some(fig))
}

/// Clustered fractions at every threshold, pre- and post-ReLU, with the rectification null.
pub(super) fn clustered_vs_threshold(an: &Analysis) -> Drawn {
    let threshold = CLUSTER_THRESHOLD;
    let fig = Figure::new(
        "neuron_clustered_vs_threshold.png",
        "Neurons clustered by frequency at every threshold, pre- and post-ReLU, with the rectification null",
        captions::clustered_vs_threshold(&an.summary),
    );
    let nl = &an.summary.neuron_level;
    let curve = |values: &[f64]| -> Vec<(f64, f64)> {
        nl.thresholds
            .iter()
            .copied()
            .zip(values.iter().copied())
            .collect()
    };
    let coloured = |label: &str, values: &[f64], colour: usize, dashed: bool| Series {
        label: label.into(),
        points: curve(values),
        dashed,
        colour: Some(colour),
    };
    line_charts(
        &fig.path(an),
        &[LineChart {
            title: "Fraction of neurons with one frequency ≥ threshold".into(),
            x_label: "threshold (share of variance)".into(),
            y_label: "fraction of neurons".into(),
            log_y: false,
            series: vec![
                coloured("pre-ReLU", &nl.clustered_pre, 0, false),
                coloured("pre-ReLU, importance-weighted", &nl.weighted_pre, 0, true),
                coloured("post-ReLU", &nl.clustered_post, 1, false),
                coloured("post-ReLU, importance-weighted", &nl.weighted_post, 1, true),
                coloured("null: same purity and firing rate", &nl.null_post, 2, true),
                coloured("null: pure, same firing rate", &nl.pure_null_post, 7, true),
            ],
            vlines: vec![(threshold, "Nanda et al.'s cut".into())],
            spans: vec![],
            y_range: Some((0.0, 1.02)),
        }],
        1,
        (760, 520),
    )?;
    Ok(Some(fig))
}

fn best_clustered_neuron(fractions: &DMatrix<f64>) -> usize {
    (0..fractions.nrows())
        .max_by(|&i, &j| fractions.row(i).max().total_cmp(&fractions.row(j).max()))
        .unwrap_or(0)
}

/// Neurons grouped by their dominant frequency (those without variance last), each group by
/// its largest share, descending: neurons of one frequency sit together whether or not they
/// pass a threshold.
fn neuron_order(fractions: &DMatrix<f64>) -> Vec<usize> {
    let profiles = crate::analysis::neuron_measures::NeuronProfile::all(fractions);
    let mut order: Vec<usize> = (0..profiles.len()).collect();
    order.sort_by(|&i, &j| {
        let key = |n: usize| profiles[n].dominant.unwrap_or(usize::MAX);
        key(i)
            .cmp(&key(j))
            .then(profiles[j].max_share.total_cmp(&profiles[i].max_share))
    });
    order
}
