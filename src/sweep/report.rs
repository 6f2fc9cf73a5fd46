//! `bitgrok sweep-report`: the statistics of a sweep per variant (its models differ only in
//! their seed), figures, and a paragraph that answers the study's question from them.

use std::fmt::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::Serialize;

use super::figures::{figures, FIGURES};
use super::file::{SweepFile, SweepRow};
pub(crate) use super::tables::{p_text, variant_table, CRITERIA, TABLE_LEGEND};
use super::{name_of, number_name, ModelSettings};
use crate::analysis::stats::{bootstrap_median_difference, holm, mann_whitney_p, spread, Spread};
use crate::model::Weights;
use crate::run::write_atomic;

/// Runs that generalised a variant needs before its algorithm is compared.
const MIN_GENERALISED: usize = 3;
/// Significance level of the rank tests, after Holm's correction over every test of the report.
const ALPHA: f64 = 0.05;
/// A difference in the median pre-ReLU clustered fraction smaller than this is not called a
/// different implementation, however significant.
const MIN_CLUSTER_DIFFERENCE: f64 = 0.2;
/// Share of generalised runs that must pass a level's per-run criterion for the variant to pass it.
const MAJORITY: f64 = 0.8;
/// Bootstrap resamples of the confidence intervals.
const BOOTSTRAP_DRAWS: usize = 2000;

