//! `bitgrok sweep-report`: the statistics of a sweep per variant (its models differ only in
//! their seed), figures, and a paragraph that answers the study's question from them.

use std::fmt::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::Serialize;

use super::file::{SweepFile, SweepRow};
use crate::analysis::stats::{mann_whitney_p, spread, Spread};
use super::{name_of, number_name, ModelSettings};
use crate::model::Weights;
use crate::plot::{self, BarChart, Scatter};
use crate::report::compare::kind_of;
use crate::run::write_atomic;

/// Grokked runs a variant needs before its algorithm is compared.
const MIN_GROKKED: usize = 3;
/// Significance level of the rank tests.
const ALPHA: f64 = 0.05;
/// A difference in the median clustered fraction smaller than this is not called a different
/// neuron structure, however significant.
const MIN_CLUSTER_DIFFERENCE: f64 = 0.2;
/// Share of grokked runs that must use a sparse set of key frequencies for a variant to count as
/// a sparse Fourier algorithm.
const SPARSE_SHARE: f64 = 0.8;

/// The runs of one variant and their statistics (algorithm measures over grokked runs only).
#[derive(Debug, Serialize)]
pub struct VariantStats {
    pub variant: String,
    /// Short label: the settings that vary across the sweep.
    pub label: String,
    pub runs: usize,
    pub grokked: usize,
    pub grokking_epoch: SpreadJson,
    pub memorisation_epoch: SpreadJson,
    pub key_frequencies: SpreadJson,
    /// Share of grokked runs with a sparse set of key frequencies.
    pub sparse_share: f64,
    pub clustered_fraction: SpreadJson,
    pub distance_irrelevance: SpreadJson,
    pub gradient_symmetricity: SpreadJson,
    /// Share of grokked runs that are clock-like.
    pub clock_share: f64,
    /// Compared with the reference variant (None for the reference itself).
    pub versus_reference: Option<Comparison>,
    #[serde(skip)]
    rows: Vec<SweepRow>,
}

#[derive(Debug, Serialize)]
pub struct SpreadJson {
    pub n: usize,
    pub mean: f64,
    pub sd: f64,
    pub median: f64,
}

impl From<Spread> for SpreadJson {
    fn from(s: Spread) -> Self {
        SpreadJson {
            n: s.n,
            mean: s.mean,
            sd: s.sd,
            median: s.median,
        }
    }
}

#[derive(Debug, Serialize)]
pub struct Comparison {
    pub reference: String,
    /// Two-sided Mann-Whitney p-values.
    pub p_grokking_epoch: f64,
    pub p_key_frequencies: f64,
    pub p_clustered_fraction: f64,
    pub verdict: String,
}

#[derive(Debug, Serialize)]
pub struct SweepReport {
    pub variants: Vec<VariantStats>,
    pub answer: String,
}

/// "= 0.012", "< 0.001" or "n/a".
fn p_text(p: f64) -> String {
    if p.is_nan() {
        "n/a".into()
    } else if p < 1e-3 {
        "< 0.001".into()
    } else {
        format!("= {p:.3}")
    }
}

fn grokked(rows: &[SweepRow]) -> impl Iterator<Item = &SweepRow> {
    rows.iter().filter(|r| r.grokked_at.is_some())
}

fn values(rows: &[SweepRow], f: impl Fn(&SweepRow) -> f64) -> Vec<f64> {
    grokked(rows).map(f).collect()
}

