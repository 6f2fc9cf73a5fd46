//! `bitgrok compare`: several analysed runs side by side, with a verdict on whether they learned
//! the same algorithm.

use std::fmt::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

pub use super::cache::load_or_analyze;
use super::figures::line_charts;
use super::levels::{LevelSummary, SUFFICIENT_RISE};
use super::{Summary, CLUSTER_THRESHOLD};
use crate::engine::device::Gpu;
use crate::model::name_of;
use crate::plot::{self, BarChart, LineChart, Series};
use crate::run::write_atomic;

/// Implementation: runs differ when their pre-ReLU clustered fractions at the 0.85 cut are this
/// far apart (single runs: no test, a stated margin).
pub const CLUSTER_MARGIN: f64 = 0.2;

fn name(s: &Summary) -> String {
    s.run.file_name().map_or_else(
        || s.run.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    )
}

fn generalised(s: &Summary) -> bool {
    LevelSummary::of(s).generalised
}

/// Whether the run held its generalisation.
pub fn stability(s: &Summary) -> String {
    match (s.phases.grokked, s.phases.first_reached) {
        (Some(g), _) if s.phases.relapses == 0 => format!("grokked at {g}, stable"),
        (Some(g), _) => format!("grokked at {g} after {} relapses", s.phases.relapses),
        (None, Some(f)) => format!(
            "generalised at {f}, not sustained ({} relapses, lowest {:.3})",
            s.phases.relapses,
            s.phases.lowest_after_first.unwrap_or(f32::NAN)
        ),
        (None, None) if generalised(s) => "no accuracy curve; generalised on all pairs".into(),
        (None, None) => "did not generalise".into(),
    }
}

fn sparse_features(s: &Summary) -> bool {
    LevelSummary::of(s).sparse_features
}

fn key_frequency_algorithm(s: &Summary) -> bool {
    LevelSummary::of(s).key_algorithm
}

pub fn kind(s: &Summary) -> String {
    LevelSummary::of(s).kind
}

fn pre_clustered(s: &Summary) -> f64 {
    LevelSummary::of(s).clustered_pre
}

/// A loss with three significant figures, in scientific notation below 0.01.
fn loss_text(x: f64) -> String {
    if x < 0.01 {
        format!("{x:.2e}")
    } else {
        format!("{x:.3}")
    }
}

