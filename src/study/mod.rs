//! `bitgrok study DESIGN --out DIR`: a declared design — arms, each a sweep with a question —
//! trained into DIR/arms/ARM and reported in DIR/study.md, study.json and DIR/figures. Arms run
//! one after another and each continues where it stopped, so a study can be run in pieces (a
//! signal checkpoints and stops it; the same command continues). A model that an earlier arm
//! also trains (the same configuration) is trained once: the later arm's run directory links to
//! the earlier one (when that one exists: an arm trained alone with `--arms` trains its own).

pub mod design;
pub mod report;

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

pub use design::Design;

use crate::engine::device::Gpu;
use crate::run::{write_atomic, RunConfig, RunDir};
use crate::sweep::run::{prepare_out_dir, sweep, SweepOptions};
use crate::sweep::{Shard, SweepSpec};

/// One arm, its options resolved into a sweep.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ArmPlan {
    pub name: String,
    pub question: String,
    /// Its options as `bitgrok sweep` takes them (the design's common options, the arm's, and
    /// the reduced ones with --reduced).
    pub options: String,
    pub spec: SweepSpec,
}

/// What a study trains: written to DIR/study_plan.json when it starts, so that the same
/// command continues it and another design is refused.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StudyPlan {
    pub title: String,
    pub question: String,
    pub reduced: bool,
    pub arms: Vec<ArmPlan>,
}

pub const PLAN_NAME: &str = "study_plan.json";
/// Most bytes a study_plan.json may take.
const MAX_PLAN_BYTES: u64 = 1 << 24;

impl StudyPlan {
    /// Whether this plan is `earlier`'s with the same or more seeds in its arms: a study of it
    /// continues `earlier`'s directory, keeping its models.
    pub fn extends(&self, earlier: &StudyPlan) -> bool {
        let same = |a: &ArmPlan, e: &ArmPlan| {
            (&a.name, &a.question) == (&e.name, &e.question) && a.spec.extends(&e.spec)
        };
        (&self.title, &self.question, self.reduced, self.arms.len())
            == (
                &earlier.title,
                &earlier.question,
                earlier.reduced,
                earlier.arms.len(),
            )
            && self.arms.iter().zip(&earlier.arms).all(|(a, e)| same(a, e))
    }

    pub fn read(dir: &Path) -> Result<StudyPlan> {
        let path = dir.join(PLAN_NAME);
        if !path.is_file() {
            crate::usage_bail!(
                "{} is not a study directory: it has no {PLAN_NAME}",
                dir.display()
            );
        }
        let text = crate::bounded_read::read_to_string(&path, MAX_PLAN_BYTES, "a study plan")?;
        serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))
    }

    /// The directory of an arm's sweep.
    pub fn arm_dir(out: &Path, arm: &str) -> PathBuf {
        out.join("arms").join(arm)
    }
}

/// Checks before any GPU work that `out` may take this study, and records its plan: refused
/// are another study there (unless `force`) and a directory that holds something else.
pub fn prepare_out_dir_for(plan: &StudyPlan, out: &Path, force: bool) -> Result<()> {
    let is_study = |dir: &Path| dir.join(PLAN_NAME).is_file();
    crate::out_dir::check(out, "study", is_study, true)?;
    if !force && is_study(out) && !plan.extends(&StudyPlan::read(out)?) {
        crate::usage_bail!(
            "{} holds another study (or this design at another size; the same design with more \
             seeds would continue it); pass --force to replace it, or choose another --out",
            out.display()
        );
    }
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    write_atomic(
        &out.join(PLAN_NAME),
        serde_json::to_string_pretty(plan)?.as_bytes(),
    )
}

/// Trains the arms named in `only` (every arm when empty), in the design's order. Returns true
/// when a signal stopped it before the end.
pub fn run(
    gpu: &Gpu,
    plan: &StudyPlan,
    out: &Path,
    only: &[String],
    options: SweepOptions,
) -> Result<bool> {
    // Each model configuration's first run directory, over the arms in order.
    let mut first: Vec<(RunConfig, PathBuf)> = Vec::new();
    for arm in &plan.arms {
        let dir = StudyPlan::arm_dir(out, &arm.name);
        let models = arm.spec.plan()?;
        let selected = only.is_empty() || only.contains(&arm.name);
        let _lock = if selected {
            Some(prepare_out_dir(
                &dir,
                &arm.spec,
                Shard::WHOLE,
                options.force,
            )?)
        } else {
            None
        };
        for (settings, config) in models {
            let run = dir.join(&settings.name);
            match first.iter().find(|(c, _)| *c == config) {
                Some((_, earlier)) if selected && RunDir::is_run(earlier) => {
                    link_run(earlier, &run)?
                }
                Some(_) => {}
                None => first.push((config, run)),
            }
        }
        if !selected {
            continue;
        }
        println!("arm {}: {}", arm.name, arm.question);
        let outcome = sweep(gpu, &arm.spec, Shard::WHOLE, &dir, options)?;
        if outcome.interrupted {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Makes `run` a link to the run directory `earlier` of another arm (relative, so that the
/// study directory can move), unless it exists.
fn link_run(earlier: &Path, run: &Path) -> Result<()> {
    if run.symlink_metadata().is_ok() {
        return Ok(());
    }
    // Both are OUT/arms/ARM/NAME.
    let components: Vec<_> = earlier.components().rev().take(2).collect();
    let target = Path::new("..")
        .join(components[1].as_os_str())
        .join(components[0].as_os_str());
    #[cfg(unix)]
    std::os::unix::fs::symlink(&target, run)
        .with_context(|| format!("linking {} to {}", run.display(), target.display()))?;
    #[cfg(not(unix))]
    anyhow::bail!(
        "{} would repeat the run in {}: studies that share models need symbolic links (Unix)",
        run.display(),
        earlier.display()
    );
    Ok(())
}
