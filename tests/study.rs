//! `bitgrok study` through the binary: a tiny design of two arms and two seeds runs end to end;
//! a model two arms share is trained once; a study's model is exactly the run `train` gives
//! with its settings; the report's numbers are those of the run directories; a rerun trains
//! nothing; bad designs are refused with exit 2.

mod common;

use std::path::Path;

use bitgrok::sweep::file::SweepFile;
use common::{bitgrok, bitgrok_ok, files, small_model};

const DESIGN: &str = r#"
title = "Tiny"
question = "Does the study machinery hold together?"
[options]
p = 7
frac = 0.8
d-model = 32
d-head = 8
d-mlp = 64
epochs = 150
checkpoint-every = 50
split = "fixed"
seeds = "0-1"
[[arm]]
name = "precision"
question = "Weights alone?"
options = { preset = "nanda", weights = "f32,ternary" }
[[arm]]
name = "norm"
question = "The Linear norm?"
options = { preset = "nanda", weights = "f32", linear-norm = "none,rms" }
"#;

/// Test accuracy per epoch of a run, from its metrics.csv.
fn test_accuracies(run: &Path) -> Vec<f64> {
    let text = std::fs::read_to_string(run.join("metrics.csv")).unwrap();
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let column = header.iter().position(|h| *h == "test_acc").unwrap();
    lines
        .map(|l| l.split(',').nth(column).unwrap().parse().unwrap())
        .collect()
}

#[test]
fn a_tiny_study_runs_end_to_end_and_reports_its_runs() {
    let tmp = tempfile::tempdir().unwrap();
    let design = tmp.path().join("tiny.toml");
    std::fs::write(&design, DESIGN).unwrap();
    let out = tmp.path().join("study");
    let (d, o) = (design.to_str().unwrap(), out.to_str().unwrap());
    bitgrok_ok(&["study", d, "--out", o]);

    // The norm arm's `none` model is the precision arm's f32 model, trained once.
    let shared = out.join("arms/norm/linear-norm-none-f32-none-wd1-lr0.001-s1");
    assert!(shared.symlink_metadata().unwrap().file_type().is_symlink());
    assert_eq!(
        std::fs::canonicalize(&shared).unwrap(),
        std::fs::canonicalize(out.join("arms/precision/f32-none-wd1-lr0.001-s1")).unwrap()
    );

    // A study's model is the run `train` gives: seed 1 splits with the data seed (fixed split).
    let alone = tmp.path().join("alone");
    let mut argv = vec!["train", "--preset", "nanda", "--weights", "ternary"];
    argv.extend(small_model("7", "0.8"));
    argv.extend(["--epochs", "150", "--checkpoint-every", "50", "--seed", "1"]);
    argv.extend(["--out", alone.to_str().unwrap()]);
    bitgrok_ok(&argv);
    // The study keeps the analysed and the last checkpoint (and no analysis figures), each the
    // same bytes as train's.
    let compacted = files(&out.join("arms/precision/ternary-none-wd1-lr0.001-s1"));
    let trained = files(&alone);
    let checkpoints = |f: &std::collections::BTreeMap<std::path::PathBuf, Vec<u8>>| {
        f.keys().filter(|p| p.starts_with("checkpoints")).count()
    };
    assert!((1..=2).contains(&checkpoints(&compacted)) && checkpoints(&trained) == 4);
    for (name, bytes) in &compacted {
        assert!(
            trained.get(name) == Some(bytes),
            "{} differs",
            name.display()
        );
    }
    assert_eq!(compacted.len() + 4 - checkpoints(&compacted), trained.len());
    let figures =
        std::fs::read_dir(out.join("arms/precision/ternary-none-wd1-lr0.001-s1/analysis"))
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .path()
                    .extension()
                    .is_some_and(|x| x == "png")
            })
            .count();
    assert_eq!(figures, 0);

    // The report's counts are the run directories': per factor level, the runs and those that
    // generalised.
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("study.json")).unwrap()).unwrap();
    let arms = report["arms"].as_array().unwrap();
    assert_eq!(arms.len(), 2);
    for arm in arms {
        let name = arm["name"].as_str().unwrap();
        let dir = out.join("arms").join(name);
        let rows = SweepFile::read(&dir).unwrap().rows;
        assert_eq!(arm["finished"], 4);
        assert_eq!(rows.len(), 4);
        let factors = arm["factors"].as_array().unwrap();
        assert_eq!(factors.len(), 1, "{name}: one factor varies");
        let option = factors[0]["option"].as_str().unwrap();
        for level in factors[0]["levels"].as_array().unwrap() {
            let value = level["value"].as_str().unwrap();
            let runs: Vec<_> = rows
                .iter()
                .filter(|r| {
                    r.settings
                        .factors()
                        .iter()
                        .any(|(o, v)| *o == option && v == value)
                })
                .collect();
            assert_eq!(level["runs"], runs.len(), "{name} {option} {value}");
            let reached = runs
                .iter()
                .filter(|r| {
                    test_accuracies(&dir.join(&r.run))
                        .iter()
                        .any(|&a| a >= 0.999)
                })
                .count();
            assert_eq!(level["generalised"], reached, "{name} {option} {value}");
        }
        // The reference level has no test; the other has its Fisher test, Holm-corrected.
        let levels = factors[0]["levels"].as_array().unwrap();
        assert!(levels[0]["rate"].is_null());
        let rate = &levels[1]["rate"];
        assert!(rate["p_holm"].as_f64().unwrap() >= rate["p"].as_f64().unwrap());
    }
    let md = std::fs::read_to_string(out.join("study.md")).unwrap();
    for text in [
        "## Answers, arm by arm",
        "**weights ternary** against f32",
        "**linear-norm rms** against none",
        "## Arm norm",
        "Criteria:",
    ] {
        assert!(md.contains(text), "{text:?} missing from:\n{md}");
    }
    assert!(out
        .join("figures/precision/weights/grokked_fraction.png")
        .exists());

    // Run again, nothing is retrained and the report is the same.
    let checkpoint =
        out.join("arms/precision/f32-none-wd1-lr0.001-s0/checkpoints/epoch_00150.safetensors");
    let modified = std::fs::metadata(&checkpoint).unwrap().modified().unwrap();
    bitgrok_ok(&["study", d, "--out", o]);
    assert_eq!(
        std::fs::metadata(&checkpoint).unwrap().modified().unwrap(),
        modified
    );
    assert_eq!(std::fs::read_to_string(out.join("study.md")).unwrap(), md);

    // Forced, every model is retrained once: a shared one by the arm that owns it, not again
    // through the other arm's link; the report is the same.
    let forced = bitgrok_ok(&["study", d, "--out", o, "--force"]);
    let forced = String::from_utf8_lossy(&forced.stdout);
    let trained: Vec<&str> = forced
        .lines()
        .filter(|l| l.contains("] training "))
        .flat_map(|l| l.rsplit_once("): ").unwrap().1.split(", "))
        .collect();
    assert_eq!(trained.len(), 6, "{forced}");
    assert!(
        !trained.iter().any(|n| n.starts_with("linear-norm-none")),
        "{forced}"
    );
    assert_eq!(std::fs::read_to_string(out.join("study.md")).unwrap(), md);

    // The plan and the arms' sweep.json alone (what comes back from another machine) give the
    // same report.
    let bare = tmp.path().join("bare");
    for arm in ["precision", "norm"] {
        std::fs::create_dir_all(bare.join("arms").join(arm)).unwrap();
        let json = Path::new("arms").join(arm).join("sweep.json");
        std::fs::copy(out.join(&json), bare.join(&json)).unwrap();
    }
    std::fs::copy(out.join("study_plan.json"), bare.join("study_plan.json")).unwrap();
    bitgrok_ok(&["study-report", bare.to_str().unwrap()]);
    assert_eq!(std::fs::read_to_string(bare.join("study.md")).unwrap(), md);
    assert!(!md.contains("unrecorded adapter"), "{md}");

    // Another design is refused over it without --force.
    std::fs::write(&design, DESIGN.replace("epochs = 150", "epochs = 100")).unwrap();
    let r = bitgrok(&["study", d, "--out", o]).output().unwrap();
    assert_eq!(r.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&r.stderr).contains("holds another study"));
}

