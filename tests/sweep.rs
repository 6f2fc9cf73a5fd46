//! Sweeps through the binary: each model of a sweep is exactly the run `train` gives with its
//! settings, also when the models of one shape train together; shards merged equal the whole
//! sweep; a rerun continues instead of retraining; the report is written; bad input is refused
//! with exit 2.

mod common;

use std::path::{Path, PathBuf};

use bitgrok::run::RunDir;
use bitgrok::sweep::file::SweepFile;
use common::{assert_same_files, bitgrok, bitgrok_ok, interrupt_once_written, small_model};

/// The tiny model every run here trains (p = 7, 80 epochs), after `command`.
fn tiny(command: &str) -> Vec<&str> {
    let mut argv = vec![command, "--preset", "nanda"];
    argv.extend(small_model("7", "0.7"));
    argv.extend(["--epochs", "80", "--checkpoint-every", "40"]);
    argv
}

/// A sweep of 2 weight precisions × 2 seeds of the tiny model.
fn sweep_args<'a>(out: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut argv = tiny("sweep");
    argv.extend(["--weights", "f32,ternary", "--seeds", "0-1", "--out", out]);
    argv.extend(extra);
    argv
}

fn rows_without_paths(dir: &Path) -> Vec<String> {
    SweepFile::read(dir)
        .unwrap()
        .rows
        .into_iter()
        .map(|mut r| {
            r.run = PathBuf::new();
            serde_json::to_string(&r).unwrap()
        })
        .collect()
}

#[test]
fn sweep_models_are_train_runs_and_shards_merge_into_the_whole() {
    let tmp = tempfile::tempdir().unwrap();
    let whole = tmp.path().join("whole");
    let o = bitgrok_ok(&sweep_args(whole.to_str().unwrap(), &["--together", "2"]));
    // Each precision's two seeds share one engine (a CPU adapter would train them one by one).
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert_eq!(stdout.matches("training 2 together").count(), 2, "{stdout}");
    let file = SweepFile::read(&whole).unwrap();
    let names: Vec<&str> = file.rows.iter().map(|r| r.settings.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "f32-none-wd1-lr0.001-s0",
            "f32-none-wd1-lr0.001-s1",
            "ternary-none-wd1-lr0.001-s0",
            "ternary-none-wd1-lr0.001-s1"
        ]
    );
    let csv = std::fs::read_to_string(whole.join("sweep.csv")).unwrap();
    assert_eq!(csv.lines().count(), 5, "{csv}");

    // The ternary model of seed 1, trained with seed 0's, is exactly
    // `train --seed 1 --data-seed 599 --weights ternary`.
    let alone = tmp.path().join("alone");
    let mut argv = tiny("train");
    argv.extend([
        "--weights",
        "ternary",
        "--seed",
        "1",
        "--data-seed",
        "599",
        "--out",
        alone.to_str().unwrap(),
    ]);
    bitgrok_ok(&argv);
    assert_same_files(&whole.join("ternary-none-wd1-lr0.001-s1"), &alone);

    // Two shards, merged, hold the same models with the same results.
    let mut shards = Vec::new();
    for i in 0..2 {
        let dir = tmp.path().join(format!("shard{i}"));
        let shard = format!("{i}/2");
        bitgrok_ok(&sweep_args(dir.to_str().unwrap(), &["--shard", &shard]));
        assert_eq!(SweepFile::read(&dir).unwrap().rows.len(), 2);
        shards.push(dir);
    }
    let merged = tmp.path().join("merged");
    let (s0, s1, m) = (
        shards[0].to_str().unwrap(),
        shards[1].to_str().unwrap(),
        merged.to_str().unwrap(),
    );
    bitgrok_ok(&["sweep-merge", s1, s0, "--out", m]);
    assert_eq!(rows_without_paths(&merged), rows_without_paths(&whole));
    for row in SweepFile::read(&merged).unwrap().rows {
        assert_same_files(&merged.join(&row.run), &whole.join(&row.settings.name));
    }
    // A missing shard is named.
    let o = bitgrok(&["sweep-merge", s0, "--out", m]).output().unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("shards 1/2 are missing"));

    // Run again, the sweep keeps its finished models (same files, nothing retrained).
    let before = std::fs::read(whole.join("sweep.json")).unwrap();
    let checkpoint = whole.join("f32-none-wd1-lr0.001-s0/checkpoints/epoch_00080.safetensors");
    let modified = std::fs::metadata(&checkpoint).unwrap().modified().unwrap();
    bitgrok_ok(&sweep_args(whole.to_str().unwrap(), &[]));
    assert_eq!(std::fs::read(whole.join("sweep.json")).unwrap(), before);
    assert_eq!(
        std::fs::metadata(&checkpoint).unwrap().modified().unwrap(),
        modified
    );

    // The report: statistics per variant, the answer, figures.
    bitgrok_ok(&["sweep-report", whole.to_str().unwrap()]);
    let md = std::fs::read_to_string(whole.join("report/sweep_report.md")).unwrap();
    assert!(
        md.contains("| f32 | 2 |") && md.contains("| ternary | 2 |"),
        "{md}"
    );
    assert!(md.contains("Criteria:"), "{md}");
    assert!(whole.join("report/grokked_fraction.png").exists());
    let json = std::fs::read_to_string(whole.join("report/sweep_report.json")).unwrap();
    let report: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(report["variants"].as_array().unwrap().len(), 2);
}

