//! `bitgrok compare`: several analysed runs side by side, with a verdict on whether they learned
//! the same algorithm.

use std::fmt::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

pub use super::cache::load_or_analyze;
use super::figures::line_charts;
use super::Summary;
use crate::engine::device::Gpu;
use crate::plot::{self, BarChart, LineChart, Series};
use crate::run::write_atomic;

/// The verdict's criteria (a run's sparseness is [`is_sparse`]).
/// Neurons cluster by frequency when at least this fraction is clustered.
pub const CLUSTERED: f64 = 0.5;
/// Clock-like when distance irrelevance is above this, pizza-like below.
pub const CLOCK_DI: f64 = 0.5;

fn name(s: &Summary) -> String {
    s.run.file_name().map_or_else(
        || s.run.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    )
}

/// The key-frequency rule only accepts a clear set: at most K/2 frequencies, set apart from the
/// rest by a factor ≥ 2 in energy share and holding ≥ 50% of the energy.
/// Grokked: test accuracy reached 99.9% during training or, for a run without an accuracy curve
/// (an imported one), the final model gets 99.9% of all pairs right.
fn generalised(s: &Summary) -> bool {
    let threshold = crate::run::GROK_ACCURACY as f64;
    s.phases.grokked.is_some() || (s.final_test_acc.is_nan() && s.accuracy_all_pairs >= threshold)
}

fn is_sparse(s: &Summary) -> bool {
    !s.key_frequencies.is_empty()
}

pub fn kind(s: &Summary) -> &'static str {
    kind_of(s.distance_irrelevance)
}

/// Clock-like or pizza-like, from distance irrelevance.
pub fn kind_of(distance_irrelevance: f64) -> &'static str {
    if distance_irrelevance >= CLOCK_DI {
        "clock-like"
    } else {
        "pizza-like"
    }
}