impl VariantStats {
    fn new(variant: String, label: String, rows: Vec<SweepRow>) -> Self {
        let n_grokked = grokked(&rows).count();
        let share = |ok: &dyn Fn(&SweepRow) -> bool| {
            if n_grokked == 0 {
                f64::NAN
            } else {
                grokked(&rows).filter(|r| ok(r)).count() as f64 / n_grokked as f64
            }
        };
        VariantStats {
            label,
            runs: rows.len(),
            grokked: n_grokked,
            grokking_epoch: spread(&values(&rows, |r| r.grokked_at.unwrap_or(0) as f64)).into(),
            memorisation_epoch: spread(
                &rows
                    .iter()
                    .filter_map(|r| r.memorised_at.map(|e| e as f64))
                    .collect::<Vec<_>>(),
            )
            .into(),
            key_frequencies: spread(&values(&rows, |r| r.key_frequencies.len() as f64)).into(),
            sparse_share: share(&|r| !r.key_frequencies.is_empty()),
            clustered_fraction: spread(&values(&rows, |r| r.clustered_fraction)).into(),
            distance_irrelevance: spread(&values(&rows, |r| r.distance_irrelevance)).into(),
            gradient_symmetricity: spread(&values(&rows, |r| r.gradient_symmetricity)).into(),
            clock_share: share(&|r| kind_of(r.distance_irrelevance) == "clock-like"),
            versus_reference: None,
            variant,
            rows,
        }
    }

    fn sparse(&self) -> bool {
        self.sparse_share >= SPARSE_SHARE
    }

    fn majority_kind(&self) -> &'static str {
        if self.clock_share >= 0.5 {
            "clock-like"
        } else {
            "pizza-like"
        }
    }

    /// This variant against the reference, by the criteria [`CRITERIA`] states.
    fn compare(&self, reference: &VariantStats) -> Comparison {
        let p = |f: &dyn Fn(&SweepRow) -> f64| {
            mann_whitney_p(&values(&self.rows, f), &values(&reference.rows, f))
        };
        let p_clustered = p(&|r| r.clustered_fraction);
        let verdict = if self.grokked < MIN_GROKKED || reference.grokked < MIN_GROKKED {
            format!(
                "too few grokked runs to compare ({} and {}; {MIN_GROKKED} needed)",
                self.grokked, reference.grokked
            )
        } else if !self.sparse() || !reference.sparse() {
            "a different algorithm: not both use a sparse set of key frequencies".into()
        } else if self.majority_kind() != reference.majority_kind() {
            format!(
                "a different algorithm: {} where the reference is {}",
                self.majority_kind(),
                reference.majority_kind()
            )
        } else if p_clustered < ALPHA
            && (self.clustered_fraction.median - reference.clustered_fraction.median).abs()
                >= MIN_CLUSTER_DIFFERENCE
        {
            format!(
                "the same family (sparse Fourier features, {}) with a different neuron structure: \
                 median clustered fraction {:.0}% against {:.0}% (p {})",
                self.majority_kind(),
                100.0 * self.clustered_fraction.median,
                100.0 * reference.clustered_fraction.median,
                p_text(p_clustered)
            )
        } else {
            format!(
                "the same algorithm (sparse Fourier features, {}, neuron structure not \
                 distinguishable: p {})",
                self.majority_kind(),
                p_text(p_clustered)
            )
        };
        Comparison {
            reference: reference.variant.clone(),
            p_grokking_epoch: p(&|r| r.grokked_at.unwrap_or(0) as f64),
            p_key_frequencies: p(&|r| r.key_frequencies.len() as f64),
            p_clustered_fraction: p_clustered,
            verdict,
        }
    }
}

/// The verdict's criteria, as the report states them.
const CRITERIA: &str = "Criteria: algorithm measures are taken over the runs that grokked \
(test accuracy ≥ 99.9%), and a variant is compared only with at least 3 of them. A variant uses \
a sparse Fourier algorithm when at least 80% of its grokked runs have a clear set of key \
frequencies (compare's rule); its kind is the majority's (clock-like when distance irrelevance \
≥ 0.5). A variant learns the same algorithm as the reference (full precision when the sweep \
has it) when both are sparse and of the same kind and their clustered-neuron fractions (neurons \
with ≥ 85% of their variance in one frequency) do not differ: a two-sided Mann-Whitney test at \
p < 0.05 together with a difference of at least 20 points in the medians makes them differ. \
Which frequencies a run picks depends on its seed, so they are not compared.";

