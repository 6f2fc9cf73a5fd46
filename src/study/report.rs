//! The study's report (DIR/study.md, study.json, DIR/figures): per arm, its cells (models that
//! differ only in their seed) and, per factor the arm varies, each level pooled over the arm's
//! other factors and compared with the factor's first level — the fraction of seeds that
//! generalise (Fisher's exact test), and at each level of description the sweep report's
//! measures and verdicts (bootstrap intervals, Mann-Whitney tests). Every p-value is corrected
//! by Holm's method over all the tests of the study.

use std::fmt::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::Serialize;

use super::{ArmPlan, StudyPlan};
use crate::analysis::stats::{fisher_exact_p, holm};
use crate::run::write_atomic;
use crate::sweep::figures::{figures, FIGURES};
use crate::sweep::file::{SweepFile, SweepRow};
use crate::sweep::report::{
    p_text, variant_table, Comparison, VariantStats, CRITERIA, TABLE_LEGEND,
};

/// The fraction of a level's seeds that generalised against the reference level's.
#[derive(Debug, Serialize)]
pub struct RateTest {
    pub generalised: usize,
    pub runs: usize,
    pub reference_generalised: usize,
    pub reference_runs: usize,
    /// Fisher's exact test, two-sided, before and after Holm's correction.
    pub p: f64,
    pub p_holm: f64,
}

/// One level of a factor: its runs pooled over the arm's other factors.
#[derive(Debug, Serialize)]
pub struct Level {
    pub value: String,
    #[serde(flatten)]
    pub stats: VariantStats,
    /// Against the factor's first level (None for that level).
    pub rate: Option<RateTest>,
}

#[derive(Debug, Serialize)]
pub struct Factor {
    /// The `sweep` option it is, e.g. `weights`, `linear-norm`.
    pub option: String,
    /// In the order the design lists them; the first is the reference.
    pub levels: Vec<Level>,
}

impl Factor {
    /// Its levels' statistics, each labelled with the option and the level.
    fn level_stats(&self) -> Vec<VariantStats> {
        self.levels
            .iter()
            .map(|l| {
                VariantStats::new(
                    l.stats.variant.clone(),
                    l.stats.label.clone(),
                    l.stats.rows.clone(),
                )
            })
            .collect()
    }
}

#[derive(Debug, Serialize)]
pub struct ArmReport {
    pub name: String,
    pub question: String,
    pub options: String,
    /// Models the arm plans, and how many are trained and analysed.
    pub planned: usize,
    pub finished: usize,
    /// Its models grouped by every setting but the seed.
    pub cells: Vec<VariantStats>,
    pub factors: Vec<Factor>,
}

#[derive(Debug, Serialize)]
pub struct StudyReport {
    pub title: String,
    pub question: String,
    pub reduced: bool,
    /// Adapters and bitgrok versions the runs were trained with.
    pub adapters: Vec<String>,
    pub arms: Vec<ArmReport>,
}

pub const MARKDOWN_NAME: &str = "study.md";
pub const JSON_NAME: &str = "study.json";

/// Writes the report of the study in `out` from every arm trained so far (its plan and the
/// arms' sweep.json are all it reads); returns the markdown's path.
pub fn write(out: &Path) -> Result<PathBuf> {
    let plan = StudyPlan::read(out)?;
    let mut arms = Vec::new();
    let mut adapters = Vec::new();
    for arm in &plan.arms {
        let dir = StudyPlan::arm_dir(out, &arm.name);
        if !dir.join(crate::sweep::file::JSON_NAME).is_file() {
            continue;
        }
        let file = SweepFile::read(&dir)?;
        for row in &file.rows {
            if !row.trained_on.is_empty() && !adapters.contains(&row.trained_on) {
                adapters.push(row.trained_on.clone());
            }
        }
        arms.push(arm_report(arm, &file)?);
    }
    if arms.is_empty() {
        crate::usage_bail!("{}: no arm has been trained yet", out.display());
    }
    correct(&mut arms);
    let report = StudyReport {
        title: plan.title.clone(),
        question: plan.question.clone(),
        reduced: plan.reduced,
        adapters,
        arms,
    };
    let figures_dir = out.join("figures");
    for arm in &report.arms {
        for factor in &arm.factors {
            let dir = figures_dir.join(&arm.name).join(&factor.option);
            std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
            figures(&factor.level_stats(), &dir)?;
        }
    }
    write_atomic(
        &out.join(JSON_NAME),
        serde_json::to_string_pretty(&report)?.as_bytes(),
    )?;
    let path = out.join(MARKDOWN_NAME);
    write_atomic(&path, markdown(&report, &plan, out).as_bytes())?;
    Ok(path)
}