/// The verdict paragraph, generated from the numbers.
pub fn verdict(runs: &[Summary]) -> String {
    let names: Vec<String> = runs.iter().map(name).collect();
    let shared: Vec<usize> = runs[0]
        .key_frequencies
        .iter()
        .copied()
        .filter(|f| runs.iter().all(|r| r.key_frequencies.contains(f)))
        .collect();
    let all_sparse = runs.iter().all(is_sparse);
    let all_clustered = runs
        .iter()
        .all(|r| r.neurons.clustered_fraction >= CLUSTERED);
    let same_kind = runs.iter().all(|r| kind(r) == kind(&runs[0]));
    let all_grokked = runs.iter().all(generalised);
    let per_run = |f: &dyn Fn(&Summary) -> String| {
        names
            .iter()
            .zip(runs)
            .map(|(n, r)| format!("{} for {n}", f(r)))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut text = String::new();
    let failing = |ok: &dyn Fn(&Summary) -> bool| -> Vec<String> {
        names
            .iter()
            .zip(runs)
            .filter(|(_, r)| !ok(r))
            .map(|(n, _)| n.clone())
            .collect()
    };
    let headline = if !all_grokked {
        format!(
            "Not comparable yet: {} did not grok",
            failing(&generalised).join(", ")
        )
    } else if !all_sparse {
        format!(
            "Different algorithms: {} {} not use a sparse set of key frequencies",
            failing(&is_sparse).join(", "),
            if failing(&is_sparse).len() == 1 {
                "does"
            } else {
                "do"
            }
        )
    } else if !same_kind {
        "Different algorithms: the runs are not all of the same kind (clock vs pizza)".to_string()
    } else if !all_clustered {
        format!(
            "Same family (sparse Fourier features, same kind), different neuron structure: the neurons of {} do not cluster by frequency",
            failing(&|r| r.neurons.clustered_fraction >= CLUSTERED).join(", ")
        )
    } else {
        "Same algorithm".to_string()
    };
    let _ = write!(text, "**{headline}.** ");
    let _ = write!(
        text,
        "Key frequencies: {} ({} shared by all: {}); they hold {} of the Fourier energy of W_E and W_L (averaged). ",
        per_run(&|r| format!("{:?}", r.key_frequencies)),
        shared.len(),
        if shared.is_empty() {
            "none".into()
        } else {
            format!("{shared:?}")
        },
        per_run(&|r| format!("{:.0}%", 100.0 * r.key_frequency_share))
    );
    let _ = write!(
        text,
        "Neurons clustered by frequency: {}. Distance irrelevance: {} ({}). Grokked: {}.",
        per_run(&|r| format!("{:.0}%", 100.0 * r.neurons.clustered_fraction)),
        per_run(&|r| format!("{:.2}", r.distance_irrelevance)),
        per_run(&|r| kind(r).to_string()),
        per_run(&|r| match r.phases.grokked {
            Some(e) => format!("epoch {e}"),
            None if generalised(r) => "yes (no accuracy curve; accuracy on all pairs)".into(),
            None => "no".into(),
        })
    );
    let _ = write!(
        text,
        "\n\nCriteria: a run uses a sparse Fourier algorithm when the key-frequency rule finds a \
         clear set of frequencies in the averaged Fourier energy shares of W_E and W_L (at most K/2 \
         of them, set apart from the rest by a factor ≥ 2 and holding ≥ 50% of the energy); its \
         neurons cluster when at least {:.0}% have ≥ 85% of their variance in one frequency; it is \
         clock-like when distance irrelevance ≥ {CLOCK_DI}. Runs learned the same algorithm when \
         all of them grokked (for a run without an accuracy curve, such as an imported one: 99.9% \
         of all pairs right), use a sparse Fourier algorithm, cluster, and are of the same kind; \
         which frequencies they pick is a matter of initialisation (different seeds of the same \
         model pick different ones), so the overlap is reported but not required.",
        100.0 * CLUSTERED
    );
    text
}

pub fn compare(gpu: &Gpu, runs: &[PathBuf], out: &Path) -> Result<PathBuf> {
    let summaries: Vec<Summary> = runs
        .iter()
        .map(|r| load_or_analyze(gpu, r))
        .collect::<Result<_>>()?;
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let cols = summaries.len();
    let names: Vec<String> = summaries.iter().map(name).collect();

    let share_panels: Vec<BarChart> = summaries
        .iter()
        .zip(&names)
        .map(|(s, n)| BarChart {
            title: format!("{n}: W_E Fourier energy"),
            x_label: "frequency".into(),
            y_label: "share".into(),
            labels: (1..=s.embedding_energy_share.len())
                .map(|f| f.to_string())
                .collect(),
            values: s.embedding_energy_share.clone(),
            highlight: s.key_frequencies.iter().map(|f| f - 1).collect(),
            log_y: false,
        })
        .collect();
    plot::bar_charts(
        &out.join("key_frequencies.png"),
        &share_panels,
        cols,
        (520, 400),
    )?;

    let cluster_panels: Vec<BarChart> = summaries
        .iter()
        .zip(&names)
        .map(|(s, n)| BarChart {
            title: format!(
                "{n}: {:.0}% clustered",
                100.0 * s.neurons.clustered_fraction
            ),
            x_label: "frequency".into(),
            y_label: "neurons".into(),
            labels: s
                .neurons
                .cluster_sizes
                .iter()
                .map(|(f, _)| f.to_string())
                .collect(),
            values: s
                .neurons
                .cluster_sizes
                .iter()
                .map(|&(_, c)| c as f64)
                .collect(),
            highlight: vec![],
            log_y: false,
        })
        .filter(|b| !b.values.is_empty())
        .collect();
    if !cluster_panels.is_empty() {
        plot::bar_charts(
            &out.join("neuron_clusters.png"),
            &cluster_panels,
            cluster_panels.len(),
            (520, 400),
        )?;
    }

    let curves =
        |f: &dyn Fn(&super::ProgressPoint) -> f64, dashed: bool, suffix: &str| -> Vec<Series> {
            summaries
                .iter()
                .zip(&names)
                .enumerate()
                .map(|(i, (s, n))| Series {
                    label: format!("{n} {suffix}"),
                    points: s
                        .progress
                        .iter()
                        .map(|q| (q.epoch as f64, f(q)))
                        .filter(|(_, y)| y.is_finite())
                        .collect(),
                    dashed,
                    // One colour per run; solid and dashed tell its two curves apart.
                    colour: Some(i),
                })
                .collect()
        };
    let mut losses = curves(&|q| q.restricted_loss, false, "restricted");
    losses.extend(curves(&|q| q.excluded_loss, true, "excluded"));
    let mut tests = curves(&|q| q.test_loss, false, "test");
    tests.extend(curves(&|q| q.train_loss, true, "train"));
    line_charts(
        &out.join("progress_measures.png"),
        &[
            LineChart {
                title: "Restricted and excluded loss".into(),
                x_label: "epoch".into(),
                y_label: "loss".into(),
                log_y: true,
                series: losses,
                ..Default::default()
            },
            LineChart {
                title: "Train and test loss".into(),
                x_label: "epoch".into(),
                y_label: "loss".into(),
                log_y: true,
                series: tests,
                ..Default::default()
            },
            LineChart {
                title: "Sum of squared (latent) weights".into(),
                x_label: "epoch".into(),
                y_label: "sum of squares".into(),
                log_y: false,
                series: curves(&|q| q.sum_squared_weights, false, ""),
                ..Default::default()
            },
        ],
        3,
        (520, 420),
    )?;

    let mut md = String::from("# Comparison\n\n");
    md.push_str(&verdict(&summaries));
    md.push_str("\n\n| | ");
    md.push_str(&names.join(" | "));
    md.push_str(" |\n|---|");
    md.push_str(&"---|".repeat(cols));
    md.push('\n');
    let row = |md: &mut String, label: &str, f: &dyn Fn(&Summary) -> String| {
        let _ = writeln!(
            md,
            "| {label} | {} |",
            summaries.iter().map(f).collect::<Vec<_>>().join(" | ")
        );
    };
    row(&mut md, "weights / activations", &|s| {
        format!(
            "{:?} / {:?}",
            s.config.model.weights, s.config.model.act_quant
        )
    });
    row(&mut md, "memorised at", &|s| {
        s.phases.memorised.map_or("-".into(), |e| e.to_string())
    });
    row(&mut md, "grokked at", &|s| {
        s.phases.grokked.map_or("-".into(), |e| e.to_string())
    });
    row(&mut md, "accuracy (all pairs)", &|s| {
        format!("{:.4}", s.accuracy_all_pairs)
    });
    row(&mut md, "key frequencies", &|s| {
        format!("{:?}", s.key_frequencies)
    });
    row(&mut md, "their share of W_E/W_L energy", &|s| {
        format!("{:.0}%", 100.0 * s.key_frequency_share)
    });
    row(&mut md, "neurons clustered", &|s| {
        format!(
            "{} of {} ({:.0}%)",
            s.neurons.clustered,
            s.neurons.d_mlp,
            100.0 * s.neurons.clustered_fraction
        )
    });
    row(&mut md, "cluster sizes (freq: n)", &|s| {
        s.neurons
            .cluster_sizes
            .iter()
            .map(|(f, c)| format!("{f}: {c}"))
            .collect::<Vec<_>>()
            .join(", ")
    });
    row(&mut md, "final restricted / excluded loss", &|s| {
        s.progress.last().map_or("-".into(), |q| {
            format!("{:.2e} / {:.2e}", q.restricted_loss, q.excluded_loss)
        })
    });
    row(
        &mut md,
        "sum of squared weights (latent / quantised)",
        &|s| {
            s.progress.last().map_or("-".into(), |q| {
                format!(
                    "{:.1} / {:.1}",
                    q.sum_squared_weights, q.sum_squared_quantised
                )
            })
        },
    );
    row(&mut md, "distance irrelevance", &|s| {
        format!("{:.2}", s.distance_irrelevance)
    });
    row(&mut md, "gradient symmetricity", &|s| {
        format!("{:.2}", s.gradient_symmetricity)
    });
    md.push_str("\n## Key frequencies\n\n![key frequencies](key_frequencies.png)\n\nW_E's Fourier energy per frequency, key frequencies highlighted, one column per run.\n");
    if !cluster_panels.is_empty() {
        md.push_str("\n## Neuron clusters\n\n![neuron clusters](neuron_clusters.png)\n\nNeurons with at least 85% of their variance in one frequency, per frequency.\n");
    }
    md.push_str("\n## Progress measures\n\n![progress measures](progress_measures.png)\n\nRestricted loss (logits kept along the key-frequency directions) and excluded loss (those removed, train set), losses and weight norms, all runs on one plot.\n");
    let path = out.join("compare.md");
    write_atomic(&path, md.as_bytes())?;
    Ok(path)
}
