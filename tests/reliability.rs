//! What a user can rely on: identical runs from identical settings, a run directory whose files
//! always parse whenever the process dies, resumes that end bit for bit where an uninterrupted run
//! ends, a clean stop on SIGINT, and divergence reported with its epoch.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use bitgrok::metrics;
use bitgrok::model::Params;
use bitgrok::run::RunDir;
use bitgrok::task::Split;
use common::{assert_same_files, bitgrok, bitgrok_ok, interrupt_once_written, small_model};
use rand::{Rng, SeedableRng};

/// A small run: 300 epochs at p = 11 take a few seconds on lavapipe.
fn train_args<'a>(out: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut argv = vec!["train", "--preset", "nanda"];
    argv.extend(small_model("11", "0.7"));
    argv.extend(["--epochs", "300", "--checkpoint-every", "25", "--out", out]);
    argv.extend(extra);
    argv
}

/// The uninterrupted run every test compares against (trained once per test binary).
fn reference() -> &'static Path {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("run");
        bitgrok_ok(&train_args(out.to_str().unwrap(), &[]));
        dir
    })
    .path()
}

fn reference_run() -> PathBuf {
    reference().join("run")
}

/// Every file that exists parses: config, split, metrics, checkpoints, resume point.
fn assert_files_parse(root: &Path) {
    if !root.join("config.json").exists() {
        return;
    }
    let dir = RunDir::open(root).unwrap();
    let config = dir.read_config().unwrap();
    if let Ok(text) = std::fs::read_to_string(root.join("split.json")) {
        serde_json::from_str::<Split>(&text).unwrap();
    }
    if dir.metrics_path().exists() {
        metrics::read(&dir.metrics_path(), config.epochs).unwrap();
    }
    for epoch in dir.checkpoint_epochs().unwrap() {
        Params::load(&config.model, &dir.checkpoint_path(epoch)).unwrap();
    }
    dir.read_resume_point(&config.model).unwrap();
}

#[test]
fn identical_settings_give_identical_runs() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    bitgrok_ok(&train_args(out.to_str().unwrap(), &[]));
    assert_same_files(&reference_run(), &out);
}

#[test]
fn killed_at_random_moments_and_resumed_it_ends_as_the_uninterrupted_run() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    let out_s = out.to_str().unwrap();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
    let mut kills = 0;
    loop {
        // Resume when the run directory exists; otherwise the kill came before config.json.
        let args = if out.join("config.json").exists() {
            vec!["train", "--resume", out_s]
        } else {
            train_args(out_s, &["--force"])
        };
        let mut child: Child = bitgrok(&args)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        if kills < 8 {
            let deadline = Instant::now() + Duration::from_millis(rng.random_range(200..2000));
            while Instant::now() < deadline && child.try_wait().unwrap().is_none() {
                std::thread::sleep(Duration::from_millis(5));
            }
            if child.try_wait().unwrap().is_none() {
                child.kill().unwrap(); // SIGKILL
                child.wait().unwrap();
                kills += 1;
                assert_files_parse(&out);
                continue;
            }
        }
        let o = child.wait_with_output().unwrap();
        assert!(
            o.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        break;
    }
    assert!(kills > 0, "no kill landed before the run finished");
    assert_files_parse(&out);
    assert_same_files(&reference_run(), &out);
}

#[test]
fn sigint_checkpoints_and_exits_then_resume_finishes_the_run() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    let out_s = out.to_str().unwrap();
    // Interrupt once training is under way (metrics are written after the first submission).
    let o = interrupt_once_written(&train_args(out_s, &[]), &out.join("metrics.csv"));
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(130), "{stderr}");
    assert!(stderr.contains("--resume"), "{stderr}");
    let dir_run = RunDir::open(&out).unwrap();
    let config = dir_run.read_config().unwrap();
    let point = dir_run.read_resume_point(&config.model).unwrap().unwrap();
    assert!(point.epoch < 300, "the run finished before the signal");
    assert!(dir_run.checkpoint_path(point.epoch).exists());

    bitgrok_ok(&["train", "--resume", out_s]);
    // The interrupt's own checkpoint is gone once training continued past it: the run holds
    // exactly the uninterrupted one's files.
    assert_same_files(&reference_run(), &out);
}

#[test]
fn a_finished_run_extended_with_resume_matches_a_longer_run() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    let out_s = out.to_str().unwrap();
    let mut short = train_args(out_s, &[]);
    let epochs = short.iter().position(|a| *a == "300").unwrap();
    short[epochs] = "150";
    bitgrok_ok(&short);
    bitgrok_ok(&["train", "--resume", out_s, "--epochs", "300"]);
    assert_same_files(&reference_run(), &out);
}

#[test]
fn divergence_stops_with_the_epoch_and_keeps_the_last_good_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    let o = bitgrok(&train_args(out.to_str().unwrap(), &["--lr", "1e38"]))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("diverged at epoch 1: a parameter became NaN or infinite"),
        "{stderr}"
    );
    assert!(stderr.contains("last good checkpoint"), "{stderr}");
    let run = RunDir::open(&out).unwrap();
    assert_eq!(run.checkpoint_epochs().unwrap(), vec![0]);
    assert_files_parse(&out);
}