/// The verdict, one line per level, generated from the numbers, then the criteria.
pub fn verdict(runs: &[Summary]) -> String {
    let names: Vec<String> = runs.iter().map(name).collect();
    let per_run = |f: &dyn Fn(&Summary) -> String| {
        names
            .iter()
            .zip(runs)
            .map(|(n, r)| format!("{} for {n}", f(r)))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let failing = |ok: &dyn Fn(&Summary) -> bool| -> String {
        names
            .iter()
            .zip(runs)
            .filter(|(_, r)| !ok(r))
            .map(|(n, _)| n.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut text = String::new();
    if !runs.iter().all(generalised) {
        let _ = write!(
            text,
            "**Not comparable yet: {} did not generalise** ({}).\n\n",
            failing(&generalised),
            per_run(&stability)
        );
    }
    let shared: Vec<usize> = runs[0]
        .key_frequencies
        .iter()
        .copied()
        .filter(|f| runs.iter().all(|r| r.key_frequencies.contains(f)))
        .collect();
    let features = if runs.iter().all(sparse_features) {
        "same: every run reads the numbers through a sparse set of Fourier frequencies".to_string()
    } else {
        format!(
            "different: {} has no sparse set of key frequencies",
            failing(&sparse_features)
        )
    };
    let _ = writeln!(
        text,
        "- **Features (the embedding): {features}.** Key frequencies {}; they hold {} of the averaged \
         W_E/W_L Fourier energy; shared by all: {}.",
        per_run(&|r| format!("{:?}", r.key_frequencies)),
        per_run(&|r| format!("{:.0}%", 100.0 * r.key_frequency_share)),
        if shared.is_empty() { "none".into() } else { format!("{shared:?}") },
    );
    let kinds_agree = runs.iter().all(|r| kind(r) == kind(&runs[0]));
    let algorithm = if !runs.iter().all(key_frequency_algorithm) {
        format!(
            "different: the logits of {} do not depend on the key frequencies alone",
            failing(&key_frequency_algorithm)
        )
    } else if runs
        .iter()
        .any(|r| kind(r) != "clock" && kind(r) != "pizza")
    {
        "undecided: the logits of every run depend on its key frequencies alone, but clock or pizza is not decided for all".into()
    } else if !kinds_agree {
        "different: both key-frequency algorithms, but not of the same kind (clock vs pizza)".into()
    } else {
        format!(
            "same: key-frequency {} algorithms in every run",
            kind(&runs[0])
        )
    };
    let _ = writeln!(
        text,
        "- **Algorithm (what the logits compute, causally): {algorithm}.** Loss with all key frequencies \
         removed from W_E {}; from the MLP output {}; with every other frequency removed from W_E {} \
         (unablated {}; chance ln p). The clock form explains {} of the logit variance. Kind: {} \
         (distance irrelevance {}; gradient symmetricity {}).",
        per_run(&|r| format!("{:.2}", r.algorithm.embedding_all_keys_loss)),
        per_run(&|r| format!("{:.2}", r.algorithm.mlp_all_keys_loss)),
        per_run(&|r| loss_text(r.algorithm.embedding_non_keys_loss)),
        per_run(&|r| loss_text(r.algorithm.loss)),
        per_run(&|r| format!("{:.0}%", 100.0 * r.algorithm.clock_form_fraction)),
        per_run(&kind),
        per_run(&|r| format!("{:.2}", r.distance_irrelevance)),
        per_run(&|r| format!("{:.2}", r.gradient_symmetricity)),
    );
    let fractions: Vec<f64> = runs.iter().map(pre_clustered).collect();
    let spread = fractions.iter().cloned().fold(f64::NEG_INFINITY, f64::max)
        - fractions.iter().cloned().fold(f64::INFINITY, f64::min);
    let implementation = if spread < CLUSTER_MARGIN {
        "same: neurons carry frequencies equally purely"
    } else {
        "different: some runs' neurons mix frequencies more"
    };
    let _ = writeln!(
        text,
        "- **Implementation (how neurons carry it): {implementation}.** Neurons with ≥ 85% of their \
         pre-ReLU variance in one frequency: {}; median frequencies for 85%: {}. Post-ReLU (Nanda et \
         al.'s measure): {}, against the rectification null's {} (the post-ReLU figure is what \
         rectification leaves of neurons of that purity and firing rate when the two agree); median \
         firing rate {}.",
        per_run(&|r| format!("{:.0}%", 100.0 * pre_clustered(r))),
        per_run(&|r| format!("{}", r.neuron_level.median_frequencies_needed_pre)),
        per_run(&|r| format!(
            "{:.0}%",
            100.0 * r.neuron_level.at(&r.neuron_level.clustered_post, CLUSTER_THRESHOLD)
        )),
        per_run(&|r| format!(
            "{:.0}%",
            100.0 * r.neuron_level.at(&r.neuron_level.null_post, CLUSTER_THRESHOLD)
        )),
        per_run(&|r| format!("{:.0}%", 100.0 * r.neuron_level.median_firing_rate)),
    );
    let _ = writeln!(text, "- **Training:** {}.", per_run(&stability));
    let _ = write!(
        text,
        "\nOne run each: these are illustrations, not findings (a sweep over seeds measures the spread). \
         Criteria: **features** agree when the key-frequency rule finds a clear set for every run (at most \
         K/2 frequencies, set apart from the rest by a factor ≥ 2 in the averaged Fourier energy shares of \
         W_E and W_L, holding ≥ 50% of it); which frequencies is a matter of initialisation, so the overlap \
         is reported but not required. The **algorithm** agrees when every run's loss depends on its key \
         frequencies alone (removing them from W_E, and from the MLP output, leaves it no better than \
         chance; removing every other frequency from W_E raises it by less than {SUFFICIENT_RISE} · ln p) \
         and the runs are of the same kind ({}). The **implementation** agrees when the fractions of \
         neurons with ≥ 85% of their pre-ReLU variance in one frequency lie within {:.0} points of each \
         other. Runs are compared once each has generalised ({}; for a run without an accuracy \
         curve, the same over all pairs); whether it held is reported, not required.",
        super::levels::kind_rule(),
        100.0 * CLUSTER_MARGIN,
        crate::metrics::GENERALISATION_RULE
    );
    text
}

pub fn compare(gpu: &Gpu, runs: &[PathBuf], out: &Path) -> Result<PathBuf> {
    let summaries: Vec<Summary> = runs
        .iter()
        .map(|r| load_or_analyze(gpu, r, true))
        .collect::<Result<_>>()?;
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let cols = summaries.len();
    let names: Vec<String> = summaries.iter().map(name).collect();

    let share_panels: Vec<BarChart> = summaries
        .iter()
        .zip(&names)
        .map(|(s, n)| BarChart {
            title: format!("{n}: mean of W_E and W_L energy shares"),
            x_label: "frequency".into(),
            y_label: "share".into(),
            labels: (1..=s.embedding_energy_share.len())
                .map(|f| f.to_string())
                .collect(),
            values: s
                .embedding_energy_share
                .iter()
                .zip(&s.logit_map_energy_share)
                .map(|(e, l)| 0.5 * (e + l))
                .collect(),
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

    type Curve<'a> = &'a dyn Fn(&super::levels::NeuronLevel) -> &Vec<f64>;
    let threshold_curves = |real: Curve, null: Option<Curve>| {
        let mut series = Vec::new();
        for (i, (s, n)) in summaries.iter().zip(&names).enumerate() {
            let nl = &s.neuron_level;
            let points = |v: &Vec<f64>| {
                nl.thresholds
                    .iter()
                    .copied()
                    .zip(v.iter().copied())
                    .collect()
            };
            series.push(Series {
                label: n.clone(),
                points: points(real(nl)),
                dashed: false,
                colour: Some(i),
            });
            if let Some(null) = null {
                series.push(Series {
                    label: format!("{n} null"),
                    points: points(null(nl)),
                    dashed: true,
                    colour: Some(i),
                });
            }
        }
        series
    };
    let threshold_panel = |title: &str, series: Vec<Series>| LineChart {
        title: title.into(),
        x_label: "threshold (share of variance)".into(),
        y_label: "fraction of neurons".into(),
        series,
        vlines: vec![(CLUSTER_THRESHOLD, "Nanda et al.'s cut".into())],
        y_range: Some((0.0, 1.02)),
        ..Default::default()
    };
    line_charts(
        &out.join("neuron_clustered_vs_threshold.png"),
        &[
            threshold_panel("pre-ReLU", threshold_curves(&|nl| &nl.clustered_pre, None)),
            threshold_panel(
                "post-ReLU, with the rectification null (dashed)",
                threshold_curves(&|nl| &nl.clustered_post, Some(&|nl| &nl.null_post)),
            ),
        ],
        2,
        (620, 460),
    )?;

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
    row(&mut md, "weights / activation quantisation", &|s| {
        format!(
            "{} / {}",
            name_of(s.config.model.weights),
            name_of(s.config.model.act_quant)
        )
    });
    row(&mut md, "analysed epoch", &|s| s.epoch.to_string());
    row(&mut md, "memorised at (sustained)", &|s| {
        s.phases.memorised.map_or("-".into(), |e| e.to_string())
    });
    row(&mut md, "generalised at", &|s| {
        s.phases.first_reached.map_or("-".into(), |e| e.to_string())
    });
    row(&mut md, "grokked at (sustained) / relapses", &|s| {
        format!(
            "{} / {}",
            s.phases.grokked.map_or("-".into(), |e| e.to_string()),
            s.phases.relapses
        )
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
    row(&mut md, "clock form's share of logit variance", &|s| {
        format!("{:.0}%", 100.0 * s.algorithm.clock_form_fraction)
    });
    row(&mut md, "neurons clustered pre-ReLU / null (0.85)", &|s| {
        let l = LevelSummary::of(s);
        format!(
            "{:.0}% / {:.0}%",
            100.0 * l.clustered_pre,
            100.0 * l.clustered_null
        )
    });
    row(&mut md, "neurons clustered post-ReLU (0.85)", &|s| {
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
    md.push_str("\n## Key frequencies\n\n![key frequencies](key_frequencies.png)\n\nThe mean of W_E's and W_L's Fourier energy shares per frequency (what the key-frequency rule reads), key frequencies highlighted, one column per run.\n");
    if !cluster_panels.is_empty() {
        md.push_str("\n## Neuron clusters\n\n![neuron clusters](neuron_clusters.png)\n\nNeurons with at least 85% of their variance in one frequency, per frequency.\n");
    }
    md.push_str("\n## Neurons clustered by frequency, at every threshold\n\n![clustered vs threshold](neuron_clustered_vs_threshold.png)\n\nThe fraction of each run's neurons with at least the threshold's share of their variance in one frequency, pre-ReLU (left) and post-ReLU (right, with each run's rectification null dashed in its colour); one scale for all runs.\n");
    md.push_str("\n## Progress measures\n\n![progress measures](progress_measures.png)\n\nRestricted loss (logits kept along the key-frequency directions) and excluded loss (those removed, train set), losses and weight norms, all runs on one plot.\n");
    let path = out.join("compare.md");
    write_atomic(&path, md.as_bytes())?;
    Ok(path)
}