/// Groups the rows by variant, in plan order.
fn variants(file: &SweepFile) -> Vec<VariantStats> {
    let spec = &file.spec;
    let label = |s: &ModelSettings| {
        let mut parts = Vec::new();
        if spec.weights.len() > 1 {
            parts.push(name_of(s.weights));
        }
        if spec.act_quant.len() > 1 {
            parts.push(name_of(s.act_quant));
        }
        if spec.weight_decay.len() > 1 {
            parts.push(format!("wd {}", number_name(s.weight_decay)));
        }
        if spec.lr.len() > 1 {
            parts.push(format!("lr {}", number_name(s.lr)));
        }
        if parts.is_empty() {
            parts.push(name_of(s.weights));
        }
        parts.join(" ")
    };
    let mut groups: Vec<(String, String, Vec<SweepRow>)> = Vec::new();
    for row in &file.rows {
        let v = row.settings.variant();
        match groups.iter_mut().find(|g| g.0 == v) {
            Some(g) => g.2.push(row.clone()),
            None => groups.push((v, label(&row.settings), vec![row.clone()])),
        }
    }
    groups
        .into_iter()
        .map(|(v, l, rows)| VariantStats::new(v, l, rows))
        .collect()
}

/// Writes the report of the sweep in `dir` to `dir/report`; returns the markdown's path.
pub fn sweep_report(dir: &Path) -> Result<PathBuf> {
    let file = SweepFile::read(dir)?;
    if file.rows.is_empty() {
        crate::usage_bail!(
            "{} has no finished models yet: run the sweep first",
            dir.display()
        );
    }
    let mut variants = variants(&file);
    let reference = variants
        .iter()
        .position(|v| v.rows[0].settings.weights == Weights::F32)
        .unwrap_or(0);
    let comparisons: Vec<Option<Comparison>> = variants
        .iter()
        .enumerate()
        .map(|(i, v)| (i != reference).then(|| v.compare(&variants[reference])))
        .collect();
    for (v, c) in variants.iter_mut().zip(comparisons) {
        v.versus_reference = c;
    }
    let answer = answer(&variants, reference);
    let out = dir.join("report");
    std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
    figures(&variants, &out)?;
    let report = SweepReport { variants, answer };
    write_atomic(
        &out.join("sweep_report.json"),
        serde_json::to_string_pretty(&report)?.as_bytes(),
    )?;
    let path = out.join("sweep_report.md");
    write_atomic(&path, markdown(&file, &report, &out).as_bytes())?;
    Ok(path)
}

/// The paragraph that answers the study's question.
fn answer(variants: &[VariantStats], reference: usize) -> String {
    let r = &variants[reference];
    let mut text = format!(
        "Reference: {} ({} of {} runs grokked",
        r.label, r.grokked, r.runs
    );
    if r.grokked > 0 {
        let _ = write!(
            text,
            ", median epoch {:.0}; median {:.0} key frequencies, {:.0}% of neurons clustered, {}",
            r.grokking_epoch.median,
            r.key_frequencies.median,
            100.0 * r.clustered_fraction.median,
            r.majority_kind()
        );
    }
    text.push_str("). ");
    for v in variants {
        let Some(c) = &v.versus_reference else {
            continue;
        };
        let _ = write!(
            text,
            "{}: {} of {} runs grokked{}; {}. ",
            v.label,
            v.grokked,
            v.runs,
            if v.grokked > 0 && r.grokked > 0 {
                format!(
                    " (median epoch {:.0} against {:.0}, p {})",
                    v.grokking_epoch.median,
                    r.grokking_epoch.median,
                    p_text(c.p_grokking_epoch)
                )
            } else {
                String::new()
            },
            c.verdict
        );
    }
    if variants.len() == 1 {
        text.push_str("The sweep has one variant: nothing to compare it with. ");
    }
    let _ = write!(text, "\n\n{CRITERIA}");
    text
}

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

