//! Real grokking runs, small enough for lavapipe: full precision (`nanda`) and ternary
//! (`seed-bitnet`) models at p = 23 memorise first and generalise later.

use bitgrok::cli::TrainArgs;
use bitgrok::engine::device::Gpu;
use bitgrok::run::RunDir;
use bitgrok::train::{self, Summary};
use clap::Parser;

#[derive(Parser)]
struct Wrapper {
    #[command(flatten)]
    args: TrainArgs,
}

fn run(extra: &[&str]) -> (Summary, tempfile::TempDir) {
    let gpu = Gpu::new(None).unwrap_or_else(|e| panic!("a GPU adapter is required: {e:#}"));
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    let mut argv = vec![
        "train",
        "--p",
        "23",
        "--frac",
        "0.7",
        "--checkpoint-every",
        "500",
        "--out",
        out.to_str().unwrap(),
    ];
    argv.extend_from_slice(extra);
    let config = Wrapper::parse_from(argv).args.run_config().unwrap();
    let summary = train::train(&gpu, &config, &out, false, Default::default()).unwrap();
    (summary, dir)
}

fn assert_grokked(name: &str, s: &Summary) {
    let memorised = s
        .memorised_at
        .unwrap_or_else(|| panic!("{name}: never reached 100% train accuracy"));
    let grokked = s
        .grokked_at
        .unwrap_or_else(|| panic!("{name}: never generalised"));
    eprintln!(
        "{name}: memorised at {memorised}, grokked at {grokked}, {:.1} epochs/s",
        s.epochs_per_second
    );
    assert!(
        memorised < grokked,
        "{name}: generalised (epoch {grokked}) before memorising (epoch {memorised})"
    );
}

#[test]
fn full_precision_model_groks() {
    let (s, dir) = run(&[
        "--preset",
        "nanda",
        "--d-model",
        "64",
        "--d-head",
        "16",
        "--d-mlp",
        "256",
        "--epochs",
        "2000",
        "--stop-after-grok",
        "20",
    ]);
    assert_grokked("nanda", &s);
    assert!(
        s.final_metrics.test_acc >= 0.99,
        "nanda: final test accuracy {}",
        s.final_metrics.test_acc
    );
    // The run directory holds what a user needs.
    let run = RunDir::open(&dir.path().join("run")).unwrap();
    let config = run.read_config().unwrap();
    let epochs = run.checkpoint_epochs().unwrap();
    assert_eq!(epochs.first(), Some(&0));
    assert_eq!(epochs.last(), Some(&s.epochs));
    run.load_checkpoint(&config.model, None).unwrap();
    let metrics = std::fs::read_to_string(run.metrics_path()).unwrap();
    assert_eq!(metrics.lines().count(), s.epochs + 1);
}

#[test]
fn ternary_model_groks() {
    let (s, _dir) = run(&[
        "--preset",
        "seed-bitnet",
        "--d-model",
        "32",
        "--d-head",
        "8",
        "--d-mlp",
        "128",
        "--epochs",
        "3000",
        "--stop-after-grok",
        "20",
    ]);
    assert_grokked("seed-bitnet (ternary)", &s);
}