#[test]
fn bad_sweeps_are_refused_before_any_training() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("s");
    let out = out.to_str().unwrap();
    for (extra, message) in [
        (&["--seeds", "3-1"][..], "--seeds"),
        (&["--shard", "2/2"][..], "I/N"),
        (&["--weights", "f32,f32"][..], "listed twice"),
        (&["--lr", "-1"][..], "lr"),
    ] {
        let o = bitgrok(&sweep_args(out, extra)).output().unwrap();
        let stderr = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{extra:?}: {stderr}");
        assert!(stderr.contains(message), "{extra:?}: {stderr}");
        assert!(
            !Path::new(out).exists(),
            "{extra:?} created the sweep directory"
        );
    }
    let o = bitgrok(&["sweep-report", out]).output().unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("is not a sweep directory"));
}

/// A sweep of two seeds trained together for 300 epochs (checkpoints every 25), after `extra`.
fn group_args<'a>(out: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut argv = vec!["sweep", "--preset", "nanda"];
    argv.extend(small_model("7", "0.7"));
    argv.extend([
        "--epochs",
        "300",
        "--checkpoint-every",
        "25",
        "--seeds",
        "0-1",
    ]);
    argv.extend(["--together", "2", "--out", out]);
    argv.extend(extra);
    argv
}

#[test]
fn an_interrupted_group_resumes_to_the_uninterrupted_sweep() {
    let tmp = tempfile::tempdir().unwrap();
    let whole = tmp.path().join("whole");
    bitgrok_ok(&group_args(whole.to_str().unwrap(), &[]));

    let out = tmp.path().join("interrupted");
    let out_s = out.to_str().unwrap();
    // Interrupt once training is under way (metrics are written after the first submission).
    let metrics = out.join("f32-none-wd1-lr0.001-s1/metrics.csv");
    let o = interrupt_once_written(&group_args(out_s, &[]), &metrics);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(130), "{stderr}");
    assert!(SweepFile::read(&out).unwrap().rows.is_empty());

    // Both models stopped at the same epoch and resume together to what the whole sweep holds.
    let mut stopped_at = Vec::new();
    for seed in 0..2 {
        let dir = RunDir::open(&out.join(format!("f32-none-wd1-lr0.001-s{seed}"))).unwrap();
        let config = dir.read_config().unwrap();
        stopped_at.push(dir.read_resume_point(&config.model).unwrap().unwrap().epoch);
    }
    assert_eq!(stopped_at[0], stopped_at[1]);
    assert!(stopped_at[0] < 300, "the sweep finished before the signal");
    let o = bitgrok_ok(&group_args(out_s, &[]));
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(stdout.contains("training 2 together"), "{stdout}");
    assert_eq!(rows_without_paths(&out), rows_without_paths(&whole));
    // The interrupt's own checkpoints are gone: each run holds exactly the whole sweep's files.
    for seed in 0..2 {
        let name = format!("f32-none-wd1-lr0.001-s{seed}");
        assert_same_files(&out.join(&name), &whole.join(&name));
    }
}

