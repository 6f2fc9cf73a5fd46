//! The figures of one analysis, as PNG files beside `analysis.json`.

use anyhow::Result;
use nalgebra::DMatrix;

use super::Analysis;
use crate::model::{ParamId, Weights};
use crate::plot::{self, BarChart, ColorScale, Heatmap, LineChart, Scatter, Series};

/// A written figure and what it shows.
pub struct Figure {
    pub file: String,
    pub title: String,
}

const PANEL: (u32, u32) = (560, 440);
const WIDE: (u32, u32) = (900, 440);

fn ticks(labels: &[String]) -> Vec<(usize, String)> {
    labels.iter().cloned().enumerate().collect()
}

fn numbered(n: usize) -> Vec<(usize, String)> {
    (0..n).map(|i| (i, i.to_string())).collect()
}

fn freq_labels(k: usize) -> Vec<String> {
    (1..=k).map(|f| f.to_string()).collect()
}

fn series(label: &str, points: Vec<(f64, f64)>) -> Series {
    Series {
        label: label.into(),
        points,
        dashed: false,
        colour: None,
    }
}

fn dashed(label: &str, points: Vec<(f64, f64)>) -> Series {
    Series {
        label: label.into(),
        points,
        dashed: true,
        colour: None,
    }
}

/// Row-major values of a matrix.
fn row_major(m: &DMatrix<f64>) -> Vec<f64> {
    m.transpose().iter().copied().collect()
}