/// The runs of one variant and their statistics (level measures over the runs that generalised,
/// [`crate::metrics::Generalisation`]).
#[derive(Debug, Serialize)]
pub struct VariantStats {
    pub variant: String,
    /// Short label: the settings that vary across the sweep.
    pub label: String,
    pub runs: usize,
    /// Generalised.
    pub generalised: usize,
    /// Held it (the sustained rule).
    pub grokked: usize,
    /// Accuracy on all p² pairs at the analysed checkpoint, over every run.
    pub accuracy_all_pairs: SpreadJson,
    /// First epoch it generalised, over the runs that did.
    pub generalisation_epoch: SpreadJson,
    pub memorisation_epoch: SpreadJson,
    pub relapses: SpreadJson,
    pub key_frequencies: SpreadJson,
    /// Features: share of generalised runs with a sparse set of key frequencies.
    pub sparse_share: f64,
    /// Algorithm: share whose loss depends on the key frequencies alone.
    pub key_algorithm_share: f64,
    pub clock_form_fraction: SpreadJson,
    /// Shares of clock, pizza and mixed runs.
    pub kinds: [(String, f64); 3],
    /// Implementation, at the 0.85 cut.
    pub clustered_pre: SpreadJson,
    pub clustered_post: SpreadJson,
    pub clustered_null: SpreadJson,
    /// What neurons read before the MLP input norm's per-pair scale.
    pub clustered_readout: SpreadJson,
    pub distance_irrelevance: SpreadJson,
    pub gradient_symmetricity: SpreadJson,
    /// Compared with the reference variant (None for the reference itself).
    pub versus_reference: Option<Comparison>,
    #[serde(skip)]
    pub(crate) rows: Vec<SweepRow>,
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

/// One measure of a variant against the reference: the difference of medians with a bootstrap
/// 95% interval, and the Mann-Whitney p-value before and after Holm's correction.
#[derive(Debug, Serialize)]
pub struct Effect {
    pub measure: String,
    pub median_difference: f64,
    pub ci95: (f64, f64),
    pub p: f64,
    pub p_holm: f64,
}

#[derive(Debug, Serialize)]
pub struct Comparison {
    pub reference: String,
    pub effects: Vec<Effect>,
    pub features: String,
    pub algorithm: String,
    pub implementation: String,
}

#[derive(Debug, Serialize)]
pub struct SweepReport {
    pub variants: Vec<VariantStats>,
    pub answer: String,
}

pub(crate) fn generalised(rows: &[SweepRow]) -> impl Iterator<Item = &SweepRow> {
    rows.iter().filter(|r| r.levels.generalised)
}

fn values(rows: &[SweepRow], f: impl Fn(&SweepRow) -> f64) -> Vec<f64> {
    generalised(rows).map(f).collect()
}

/// The measures compared between variants, each with how it reads from a row.
type Measure = (&'static str, fn(&SweepRow) -> f64);
const MEASURES: [Measure; 5] = [
    ("generalisation epoch", |r| {
        r.levels.reached_at.map_or(f64::NAN, |e| e as f64)
    }),
    ("key frequencies", |r| r.key_frequencies.len() as f64),
    ("clock-form fraction", |r| r.levels.clock_form_fraction),
    ("clustered pre-ReLU", |r| r.levels.clustered_pre),
    ("clustered post-ReLU", |r| r.levels.clustered_post),
];

impl VariantStats {
    pub(crate) fn new(variant: String, label: String, rows: Vec<SweepRow>) -> Self {
        let n = generalised(&rows).count();
        let share = |ok: &dyn Fn(&SweepRow) -> bool| {
            if n == 0 {
                f64::NAN
            } else {
                generalised(&rows).filter(|r| ok(r)).count() as f64 / n as f64
            }
        };
        let of = |f: fn(&SweepRow) -> f64| -> SpreadJson { spread(&values(&rows, f)).into() };
        VariantStats {
            label,
            runs: rows.len(),
            generalised: n,
            grokked: rows.iter().filter(|r| r.grokked_at.is_some()).count(),
            accuracy_all_pairs: spread(
                &rows
                    .iter()
                    .map(|r| r.accuracy_all_pairs)
                    .collect::<Vec<_>>(),
            )
            .into(),
            generalisation_epoch: of(MEASURES[0].1),
            memorisation_epoch: spread(
                &rows
                    .iter()
                    .filter_map(|r| r.memorised_at.map(|e| e as f64))
                    .collect::<Vec<_>>(),
            )
            .into(),
            relapses: of(|r| r.levels.relapses as f64),
            key_frequencies: of(MEASURES[1].1),
            sparse_share: share(&|r| r.levels.sparse_features),
            key_algorithm_share: share(&|r| r.levels.key_algorithm),
            clock_form_fraction: of(MEASURES[2].1),
            kinds: ["clock", "pizza", "mixed"]
                .map(|k| (k.to_string(), share(&|r| r.levels.kind == k))),
            clustered_pre: of(MEASURES[3].1),
            clustered_post: of(MEASURES[4].1),
            clustered_null: of(|r| r.levels.clustered_null),
            clustered_readout: of(|r| r.levels.clustered_readout),
            distance_irrelevance: of(|r| r.distance_irrelevance),
            gradient_symmetricity: of(|r| r.gradient_symmetricity),
            versus_reference: None,
            variant,
            rows,
        }
    }

    /// The kind most of its generalised runs are, or "undecided" without a majority.
    fn majority_kind(&self) -> &str {
        self.kinds
            .iter()
            .find(|(_, share)| *share > 0.5)
            .map_or("undecided", |(k, _)| k.as_str())
    }

    /// The effect of each measure against the reference, p-values not yet corrected.
    /// Below [`MIN_GENERALISED`] generalised runs on either side nothing is tested (NaN, which
    /// Holm's correction does not count), as the verdicts compare nothing there.
    pub(crate) fn effects(&self, reference: &VariantStats) -> Vec<Effect> {
        let few = self.generalised < MIN_GENERALISED || reference.generalised < MIN_GENERALISED;
        MEASURES
            .iter()
            .enumerate()
            .map(|(i, (name, f))| {
                if few {
                    return Effect {
                        measure: name.to_string(),
                        median_difference: f64::NAN,
                        ci95: (f64::NAN, f64::NAN),
                        p: f64::NAN,
                        p_holm: f64::NAN,
                    };
                }
                let (a, b) = (values(&self.rows, f), values(&reference.rows, f));
                let (a, b): (Vec<f64>, Vec<f64>) = (
                    a.into_iter().filter(|x| x.is_finite()).collect(),
                    b.into_iter().filter(|x| x.is_finite()).collect(),
                );
                Effect {
                    measure: name.to_string(),
                    median_difference: spread(&a).median - spread(&b).median,
                    ci95: bootstrap_median_difference(&a, &b, BOOTSTRAP_DRAWS, i as u64),
                    p: mann_whitney_p(&a, &b),
                    p_holm: f64::NAN,
                }
            })
            .collect()
    }

    /// This variant against the reference, per level, by the criteria [`CRITERIA`] states;
    /// `effects` carry Holm-corrected p-values.
    pub(crate) fn compare(&self, reference: &VariantStats, effects: Vec<Effect>) -> Comparison {
        let few = self.generalised < MIN_GENERALISED || reference.generalised < MIN_GENERALISED;
        let too_few = || {
            format!(
                "too few runs generalised to compare ({} and {}; {MIN_GENERALISED} needed)",
                self.generalised, reference.generalised
            )
        };
        let both = |x: f64, y: f64| x >= MAJORITY && y >= MAJORITY;
        let features = if few {
            too_few()
        } else if both(self.sparse_share, reference.sparse_share) {
            "same: sparse Fourier features".into()
        } else {
            format!(
                "different: sparse key frequencies in {:.0}% of runs against {:.0}%",
                100.0 * self.sparse_share,
                100.0 * reference.sparse_share
            )
        };
        let either = |x: f64, y: f64| x >= MAJORITY || y >= MAJORITY;
        let algorithm = if few {
            too_few()
        } else if !either(self.key_algorithm_share, reference.key_algorithm_share) {
            format!(
                "undecided: neither is a key-frequency algorithm in {:.0}% of its runs (the loss \
                 depends on the key frequencies alone in {:.0}% against {:.0}%)",
                100.0 * MAJORITY,
                100.0 * self.key_algorithm_share,
                100.0 * reference.key_algorithm_share
            )
        } else if !both(self.key_algorithm_share, reference.key_algorithm_share) {
            format!(
                "different: the loss depends on the key frequencies alone in {:.0}% of runs against {:.0}%",
                100.0 * self.key_algorithm_share,
                100.0 * reference.key_algorithm_share
            )
        } else if self.majority_kind() == "undecided" || reference.majority_kind() == "undecided" {
            "undecided: key-frequency algorithms, but no majority kind (clock, pizza, mixed)".into()
        } else if self.majority_kind() != reference.majority_kind() {
            format!(
                "different: {} where the reference is {}",
                self.majority_kind(),
                reference.majority_kind()
            )
        } else {
            format!("same: key-frequency {} algorithms", self.majority_kind())
        };
        let pre = effects
            .iter()
            .find(|e| e.measure == MEASURES[3].0)
            .expect("the clustered pre-ReLU effect");
        let implementation = if few {
            too_few()
        } else if pre.p_holm < ALPHA && pre.median_difference.abs() >= MIN_CLUSTER_DIFFERENCE {
            format!(
                "different: median pre-ReLU clustered fraction {:.0}% against {:.0}% \
                 (difference {:+.0} points, 95% CI {:+.0} to {:+.0}; Holm-corrected p {})",
                100.0 * self.clustered_pre.median,
                100.0 * reference.clustered_pre.median,
                100.0 * pre.median_difference,
                100.0 * pre.ci95.0,
                100.0 * pre.ci95.1,
                p_text(pre.p_holm)
            )
        } else {
            format!(
                "not distinguishable: median pre-ReLU clustered fraction {:.0}% against {:.0}% \
                 (Holm-corrected p {})",
                100.0 * self.clustered_pre.median,
                100.0 * reference.clustered_pre.median,
                p_text(pre.p_holm)
            )
        };
        Comparison {
            reference: reference.variant.clone(),
            effects,
            features,
            algorithm,
            implementation,
        }
    }
}

/// Groups the rows by variant, in plan order.
fn variants(file: &SweepFile) -> Vec<VariantStats> {
    let spec = &file.spec;
    let label = |s: &ModelSettings| {
        let mut parts: Vec<String> = spec
            .axes
            .iter()
            .zip(&s.axes)
            .filter(|(axis, _)| axis.len() > 1)
            .map(|(_, setting)| format!("{} {setting}", setting.option()))
            .collect();
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
    let mut effects: Vec<Option<Vec<Effect>>> = variants
        .iter()
        .enumerate()
        .map(|(i, v)| (i != reference).then(|| v.effects(&variants[reference])))
        .collect();
    let raw: Vec<f64> = effects.iter().flatten().flatten().map(|e| e.p).collect();
    let mut adjusted = holm(&raw).into_iter();
    for e in effects.iter_mut().flatten().flatten() {
        e.p_holm = adjusted.next().expect("one adjusted p per test");
    }
    let comparisons: Vec<Option<Comparison>> = variants
        .iter()
        .zip(effects)
        .map(|(v, e)| e.map(|e| v.compare(&variants[reference], e)))
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

/// The paragraph that answers the study's question, level by level.
fn answer(variants: &[VariantStats], reference: usize) -> String {
    let r = &variants[reference];
    let mut text = format!(
        "Reference: {} ({} of {} runs generalised, {} held it",
        r.label, r.generalised, r.runs, r.grokked
    );
    if r.generalised > 0 {
        let _ = write!(
            text,
            "; median generalisation epoch {:.0}; median {:.0} key frequencies; {:.0}% of neurons \
             clustered pre-ReLU, {:.0}% post-ReLU (null {:.0}%); {}",
            r.generalisation_epoch.median,
            r.key_frequencies.median,
            100.0 * r.clustered_pre.median,
            100.0 * r.clustered_post.median,
            100.0 * r.clustered_null.median,
            r.majority_kind()
        );
    }
    text.push_str(").\n\n");
    for v in variants {
        let Some(c) = &v.versus_reference else {
            continue;
        };
        let epoch = &c.effects[0];
        let _ = writeln!(
            text,
            "- **{}**: {} of {} runs generalised, {} held it{}. Features: {}. Algorithm: {}. \
             Implementation: {}.",
            v.label,
            v.generalised,
            v.runs,
            v.grokked,
            if v.generalised > 0 && r.generalised > 0 {
                format!(
                    " (median epoch {:.0} against {:.0}, Holm-corrected p {})",
                    v.generalisation_epoch.median,
                    r.generalisation_epoch.median,
                    p_text(epoch.p_holm)
                )
            } else {
                String::new()
            },
            c.features,
            c.algorithm,
            c.implementation
        );
    }
    if variants.len() == 1 {
        text.push_str("The sweep has one variant: nothing to compare it with.\n");
    }
    let _ = write!(text, "\n{CRITERIA}");
    text
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
    for axis in &spec.axes {
        let _ = writeln!(
            md,
            "Axis {}: {}.\n",
            axis[0].option(),
            axis.iter()
                .map(|s| s.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    let _ = writeln!(md, "{}\n", report.answer);
    md.push_str(&variant_table(&report.variants));
    let _ = writeln!(
        md,
        "\n{TABLE_LEGEND} Per-run numbers are in ../sweep.csv, these statistics and every effect \
         (difference of medians, bootstrap 95% interval, p before and after Holm's correction) in \
         sweep_report.json.\n"
    );
    // The strip plot of generalisation epochs exists only once some run has generalised.
    for (name, caption) in FIGURES.iter().filter(|(name, _)| out.join(name).exists()) {
        let _ = writeln!(md, "![{caption}]({name})\n\n{caption}.\n");
    }
    md
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::ActQuant;
    use crate::report::levels::LevelSummary;

    /// Five generalised runs of `weights` with these pre-ReLU clustered fractions and this kind.
    fn variant(weights: Weights, clustered: [f64; 5], kind: &str) -> VariantStats {
        let rows: Vec<SweepRow> = clustered
            .iter()
            .enumerate()
            .map(|(seed, &c)| SweepRow {
                settings: ModelSettings {
                    name: format!("{weights:?}-{seed}"),
                    axes: Vec::new(),
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
                distance_irrelevance: 0.9,
                gradient_symmetricity: 0.5,
                levels: LevelSummary {
                    generalised: true,
                    reached_at: Some(1000 + 100 * seed),
                    sparse_features: true,
                    key_algorithm: true,
                    clock_form_fraction: 0.9,
                    kind: kind.into(),
                    clustered_pre: c,
                    clustered_post: c,
                    ..Default::default()
                },
                trained_on: String::new(),
            })
            .collect();
        VariantStats::new(format!("{weights:?}"), format!("{weights:?}"), rows)
    }

    fn versus(v: &VariantStats, reference: &VariantStats) -> Comparison {
        let mut effects = v.effects(reference);
        for e in &mut effects {
            e.p_holm = e.p;
        }
        v.compare(reference, effects)
    }

    #[test]
    fn verdicts_follow_the_stated_criteria() {
        let fp = variant(Weights::F32, [0.7, 0.75, 0.8, 0.72, 0.78], "clock");
        let same = variant(Weights::Ternary, [0.71, 0.74, 0.79, 0.73, 0.77], "clock");
        let c = versus(&same, &fp);
        assert!(c.features.starts_with("same") && c.algorithm.starts_with("same"));
        assert!(
            c.implementation.starts_with("not distinguishable"),
            "{}",
            c.implementation
        );
        let scattered = variant(Weights::Ternary, [0.02, 0.05, 0.1, 0.03, 0.08], "clock");
        let c = versus(&scattered, &fp);
        assert!(c.effects[3].p < ALPHA, "{}", c.effects[3].p);
        assert!(
            c.implementation.starts_with("different"),
            "{}",
            c.implementation
        );
        assert!(c.algorithm.starts_with("same"), "{}", c.algorithm);
        let pizza = variant(Weights::Binary, [0.7, 0.75, 0.8, 0.72, 0.78], "pizza");
        assert!(versus(&pizza, &fp).algorithm.starts_with("different"));
        let mixed = variant(Weights::Binary, [0.7, 0.75, 0.8, 0.72, 0.78], "mixed");
        assert!(versus(&mixed, &fp).algorithm.starts_with("different"));
        let mut few = variant(Weights::Binary, [0.7, 0.75, 0.8, 0.72, 0.78], "clock");
        for r in &mut few.rows[2..] {
            r.levels.generalised = false;
        }
        let few = VariantStats::new("few".into(), "few".into(), few.rows);
        assert!(versus(&few, &fp).features.starts_with("too few"));
        // The loss depends on the key frequencies alone in 2 of 5 runs: different from a
        // variant where it does in all, undecided against another where it does in 2 of 5.
        let partial = |weights| {
            let mut v = variant(weights, [0.7, 0.75, 0.8, 0.72, 0.78], "clock");
            for r in &mut v.rows[2..] {
                r.levels.key_algorithm = false;
            }
            VariantStats::new(format!("{weights:?}"), format!("{weights:?}"), v.rows)
        };
        let (ternary, binary) = (partial(Weights::Ternary), partial(Weights::Binary));
        let c = versus(&ternary, &fp);
        assert!(c.algorithm.starts_with("different"), "{}", c.algorithm);
        let c = versus(&binary, &ternary);
        assert!(c.algorithm.starts_with("undecided"), "{}", c.algorithm);
    }
}