/// A model that diverges fails the sweep with its name, and the rest of its group is still
/// trained and recorded.
#[test]
fn a_diverging_model_fails_the_sweep_after_its_group_is_recorded() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("s");
    let o = bitgrok(&group_args(out.to_str().unwrap(), &["--lr", "0.001,1e38"]))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("f32-none-wd1-lr1e38-s0: training diverged at epoch 1"),
        "{stderr}"
    );
    let names: Vec<String> = SweepFile::read(&out)
        .unwrap()
        .rows
        .into_iter()
        .map(|r| r.settings.name)
        .collect();
    assert_eq!(
        names,
        ["f32-none-wd1-lr0.001-s0", "f32-none-wd1-lr0.001-s1"]
    );
}

/// A sweep sets every architecture switch `train` can, for all its models (f32 ones keep the
/// preset's quantiser: they quantise nothing), and `--split fixed` holds the split; each model
/// is then the run `train` gives with the same switches.
#[test]
fn a_sweep_takes_every_architecture_switch_of_train() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("sweep");
    let switches = [
        "--linear-norm",
        "rms",
        "--no-pos-embed",
        "--no-causal",
        "--final-norm",
        "--init",
        "pytorch",
        "--quantize",
        "all",
        "--weight-centre",
        "mean",
        "--split",
        "fixed",
    ];
    let mut argv = tiny("sweep");
    argv.extend(["--weights", "f32,ternary", "--seeds", "0-1"]);
    argv.extend(switches);
    argv.extend(["--out", out.to_str().unwrap()]);
    bitgrok_ok(&argv);
    let config = |name: &str| {
        RunDir::open(&out.join(name))
            .unwrap()
            .read_config()
            .unwrap()
    };
    for name in ["f32-none-wd1-lr0.001-s1", "ternary-none-wd1-lr0.001-s1"] {
        let c = config(name);
        let m = &c.model;
        assert_eq!(m.linear_norm, bitgrok::model::LinearNorm::Rms, "{name}");
        assert!(!m.pos_embed && !m.causal && m.final_norm, "{name}");
        assert_eq!(m.init, bitgrok::model::Init::Pytorch, "{name}");
        assert_eq!((c.seed, c.data_seed), (1, 598), "{name}: --split fixed");
    }
    let f32_model = config("f32-none-wd1-lr0.001-s1").model;
    let ternary = config("ternary-none-wd1-lr0.001-s1").model;
    assert_eq!(f32_model.quantize.to_string(), "attn+mlp");
    assert_eq!(ternary.quantize.to_string(), "all");
    assert_eq!(ternary.weight_centre, bitgrok::model::WeightCentre::Mean);

    // The ternary model is the run train gives with the same switches.
    let single = dir.path().join("single");
    let mut argv = tiny("train");
    argv.extend(["--weights", "ternary", "--seed", "1", "--data-seed", "598"]);
    argv.extend(&switches[..switches.len() - 2]);
    argv.extend(["--out", single.to_str().unwrap()]);
    bitgrok_ok(&argv);
    assert_same_files(&single, &out.join("ternary-none-wd1-lr0.001-s1"));
}

/// The same grid with more seeds continues a sweep: its models are kept (not retrained) and
/// the new seeds trained; a grid that drops a seed is another sweep, refused without --force.
#[test]
fn more_seeds_continue_a_sweep() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("s");
    let o = out.to_str().unwrap();
    let with_seeds = |seeds: &'static str| {
        let mut argv = tiny("sweep");
        argv.extend(["--weights", "f32", "--seeds", seeds, "--out", o]);
        argv
    };
    bitgrok_ok(&with_seeds("0"));
    let first = SweepFile::read(&out).unwrap().rows;
    assert_eq!(first.len(), 1);
    let checkpoint = out.join(&first[0].run).join("metrics.csv");
    let modified = std::fs::metadata(&checkpoint).unwrap().modified().unwrap();

    let more = bitgrok_ok(&with_seeds("0-1"));
    let stdout = String::from_utf8_lossy(&more.stdout);
    assert_eq!(stdout.matches("] training ").count(), 1, "{stdout}");
    let rows = SweepFile::read(&out).unwrap().rows;
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0], first[0]);
    let modified_now = std::fs::metadata(&checkpoint).unwrap().modified().unwrap();
    assert_eq!(modified_now, modified, "seed 0 was retrained");

    let fewer = bitgrok(&with_seeds("1")).output().unwrap();
    let stderr = String::from_utf8_lossy(&fewer.stderr);
    assert_eq!(fewer.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("holds another sweep"), "{stderr}");
}