fn markdown(file: &SweepFile, report: &SweepReport, out: &Path) -> String {
    let mut md = String::from("# Sweep report\n\n");
    let spec = &file.spec;
    let _ = writeln!(
        md,
        "{} models: preset {}, p = {}, frac {}, d_model {}, d_mlp {}, up to {} epochs; seeds {:?}.\n",
        file.rows.len(),
        name_of(spec.preset),
        spec.p,
        spec.frac,
        spec.d_model,
        spec.d_mlp,
        spec.epochs,
        spec.seeds
    );
    let _ = writeln!(md, "{}\n", report.answer);
    md.push_str(
        "| variant | runs | grokked | grokking epoch | key frequencies | clustered neurons (%) | \
         distance irrelevance | gradient symmetricity | clock-like |\n\
         |---|---|---|---|---|---|---|---|---|\n",
    );
    for v in &report.variants {
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            v.label,
            v.runs,
            v.grokked,
            cell(&v.grokking_epoch, 1.0, 0),
            cell(&v.key_frequencies, 1.0, 1),
            cell(&v.clustered_fraction, 100.0, 0),
            cell(&v.distance_irrelevance, 1.0, 2),
            cell(&v.gradient_symmetricity, 1.0, 2),
            if v.grokked == 0 {
                "-".into()
            } else {
                format!("{:.0}%", 100.0 * v.clock_share)
            }
        );
    }
    md.push_str(
        "\nMean ± standard deviation (median) over the runs that grokked; clustered: neurons \
         with ≥ 85% of their activation variance in one frequency. Per-run numbers are in \
         ../sweep.csv, these statistics in sweep_report.json.\n\n",
    );
    // The strip plots exist only once some run has grokked.
    for (name, caption) in FIGURES.iter().filter(|(name, _)| out.join(name).exists()) {
        let _ = writeln!(md, "![{caption}]({name})\n\n{caption}.\n");
    }
    md
}

const FIGURES: [(&str, &str); 3] = [
    (
        "grokking_epochs.png",
        "Grokking epoch of every run that grokked, per variant",
    ),
    ("grokked_fraction.png", "Fraction of runs that grokked"),
    (
        "algorithm_measures.png",
        "Number of key frequencies, clustered-neuron fraction, distance irrelevance and gradient \
         symmetricity of every grokked run, per variant",
    ),
];