pub fn write_all(an: &Analysis) -> Result<Vec<Figure>> {
    let mut figs = Vec::new();
    let mut add = |file: &str, title: &str| {
        figs.push(Figure {
            file: file.into(),
            title: title.into(),
        });
        an.out_dir.join(file)
    };
    let s = &an.snapshot;
    let c = &s.config;
    let p = c.p;
    let k = (p - 1) / 2;
    let keys = &an.summary.key_frequencies;
    let key_idx: Vec<usize> = keys.iter().map(|f| f - 1).collect();

    // 1. Training curves.
    let marks: Vec<(f64, String)> = [
        ("memorised", an.phases.memorised),
        ("grokked", an.phases.grokked),
    ]
    .into_iter()
    .filter_map(|(name, e)| e.map(|e| (e as f64, name.to_string())))
    .collect();
    let curve = |f: &dyn Fn(&crate::engine::EpochMetrics) -> f32| -> Vec<(f64, f64)> {
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
    if !panels.is_empty() {
        let columns = panels.len();
        line_charts(
            &add("training_curves.png", "Training curves"),
            &panels,
            columns,
            PANEL,
        )?;
    }

    // 2. Attention.
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
        &add(
            "attention_mean.png",
            "Mean attention from = to each position, per head",
        ),
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
        .map(|(h, v)| Heatmap {
            title: format!("head {h}: attention = → a"),
            values: v,
            rows: p,
            cols: p,
            x_label: "b".into(),
            y_label: "a".into(),
            x_ticks: numbered(p),
            y_ticks: numbered(p),
            scale: ColorScale::Sequential,
        })
        .collect();
    plot::heatmaps(
        &add(
            "attention_grid.png",
            "Attention from = to a over the (a, b) grid",
        ),
        &panels,
        heads.min(4),
        PANEL,
    )?;

    // 3. Neuron activations.
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
    plot::heatmaps(
        &add(
            "neuron_activations.png",
            "MLP neuron activations over (a, b)",
        ),
        &panels,
        shown,
        (420, 380),
    )?;

    // 4. Embedding spectrum and principal components.
    let sv = |v: &[f64]| {
        v.iter()
            .enumerate()
            .map(|(i, &x)| (i as f64 + 1.0, x))
            .collect::<Vec<_>>()
    };
    line_charts(
        &add(
            "embedding_singular_values.png",
            "Singular values of W_E against a Gaussian control",
        ),
        &[LineChart {
            title: "Singular values of W_E (numbers 0..p-1)".into(),
            x_label: "index".into(),
            y_label: "singular value".into(),
            log_y: false,
            series: vec![
                series("W_E", sv(&an.summary.embedding_singular_values)),
                dashed(
                    "Gaussian control",
                    sv(&an.summary.gaussian_control_singular_values),
                ),
            ],
            ..Default::default()
        }],
        1,
        PANEL,
    )?;
    let pcs = &s.principal_components;
    let pc_panel = |i: usize, j: usize| Scatter {
        title: format!("W_E: PC {} vs PC {}", i + 1, j + 1),
        x_label: format!("PC {}", i + 1),
        y_label: format!("PC {}", j + 1),
        points: (0..p).map(|t| (pcs[(t, i)], pcs[(t, j)])).collect(),
        labels: (0..p).map(|t| t.to_string()).collect(),
        ..Default::default()
    };
    let mut pc_panels = vec![pc_panel(0, 1)];
    if pcs.ncols() >= 4 {
        pc_panels.push(pc_panel(2, 3));
    }
    plot::scatters(
        &add(
            "embedding_principal_components.png",
            "Top principal components of the embedding",
        ),
        &pc_panels,
        2,
        PANEL,
    )?;

    // 5. Fourier basis and the embedding in it.
    let basis_values = row_major(&s.basis.matrix);
    plot::heatmaps(
        &add("fourier_basis.png", "The Fourier basis"),
        &[Heatmap {
            title: "Fourier basis".into(),
            values: &basis_values,
            rows: p,
            cols: p,
            x_label: "input x".into(),
            y_label: "component".into(),
            x_ticks: numbered(p),
            y_ticks: ticks(&s.basis.labels),
            scale: ColorScale::Diverging,
        }],
        1,
        (700, 640),
    )?;
    let ef = row_major(&s.embed_fourier);
    plot::heatmaps(
        &add("embedding_fourier.png", "W_E in the Fourier basis"),
        &[Heatmap {
            title: "W_E in the Fourier basis".into(),
            values: &ef,
            rows: p,
            cols: c.d_model,
            x_label: "residual dimension".into(),
            y_label: "Fourier component".into(),
            x_ticks: numbered(c.d_model),
            y_ticks: ticks(&s.basis.labels),
            scale: ColorScale::Diverging,
        }],
        1,
        (760, 640),
    )?;
    let norm_chart = |title: &str, norms: &[f64]| BarChart {
        title: title.into(),
        x_label: "frequency".into(),
        y_label: "norm".into(),
        labels: freq_labels(k),
        values: norms.to_vec(),
        highlight: key_idx.clone(),
        log_y: false,
    };
    plot::bar_charts(
        &add(
            "embedding_fourier_norms.png",
            "Norm of each Fourier component of W_E (key frequencies highlighted)",
        ),
        &[norm_chart(
            "Fourier component norms of W_E",
            &s.embedding_norms,
        )],
        1,
        WIDE,
    )?;
    if !keys.is_empty() {
        let rows: Vec<usize> = keys.iter().flat_map(|&f| [2 * f - 1, 2 * f]).collect();
        let sub = s.embed_fourier.select_rows(rows.iter());
        let dots = row_major(&(&sub * sub.transpose()));
        let names: Vec<String> = rows.iter().map(|&r| s.basis.labels[r].clone()).collect();
        plot::heatmaps(
            &add(
                "key_frequency_dot_products.png",
                "Dot products of the key-frequency components of W_E",
            ),
            &[Heatmap {
                title: "Key-frequency components of W_E: dot products".into(),
                values: &dots,
                rows: rows.len(),
                cols: rows.len(),
                x_label: "component".into(),
                y_label: "component".into(),
                x_ticks: ticks(&names),
                y_ticks: ticks(&names),
                scale: ColorScale::Diverging,
            }],
            1,
            PANEL,
        )?;
    }

    // 6. Key frequencies and their evidence.
    let share_chart = |title: &str, v: &[f64]| BarChart {
        title: title.into(),
        x_label: "frequency".into(),
        y_label: "share of energy".into(),
        labels: freq_labels(k),
        values: v.to_vec(),
        highlight: key_idx.clone(),
        log_y: false,
    };
    plot::bar_charts(
        &add(
            "key_frequencies.png",
            "Key frequencies: energy share of W_E and of the neuron-logit map",
        ),
        &[
            share_chart(
                "W_E: share of Fourier energy",
                &an.summary.embedding_energy_share,
            ),
            share_chart(
                "W_L = W_out W_U: share of Fourier energy",
                &an.summary.logit_map_energy_share,
            ),
        ],
        1,
        WIDE,
    )?;

    // 7. Neurons in the Fourier basis.
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
        &add(
            "neuron_fourier_2d.png",
            "2D Fourier transform of a neuron's activation",
        ),
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
    let order = neuron_order(&s.neuron_fractions, &s.clusters);
    let sorted: Vec<f64> = order
        .iter()
        .flat_map(|&j| {
            s.neuron_fractions
                .row(j)
                .iter()
                .copied()
                .collect::<Vec<_>>()
        })
        .collect();
    plot::heatmaps(
        &add(
            "neuron_frequency_fractions.png",
            "Fraction of each neuron's variance explained by each frequency",
        ),
        &[Heatmap {
            title: "Variance explained by frequency (neurons sorted by cluster)".into(),
            values: &sorted,
            rows: c.d_mlp,
            cols: k,
            x_label: "frequency".into(),
            y_label: "neuron (sorted)".into(),
            x_ticks: (0..k).map(|i| (i, (i + 1).to_string())).collect(),
            y_ticks: vec![],
            scale: ColorScale::Sequential,
        }],
        1,
        (760, 640),
    )?;
    let mut max_frac: Vec<f64> = (0..c.d_mlp)
        .map(|j| s.neuron_fractions.row(j).max())
        .collect();
    max_frac.sort_by(|a, b| b.total_cmp(a));
    let threshold = super::CLUSTER_THRESHOLD;
    let neurons = &an.summary.neurons;
    let (cluster_labels, cluster_values): (Vec<String>, Vec<f64>) = neurons
        .cluster_sizes
        .iter()
        .map(|&(f, n)| (f.to_string(), n as f64))
        .unzip();
    line_charts(
        &add(
            "neuron_max_fraction.png",
            "Largest fraction of variance explained by one frequency, per neuron (sorted)",
        ),
        &[LineChart {
            title: "Max fraction explained by one frequency".into(),
            x_label: "neuron (sorted)".into(),
            y_label: "fraction".into(),
            log_y: false,
            series: vec![
                series(
                    "max fraction",
                    max_frac
                        .iter()
                        .enumerate()
                        .map(|(i, &f)| (i as f64, f))
                        .collect(),
                ),
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
    if !cluster_values.is_empty() {
        plot::bar_charts(
            &add(
                "neuron_clusters.png",
                "Neuron clusters per frequency (≥ 85% of variance)",
            ),
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
    }

    // 8. Quantised weights.
    if c.weights != Weights::F32 {
        quantised_figures(an, &mut add)?;
    }

    // 9. Progress measures.
    let pr = &an.summary.progress;
    let pts = |f: &dyn Fn(&super::ProgressPoint) -> f64| -> Vec<(f64, f64)> {
        pr.iter()
            .map(|q| (q.epoch as f64, f(q)))
            .filter(|(_, y)| y.is_finite())
            .collect()
    };
    let spans = phase_spans(an);
    let mut norm_series = vec![series("latent", pts(&|q| q.sum_squared_weights))];
    if c.weights != Weights::F32 {
        norm_series.push(dashed("quantised", pts(&|q| q.sum_squared_quantised)));
    }
    line_charts(
        &add("progress_measures.png", "Progress measures over training"),
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

    // 10. Clock or pizza: the correct logit over (a + b, a - b).
    let mut grid = vec![0.0; p * p];
    for a in 0..p {
        for b in 0..p {
            let label = (a + b) % p;
            grid[((a + b) % p) * p + (a + p - b) % p] = s.logits[(a * p + b, label)];
        }
    }
    plot::heatmaps(
        &add("clock_pizza.png", "Correct-class logit over (a + b, a − b)"),
        &[Heatmap {
            title: format!(
                "correct logit; distance irrelevance {:.2}, gradient symmetricity {:.2}",
                an.summary.distance_irrelevance, an.summary.gradient_symmetricity
            ),
            values: &grid,
            rows: p,
            cols: p,
            x_label: "(a − b) mod p".into(),
            y_label: "(a + b) mod p".into(),
            x_ticks: numbered(p),
            y_ticks: numbered(p),
            scale: ColorScale::Sequential,
        }],
        1,
        (700, 640),
    )?;
    Ok(figs)
}

/// Line charts without the series that have no points (e.g. the transpose split of runs that
/// predate it).
pub(super) fn line_charts(
    path: &std::path::Path,
    panels: &[LineChart],
    columns: usize,
    size: (u32, u32),
) -> Result<()> {
    let mut panels = panels.to_vec();
    for panel in &mut panels {
        panel.series.retain(|s| !s.points.is_empty());
    }
    plot::line_charts(path, &panels, columns, size)
}

fn grid_panel(title: String, values: &[f64], p: usize, scale: ColorScale) -> Heatmap<'_> {
    Heatmap {
        title,
        values,
        rows: p,
        cols: p,
        x_label: "b".into(),
        y_label: "a".into(),
        x_ticks: numbered(p),
        y_ticks: numbered(p),
        scale,
    }
}

fn best_clustered_neuron(fractions: &DMatrix<f64>) -> usize {
    (0..fractions.nrows())
        .max_by(|&i, &j| fractions.row(i).max().total_cmp(&fractions.row(j).max()))
        .unwrap_or(0)
}

/// Neurons grouped by cluster frequency (unclustered last), then by their largest fraction.
fn neuron_order(fractions: &DMatrix<f64>, clusters: &[Option<usize>]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..clusters.len()).collect();
    order.sort_by(|&i, &j| {
        let key = |n: usize| clusters[n].unwrap_or(usize::MAX);
        key(i)
            .cmp(&key(j))
            .then(fractions.row(j).max().total_cmp(&fractions.row(i).max()))
    });
    order
}

fn phase_spans(an: &Analysis) -> Vec<(f64, f64, String)> {
    let ph = &an.phases;
    let end = an.metrics.last().map_or(0.0, |m| m.epoch as f64);
    let mut spans = Vec::new();
    if let Some(m) = ph.memorised {
        spans.push((0.0, m as f64, "memorisation".to_string()));
        let formation_end = ph.cleanup_start.map_or(end, |e| e as f64);
        spans.push((m as f64, formation_end, "circuit formation".to_string()));
        if let Some(cs) = ph.cleanup_start {
            spans.push((
                cs as f64,
                ph.grokked.map_or(end, |g| g as f64),
                "cleanup".to_string(),
            ));
        }
    }
    spans
}

/// Sign/ternary codes of every quantised matrix, and the composed V·O·W_in product.
fn quantised_figures(
    an: &Analysis,
    add: &mut dyn FnMut(&str, &str) -> std::path::PathBuf,
) -> Result<()> {
    let s = &an.snapshot;
    let c = &s.config;
    let (d, a, m) = (c.d_model, c.d_attn(), c.d_mlp);
    let codes = |id: ParamId| -> Vec<f64> {
        let q = s.effective.get(id);
        let scale = q
            .iter()
            .fold(0.0f64, |acc, x| acc.max(x.abs()))
            .max(f64::MIN_POSITIVE);
        q.iter().map(|x| (x / scale).round()).collect()
    };
    // W_Q/K/V are [H, D, Dh]; shown as D x (H Dh) so heads sit side by side.
    let heads_side_by_side = |v: Vec<f64>| -> Vec<f64> {
        let dh = c.d_head;
        let mut out = vec![0.0; d * a];
        for h in 0..c.n_heads {
            for i in 0..d {
                for e in 0..dh {
                    out[i * a + h * dh + e] = v[(h * d + i) * dh + e];
                }
            }
        }
        out
    };
    let mats: Vec<(String, Vec<f64>, usize, usize)> = [
        ("W_Q", ParamId::WQ, d, a),
        ("W_K", ParamId::WK, d, a),
        ("W_V", ParamId::WV, d, a),
        ("W_O", ParamId::WO, a, d),
        ("W_in", ParamId::WIn, d, m),
        ("W_out", ParamId::WOut, m, d),
    ]
    .into_iter()
    .filter(|&(_, id, _, _)| c.quantises(id))
    .map(|(name, id, rows, cols)| {
        let v = codes(id);
        let per_head = matches!(id, ParamId::WQ | ParamId::WK | ParamId::WV);
        let v = if per_head { heads_side_by_side(v) } else { v };
        (name.to_string(), v, rows, cols)
    })
    .collect();
    let panels: Vec<Heatmap> = mats
        .iter()
        .map(|(name, v, rows, cols)| Heatmap {
            title: format!("{name} ({:?} codes)", c.weights)
                .to_lowercase()
                .replace("w_", "W_"),
            values: v,
            rows: *rows,
            cols: *cols,
            x_label: "column".into(),
            y_label: "row".into(),
            x_ticks: vec![],
            y_ticks: vec![],
            scale: ColorScale::Binary,
        })
        .collect();
    plot::heatmaps(
        &add(
            "quantised_patterns.png",
            "Sign/ternary pattern of each quantised matrix",
        ),
        &panels,
        3,
        (480, 420),
    )?;

    let w_v = DMatrix::from_row_slice(
        d,
        a,
        &heads_side_by_side(s.effective.get(ParamId::WV).to_vec()),
    );
    let w_o = DMatrix::from_row_slice(a, d, s.effective.get(ParamId::WO));
    let w_in = DMatrix::from_row_slice(d, m, s.effective.get(ParamId::WIn));
    let composed = row_major(&(w_v * w_o * w_in));
    plot::heatmaps(
        &add(
            "quantised_composed_v_o_in.png",
            "Composed product of the quantised W_V, W_O and W_in",
        ),
        &[Heatmap {
            title: "Qw(W_V) Qw(W_O) Qw(W_in)".into(),
            values: &composed,
            rows: d,
            cols: m,
            x_label: "MLP neuron".into(),
            y_label: "residual dimension".into(),
            x_ticks: vec![],
            y_ticks: vec![],
            scale: ColorScale::Diverging,
        }],
        1,
        (900, 500),
    )?;
    Ok(())
}