fn arm_report(arm: &ArmPlan, file: &SweepFile) -> Result<ArmReport> {
    let planned = arm.spec.plan()?;
    let rows = &file.rows;
    // The levels of each factor in plan order; a factor is one with more than one.
    let mut options: Vec<(&'static str, Vec<String>)> = Vec::new();
    for (settings, _) in &planned {
        for (i, (option, value)) in settings.factors().into_iter().enumerate() {
            if options.len() <= i {
                options.push((option, Vec::new()));
            }
            if !options[i].1.contains(&value) {
                options[i].1.push(value);
            }
        }
    }
    let varying: Vec<(usize, &str, &Vec<String>)> = options
        .iter()
        .enumerate()
        .filter(|(_, (_, values))| values.len() > 1)
        .map(|(i, (option, values))| (i, *option, values))
        .collect();
    let label = |row: &SweepRow| {
        let f = row.settings.factors();
        let parts: Vec<String> = varying
            .iter()
            .map(|(i, option, _)| format!("{option} {}", f[*i].1))
            .collect();
        if parts.is_empty() {
            "all".to_string()
        } else {
            parts.join(", ")
        }
    };
    let mut cells: Vec<(String, String, Vec<SweepRow>)> = Vec::new();
    for row in rows {
        let variant = row.settings.variant();
        match cells.iter_mut().find(|c| c.0 == variant) {
            Some(c) => c.2.push(row.clone()),
            None => cells.push((variant, label(row), vec![row.clone()])),
        }
    }
    let factors = varying
        .iter()
        .map(|&(i, option, values)| {
            let level_rows = |value: &String| -> Vec<SweepRow> {
                rows.iter()
                    .filter(|r| &r.settings.factors()[i].1 == value)
                    .cloned()
                    .collect()
            };
            let reference = VariantStats::new(
                format!("{option}={}", values[0]),
                format!("{option} {}", values[0]),
                level_rows(&values[0]),
            );
            let mut levels = Vec::new();
            for value in &values[1..] {
                let mut stats = VariantStats::new(
                    format!("{option}={value}"),
                    format!("{option} {value}"),
                    level_rows(value),
                );
                let effects = stats.effects(&reference);
                stats.versus_reference = Some(stats.compare(&reference, effects));
                let rate = RateTest {
                    generalised: stats.generalised,
                    runs: stats.runs,
                    reference_generalised: reference.generalised,
                    reference_runs: reference.runs,
                    p: fisher_exact_p(
                        stats.generalised,
                        stats.runs,
                        reference.generalised,
                        reference.runs,
                    ),
                    p_holm: f64::NAN,
                };
                levels.push(Level {
                    value: value.clone(),
                    stats,
                    rate: Some(rate),
                });
            }
            levels.insert(
                0,
                Level {
                    value: values[0].clone(),
                    stats: reference,
                    rate: None,
                },
            );
            Factor {
                option: option.to_string(),
                levels,
            }
        })
        .collect();
    Ok(ArmReport {
        name: arm.name.clone(),
        question: arm.question.clone(),
        options: arm.options.clone(),
        planned: planned.len(),
        finished: rows.len(),
        cells: cells
            .into_iter()
            .map(|(v, l, r)| VariantStats::new(v, l, r))
            .collect(),
        factors,
    })
}

/// Replaces the per-comparison verdicts' p-values by Holm's over every test of the study (each
/// level's rate test and measure effects), and restates the verdicts with them.
fn correct(arms: &mut [ArmReport]) {
    let levels = || -> Vec<(usize, usize, usize)> {
        let mut v = Vec::new();
        for (a, arm) in arms.iter().enumerate() {
            for (f, factor) in arm.factors.iter().enumerate() {
                for l in 1..factor.levels.len() {
                    v.push((a, f, l));
                }
            }
        }
        v
    };
    let compared = levels();
    let mut raw = Vec::new();
    for &(a, f, l) in &compared {
        let level = &arms[a].factors[f].levels[l];
        raw.push(level.rate.as_ref().map_or(f64::NAN, |r| r.p));
        if let Some(c) = &level.stats.versus_reference {
            raw.extend(c.effects.iter().map(|e| e.p));
        }
    }
    let mut adjusted = holm(&raw).into_iter();
    for &(a, f, l) in &compared {
        let factor = &mut arms[a].factors[f];
        let (reference, rest) = factor.levels.split_at_mut(1);
        let level = &mut rest[l - 1];
        if let Some(r) = &mut level.rate {
            r.p_holm = adjusted.next().expect("one adjusted p per test");
        }
        if let Some(c) = level.stats.versus_reference.take() {
            let mut effects = c.effects;
            for e in &mut effects {
                e.p_holm = adjusted.next().expect("one adjusted p per test");
            }
            level.stats.versus_reference = Some(level.stats.compare(&reference[0].stats, effects));
        }
    }
}

/// One line per compared level: how often it generalised against the reference, and the
/// verdict at each level of description.
fn answer_lines(arm: &ArmReport) -> String {
    let mut text = String::new();
    for factor in &arm.factors {
        let reference = &factor.levels[0];
        for level in &factor.levels[1..] {
            let (Some(rate), Some(c)) = (&level.rate, &level.stats.versus_reference) else {
                continue;
            };
            let _ = writeln!(
                text,
                "- **{} {}** against {}: generalised in {} of {} seeds against {} of {} \
                 (Fisher's exact test, Holm-corrected p {}). Features: {}. Algorithm: {}. \
                 Implementation: {}.",
                factor.option,
                level.value,
                reference.value,
                rate.generalised,
                rate.runs,
                rate.reference_generalised,
                rate.reference_runs,
                p_text(rate.p_holm),
                c.features,
                c.algorithm,
                c.implementation
            );
        }
    }
    text
}

/// The effects of the levels compared with the reference (None when none could be).
fn effects_table(factor: &Factor) -> Option<String> {
    let mut rows = 0;
    let mut md = String::from(
        "| level | measure | difference of medians | 95% CI | p | Holm-corrected p |\n\
         |---|---|---|---|---|---|\n",
    );
    for level in &factor.levels[1..] {
        let Some(Comparison { effects, .. }) = &level.stats.versus_reference else {
            continue;
        };
        // Measures not compared (too few generalised runs) are left out.
        for e in effects.iter().filter(|e| e.median_difference.is_finite()) {
            rows += 1;
            let _ = writeln!(
                md,
                "| {} | {} | {:+.3} | {:+.3} to {:+.3} | {} | {} |",
                level.value,
                e.measure,
                e.median_difference,
                e.ci95.0,
                e.ci95.1,
                p_text(e.p),
                p_text(e.p_holm)
            );
        }
    }
    (rows > 0).then_some(md)
}

fn markdown(report: &StudyReport, plan: &StudyPlan, out: &Path) -> String {
    let mut md = format!("# {}\n\n{}\n\n", report.title, report.question);
    let _ = writeln!(
        md,
        "{} size; trained on {}. Arms trained so far: {} of {}.\n",
        if report.reduced {
            "Reduced (`--reduced`)"
        } else {
            "Full"
        },
        if report.adapters.is_empty() {
            "an unrecorded adapter".to_string()
        } else {
            report.adapters.join("; ")
        },
        report.arms.len(),
        plan.arms.len()
    );
    md.push_str("## Answers, arm by arm\n\n");
    for arm in &report.arms {
        let _ = writeln!(
            md,
            "**{}** ({} of {} models): {}\n\n{}",
            arm.name,
            arm.finished,
            arm.planned,
            arm.question,
            answer_lines(arm)
        );
    }
    let _ = writeln!(
        md,
        "Each factor's levels pool the arm's runs over its other factors and are compared with \
         the level listed first. Whether a level's seeds generalise as often as the reference's \
         is Fisher's exact test; every p-value in this report is corrected by Holm's method over \
         all {} tests of the study.\n\n{CRITERIA}\n\n{TABLE_LEGEND}\n",
        count_tests(report)
    );
    for arm in &report.arms {
        let _ = writeln!(
            md,
            "## Arm {}\n\n{}\n\n`bitgrok sweep {}` ({} of {} models trained and analysed; runs \
             in arms/{}).\n",
            arm.name, arm.question, arm.options, arm.finished, arm.planned, arm.name
        );
        md.push_str(&variant_table(&arm.cells));
        md.push('\n');
        for factor in &arm.factors {
            let _ = writeln!(md, "### {}: {}\n", arm.name, factor.option);
            // With one factor, its levels are the cells above.
            if arm.factors.len() > 1 {
                md.push_str(&variant_table(&factor.level_stats()));
                md.push('\n');
            }
            if let Some(table) = effects_table(factor) {
                md.push_str(&table);
                md.push('\n');
            }
            let dir = Path::new("figures").join(&arm.name).join(&factor.option);
            for (name, caption) in FIGURES
                .iter()
                .filter(|(n, _)| out.join(&dir).join(n).exists())
            {
                let _ = writeln!(
                    md,
                    "![{caption}]({})\n\n{caption}, by {}.\n",
                    dir.join(name).display(),
                    factor.option
                );
            }
        }
    }
    md.push_str(
        "Per-run numbers are in each arm's sweep.csv; every statistic and effect is in \
         study.json.\n",
    );
    md
}

fn count_tests(report: &StudyReport) -> usize {
    report
        .arms
        .iter()
        .flat_map(|a| &a.factors)
        .flat_map(|f| &f.levels)
        .map(|l| {
            l.rate.as_ref().map_or(0, |r| usize::from(!r.p.is_nan()))
                + l.stats
                    .versus_reference
                    .as_ref()
                    .map_or(0, |c| c.effects.iter().filter(|e| !e.p.is_nan()).count())
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{LinearNorm, Weights};
    use crate::report::levels::LevelSummary;
    use crate::sweep::axes::Setting;
    use crate::sweep::{SplitMode, SweepSpec};

    /// Weights f32/ternary × linear norm none/rms × 5 seeds, where exactly the f32 models
    /// generalise.
    fn arm() -> (ArmPlan, SweepFile) {
        let spec = SweepSpec {
            axes: vec![vec![
                Setting::LinearNorm(LinearNorm::None),
                Setting::LinearNorm(LinearNorm::Rms),
            ]],
            weights: vec![Weights::F32, Weights::Ternary],
            seeds: (0..5).collect(),
            ..SweepSpec::tiny(SplitMode::Fixed)
        };
        let rows = spec
            .plan()
            .unwrap()
            .into_iter()
            .map(|(settings, _)| {
                let generalised = settings.weights == Weights::F32;
                let seed = settings.seed as f64;
                SweepRow {
                    run: settings.name.clone().into(),
                    epochs: 10,
                    memorised_at: Some(1),
                    grokked_at: generalised.then_some(5),
                    final_train_loss: 0.0,
                    final_test_loss: 0.0,
                    accuracy_all_pairs: 1.0,
                    key_frequencies: vec![1],
                    key_frequency_share: 0.9,
                    clustered_fraction: 0.5,
                    restricted_loss: 0.0,
                    excluded_loss: 0.0,
                    distance_irrelevance: 0.9,
                    gradient_symmetricity: 0.1,
                    levels: LevelSummary {
                        generalised,
                        reached_at: generalised.then_some(5),
                        clustered_pre: 0.5 + 0.01 * seed,
                        ..Default::default()
                    },
                    trained_on: String::new(),
                    settings,
                }
            })
            .collect();
        let plan = ArmPlan {
            name: "a".into(),
            question: "q".into(),
            options: String::new(),
            spec: spec.clone(),
        };
        let file = SweepFile {
            spec,
            shard: crate::sweep::Shard::WHOLE,
            rows,
        };
        (plan, file)
    }

    #[test]
    fn factors_pool_the_other_factors_and_test_generalisation() {
        let (plan, file) = arm();
        let mut arms = vec![arm_report(&plan, &file).unwrap()];
        correct(&mut arms);
        let arm = &arms[0];
        assert_eq!(arm.cells.len(), 4);
        let options: Vec<&str> = arm.factors.iter().map(|f| f.option.as_str()).collect();
        assert_eq!(options, ["linear-norm", "weights"]);
        let rate = |f: usize| arm.factors[f].levels[1].rate.as_ref().unwrap();
        // Linear norm: 5 of 10 against 5 of 10.
        let norm = rate(0);
        assert_eq!((norm.generalised, norm.runs), (5, 10));
        assert_eq!((norm.reference_generalised, norm.reference_runs), (5, 10));
        assert!((norm.p - 1.0).abs() < 1e-12);
        // Ternary: 0 of 10 against 10 of 10, p = 2 / C(20, 10).
        let ternary = rate(1);
        assert_eq!(
            (ternary.generalised, ternary.reference_generalised),
            (0, 10)
        );
        assert!(
            (ternary.p / (2.0 / 184_756.0) - 1.0).abs() < 1e-9,
            "{}",
            ternary.p
        );
        assert!(ternary.p_holm >= ternary.p && ternary.p_holm.is_finite());
        let md = answer_lines(arm);
        assert!(
            md.contains(
                "**weights ternary** against f32: generalised in 0 of 10 seeds against 10 of 10"
            ),
            "{md}"
        );
    }
}