/// One point per grokked run at its variant's position (spread sideways so that equal values
/// stay visible).
fn strip(
    variants: &[VariantStats],
    (title, y_label): (&str, &str),
    y_range: (f64, f64),
    f: &dyn Fn(&SweepRow) -> f64,
) -> Scatter {
    let mut points = Vec::new();
    for (i, v) in variants.iter().enumerate() {
        let runs: Vec<&SweepRow> = grokked(&v.rows).collect();
        for (j, r) in runs.iter().enumerate() {
            let offset = if runs.len() > 1 {
                0.5 * (j as f64 / (runs.len() - 1) as f64 - 0.5)
            } else {
                0.0
            };
            points.push((i as f64 + offset, f(r)));
        }
    }
    Scatter {
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

fn figures(variants: &[VariantStats], out: &Path) -> Result<()> {
    let any_grokked = variants.iter().any(|v| v.grokked > 0);
    if any_grokked {
        plot::scatters(
            &out.join(FIGURES[0].0),
            &[strip(
                variants,
                ("Grokking epoch", "epoch"),
                (0.0, 1.0),
                &|r| r.grokked_at.unwrap_or(0) as f64,
            )],
            1,
            (160 * variants.len().max(4) as u32, 420),
        )?;
    }
    plot::bar_charts(
        &out.join(FIGURES[1].0),
        &[BarChart {
            title: "Runs that grokked".into(),
            x_label: "variant".into(),
            y_label: "fraction".into(),
            labels: variants.iter().map(|v| v.label.clone()).collect(),
            values: variants
                .iter()
                .map(|v| v.grokked as f64 / v.runs as f64)
                .collect(),
            highlight: Vec::new(),
            log_y: false,
        }],
        1,
        (160 * variants.len().max(4) as u32, 420),
    )?;
    if any_grokked {
        let panels = [
            strip(variants, ("Key frequencies", "count"), (0.0, 1.0), &|r| {
                r.key_frequencies.len() as f64
            }),
            strip(
                variants,
                ("Clustered-neuron fraction", "fraction"),
                (0.0, 1.0),
                &|r| r.clustered_fraction,
            ),
            strip(
                variants,
                ("Distance irrelevance (≈1 clock)", ""),
                (0.0, 1.0),
                &|r| r.distance_irrelevance,
            ),
            strip(
                variants,
                ("Gradient symmetricity (≈1 pizza)", ""),
                (0.0, 1.0),
                &|r| r.gradient_symmetricity,
            ),
        ];
        plot::scatters(
            &out.join(FIGURES[2].0),
            &panels,
            2,
            (120 * variants.len().max(4) as u32, 380),
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::ActQuant;

    /// Five grokked runs of `weights` with these clustered fractions and distance irrelevance.
    fn variant(weights: Weights, clustered: [f64; 5], di: f64) -> VariantStats {
        let rows: Vec<SweepRow> = clustered
            .iter()
            .enumerate()
            .map(|(seed, &c)| SweepRow {
                settings: ModelSettings {
                    name: format!("{weights:?}-{seed}"),
                    weights,
                    act_quant: ActQuant::None,
                    weight_decay: 1.0,
                    lr: 1e-3,
                    seed: seed as u64,
                    data_seed: seed as u64,
                },
                run: PathBuf::new(),
                epochs: 2000,
                memorised_at: Some(100),
                grokked_at: Some(1000 + 100 * seed),
                final_train_loss: 1e-3,
                final_test_loss: 1e-3,
                accuracy_all_pairs: 1.0,
                key_frequencies: vec![3, 7],
                key_frequency_share: 0.9,
                clustered_fraction: c,
                restricted_loss: 1e-3,
                excluded_loss: 4.0,
                distance_irrelevance: di,
                gradient_symmetricity: 0.5,
                kind: kind_of(di).into(),
            })
            .collect();
        VariantStats::new(format!("{weights:?}"), format!("{weights:?}"), rows)
    }

    #[test]
    fn verdicts_follow_the_stated_criteria() {
        let fp = variant(Weights::F32, [0.7, 0.75, 0.8, 0.72, 0.78], 0.9);
        let same = variant(Weights::Ternary, [0.71, 0.74, 0.79, 0.73, 0.77], 0.9);
        assert!(same.compare(&fp).verdict.starts_with("the same algorithm"));
        let scattered = variant(Weights::Ternary, [0.02, 0.05, 0.1, 0.03, 0.08], 0.9);
        let c = scattered.compare(&fp);
        assert!(c.p_clustered_fraction < ALPHA, "{}", c.p_clustered_fraction);
        assert!(
            c.verdict.contains("different neuron structure"),
            "{}",
            c.verdict
        );
        let pizza = variant(Weights::Binary, [0.7, 0.75, 0.8, 0.72, 0.78], 0.2);
        assert!(pizza
            .compare(&fp)
            .verdict
            .starts_with("a different algorithm"));
        let mut few = variant(Weights::Binary, [0.7, 0.75, 0.8, 0.72, 0.78], 0.9);
        for r in &mut few.rows[2..] {
            r.grokked_at = None;
        }
        let few = VariantStats::new("few".into(), "few".into(), few.rows);
        assert!(few.compare(&fp).verdict.starts_with("too few grokked runs"));
    }
}