#[test]
fn bad_designs_are_refused_before_any_training() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("study");
    let o = out.to_str().unwrap();
    for (design, message) in [
        ("title = 1", "invalid type"),
        (
            DESIGN.replace("[[arm]]", "[[arms]]").as_str(),
            "unknown field",
        ),
        (
            DESIGN
                .replace("name = \"norm\"", "name = \"precision\"")
                .as_str(),
            "two arms are named",
        ),
        (
            DESIGN
                .replace("name = \"norm\"", "name = \"No Rm\"")
                .as_str(),
            "lower-case letters",
        ),
        (
            DESIGN
                .replace("seeds = \"0-1\"", "seeds = \"1-0\"")
                .as_str(),
            "--seeds",
        ),
        (
            DESIGN.replace("linear-norm =", "linear-nrom =").as_str(),
            "arm \"norm\": unexpected argument '--linear-nrom'",
        ),
        (
            DESIGN.replace("p = 7", "p = [7, true]").as_str(),
            "a list holds numbers or words",
        ),
    ] {
        let path = tmp.path().join("design.toml");
        std::fs::write(&path, design).unwrap();
        let r = bitgrok(&["study", path.to_str().unwrap(), "--out", o])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&r.stderr);
        assert_eq!(r.status.code(), Some(2), "{design}: {stderr}");
        assert!(stderr.contains(message), "{message:?} not in {stderr}");
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert!(!out.exists(), "{design}: nothing is written");
    }
    let path = tmp.path().join("design.toml");
    std::fs::write(&path, DESIGN).unwrap();
    let r = bitgrok(&[
        "study",
        path.to_str().unwrap(),
        "--out",
        o,
        "--arms",
        "nope",
    ])
    .output()
    .unwrap();
    assert_eq!(r.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&r.stderr).contains("no such arm"));
}

/// A study continues over its directory when its design gains seeds, in any arm; one that
/// drops a seed, renames or reorders an arm or changes the size is another study.
#[test]
fn a_plan_with_more_seeds_extends_the_plan_it_continues() {
    use bitgrok::study::StudyPlan;
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("results/quantisation-reduced");
    let earlier = StudyPlan::read(&dir).unwrap();
    assert!(earlier.extends(&earlier));
    let mut more = earlier.clone();
    more.arms[0].spec.seeds.extend([40, 41]);
    assert!(more.extends(&earlier));
    assert!(!earlier.extends(&more), "seeds 40 and 41 dropped");
    let mut other = more.clone();
    other.arms[0].spec.epochs += 1;
    assert!(!other.extends(&earlier));
    let mut renamed = earlier.clone();
    renamed.arms[1].name.push('x');
    assert!(!renamed.extends(&earlier));
    let mut reordered = earlier.clone();
    reordered.arms.swap(0, 1);
    assert!(!reordered.extends(&earlier));
    let full = StudyPlan {
        reduced: false,
        ..earlier.clone()
    };
    assert!(!full.extends(&earlier));
}
