//! The command line: bad input is refused before any GPU work with exit code 2 and one line
//! naming the option; the commands a user starts with work end to end.

mod common;

use std::process::{Command, Output};

fn bitgrok(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_bitgrok"))
        .args(args)
        .output()
        .unwrap()
}

/// A tiny full-precision model.
const TINY: [&str; 10] = [
    "--preset",
    "nanda",
    "--p",
    "7",
    "--d-model",
    "16",
    "--d-head",
    "4",
    "--d-mlp",
    "32",
];

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn invalid_options_exit_2_naming_the_option() {
    let out = tempfile::tempdir().unwrap();
    let out = out.path().join("run");
    let out = out.to_str().unwrap();
    for (args, option) in [
        (vec!["--frac", "1.5"], "--frac"),
        (vec!["--frac", "0.0001", "--p", "5"], "--frac"),
        (vec!["--p", "1"], "--p"),
        (vec!["--epochs", "0"], "--epochs"),
        (vec!["--checkpoint-every", "0"], "--checkpoint-every"),
        (vec!["--eval-every", "0"], "--eval-every"),
        (vec!["--d-model", "0"], "--d-model"),
        (vec!["--lr", "-1"], "--lr"),
        (vec!["--weights", "int4"], "--weights"),
        (
            vec!["--weights", "binary", "--quantize", "attn+bias"],
            "--quantize",
        ),
        (vec!["--preset", "nanda", "--quantize", "all"], "--quantize"),
        (
            vec!["--preset", "nanda", "--weight-centre", "mean"],
            "--weight-centre",
        ),
        (vec!["--weight-scale", "absmax"], "--weight-scale"),
        (vec!["--init", "xavier"], "--init"),
        (vec!["--p", "100000"], "--p"),
        (vec!["--d-model", "64"], "--d-head"),
        (vec!["--weight-decay", "nan"], "--weight-decay"),
        (vec!["--resume", "somewhere"], "--resume"),
        (
            vec!["--p", "2048", "--d-mlp", "16384"],
            "max_storage_buffer_binding_size",
        ),
    ] {
        let mut argv = vec!["train", "--out", out];
        argv.extend(args.iter().copied());
        let o = bitgrok(&argv);
        assert_eq!(
            o.status.code(),
            Some(2),
            "{argv:?} should exit 2; stderr: {}",
            stderr(&o)
        );
        assert!(
            stderr(&o).contains(option),
            "{argv:?}: the error should name {option}: {}",
            stderr(&o)
        );
        assert!(
            !std::path::Path::new(out).exists(),
            "{argv:?} must not create the run directory"
        );
    }
}

/// The weight quantiser's switches and the initialisation reach the run's config.json,
/// independently of the preset.
#[test]
fn quantiser_switches_and_init_are_recorded() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    let mut train = vec!["train"];
    train.extend(TINY);
    train.extend(["--weights", "ternary", "--quantize", "unembed,embed"]);
    train.extend([
        "--weight-scale",
        "none",
        "--weight-centre",
        "mean",
        "--init",
        "pytorch",
    ]);
    train.extend(["--epochs", "3", "--out", out.to_str().unwrap()]);
    let o = bitgrok(&train);
    assert!(o.status.success(), "train failed: {}", stderr(&o));
    let config: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("config.json")).unwrap()).unwrap();
    let model = &config["model"];
    for (field, value) in [
        ("quantize", "embed+unembed"),
        ("weight_scale", "none"),
        ("weight_centre", "mean"),
        ("init", "pytorch"),
    ] {
        assert_eq!(model[field], value, "{field}: {model}");
    }
}

#[test]
fn train_eval_and_refusing_to_overwrite_a_run() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    let out = out.to_str().unwrap();
    let mut train = vec!["train"];
    train.extend(TINY);
    train.extend(["--epochs", "30", "--checkpoint-every", "10", "--out", out]);
    let o = bitgrok(&train);
    assert!(o.status.success(), "train failed: {}", stderr(&o));
    for f in [
        "config.json",
        "split.json",
        "metrics.csv",
        "checkpoints/epoch_00000.safetensors",
        "checkpoints/epoch_00030.safetensors",
    ] {
        assert!(dir.path().join("run").join(f).exists(), "missing {f}");
    }
    let again = bitgrok(&train);
    assert_eq!(again.status.code(), Some(2));
    assert!(
        stderr(&again).contains("already holds a run"),
        "{}",
        stderr(&again)
    );

    let shorter = bitgrok(&["train", "--resume", out, "--epochs", "10"]);
    assert_eq!(shorter.status.code(), Some(2));
    assert!(
        stderr(&shorter).contains("--epochs 10"),
        "{}",
        stderr(&shorter)
    );

    let eval = bitgrok(&["eval", out, "--epoch", "20"]);
    assert!(eval.status.success(), "{}", stderr(&eval));
    assert!(String::from_utf8_lossy(&eval.stdout).contains("epoch 20: train loss"));
    let missing = bitgrok(&["eval", out, "--epoch", "25"]);
    assert_eq!(missing.status.code(), Some(2));
    assert!(
        stderr(&missing).contains("no checkpoint for epoch 25"),
        "{}",
        stderr(&missing)
    );
}

#[test]
fn eval_of_a_directory_that_is_not_a_run_fails_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let o = bitgrok(&["eval", dir.path().to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("not a run directory"), "{}", stderr(&o));
    let resume = bitgrok(&["train", "--resume", dir.path().to_str().unwrap()]);
    assert_eq!(resume.status.code(), Some(2));
    assert!(
        stderr(&resume).contains("not a run directory"),
        "{}",
        stderr(&resume)
    );
}

#[test]
fn devices_lists_and_marks_an_adapter() {
    let o = bitgrok(&["devices"]);
    // Under every adapter, what it offers the product kernels.
    let text = String::from_utf8_lossy(&o.stdout).into_owned();
    let lines: Vec<&str> = text.lines().collect();
    let adapters: Vec<usize> = (0..lines.len())
        .filter(|&i| {
            lines[i].starts_with('*') || lines[i].starts_with("  ") && !lines[i].starts_with("   ")
        })
        .collect();
    assert!(!adapters.is_empty(), "{text}");
    for i in adapters {
        let caps = lines.get(i + 1).copied().unwrap_or_default();
        assert!(
            caps.starts_with("    ")
                && caps.contains("subgroups")
                && caps.contains("f16")
                && caps.contains("cooperative matrices"),
            "{text}"
        );
    }
    assert!(o.status.success(), "no adapter: {}", stderr(&o));
    assert!(String::from_utf8_lossy(&o.stdout)
        .lines()
        .any(|l| l.starts_with('*')));
}

#[test]
fn check_against_a_reference_file_passes() {
    let file = bitgrok::testvectors::shared_dir().join("tiny-seed-bitnet.safetensors");
    let o = bitgrok(&["check", "--vectors", file.to_str().unwrap()]);
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{stdout}{}", stderr(&o));
    assert!(stdout.contains("grad.blocks.0.mlp.W_in"));
}

#[test]
fn bench_reports_work_memory_and_dispatches_as_json() {
    let o = bitgrok(&[
        "bench",
        "--p",
        "7",
        "--d-model",
        "16",
        "--epochs",
        "1",
        "--weights",
        "f32,ternary",
        "--json",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let rows: Vec<serde_json::Value> = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(rows.len(), 4, "two presets × two precisions");
    for r in &rows {
        for key in [
            "flops_per_train_step",
            "flops_per_test_eval",
            "dispatches_per_train_step",
        ] {
            assert!(r[key].as_u64().unwrap() > 0, "{key}: {r}");
        }
        assert!(r["epochs_per_second"].as_f64().unwrap() > 0.0, "{r}");
        assert!(r["gpu_memory_bytes"].as_u64().unwrap() > 0, "{r}");
    }
}

#[test]
fn without_an_adapter_train_says_how_to_get_one_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    let o = common::bitgrok_without_adapter(&["train"])
        .args(TINY)
        .args(["--out", out.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("no GPU adapter found"),
        "{}",
        stderr(&o)
    );
    assert!(stderr(&o).contains("mesa-vulkan-drivers"), "{}", stderr(&o));
    assert!(!out.exists());
}

/// Asserts exit code 2 and that stderr contains each of `parts`.
fn assert_usage_error(args: &[&str], parts: &[&str]) {
    let o = bitgrok(args);
    assert_eq!(o.status.code(), Some(2), "{args:?}: {}", stderr(&o));
    for part in parts {
        assert!(
            stderr(&o).contains(part),
            "{args:?}: expected {part:?} in {}",
            stderr(&o)
        );
    }
}

#[test]
fn mistakes_are_named_for_what_they_are() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let out = out.to_str().unwrap();
    let with_tiny = |command: &str, extra: &[&'static str]| -> Vec<String> {
        let mut argv = vec![command.to_string()];
        argv.extend(TINY.iter().map(|s| s.to_string()));
        argv.extend(extra.iter().map(|s| s.to_string()));
        argv.extend(["--out".to_string(), out.to_string()]);
        argv
    };
    let check = |argv: Vec<String>, parts: &[&str]| {
        let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
        assert_usage_error(&argv, parts);
    };
    check(
        with_tiny("sweep", &["--seeds", "0-999999999"]),
        &["at most 100000 seeds"],
    );
    check(
        with_tiny("train", &["--lr", "-1e-3"]),
        &["--lr -0.001: must be a positive number"],
    );
    check(
        with_tiny("sweep", &["--lr", "1e-3,-1e-3"]),
        &["--lr -0.001"],
    );
    check(
        with_tiny("train", &["--lr", "1e-320"]),
        &["--lr 1e-320", "f32"],
    );
    check(
        with_tiny("sweep", &["--shard", "1/5"]),
        &["--shard 1/5", "holds 1 model"],
    );
    assert_usage_error(&["train", "--resume", out, "--force"], &["--force"]);
    assert_usage_error(&["bench", "--d-model", "3"], &["--d-model 3"]);
    let o = bitgrok(&["bench", "--d-model", "3"]);
    assert!(!stderr(&o).contains("--d-head"), "{}", stderr(&o));
    // A buffer too large because of p names the logits, and no option of another command.
    let o = bitgrok(&[
        "train",
        "--p",
        "4096",
        "--d-model",
        "16",
        "--d-head",
        "4",
        "--d-mlp",
        "16",
        "--out",
        out,
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("logits"), "{}", stderr(&o));
    assert!(
        !stderr(&o).contains("--d-mlp") && !stderr(&o).contains("--p"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn a_run_without_its_checkpoints_directory_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    let out = out.to_str().unwrap();
    let mut train = vec!["train"];
    train.extend(TINY);
    train.extend(["--epochs", "10", "--out", out]);
    assert!(bitgrok(&train).status.success());
    std::fs::remove_dir_all(dir.path().join("run/checkpoints")).unwrap();
    let o = bitgrok(&["eval", out]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(stderr(&o).contains("run/checkpoints"), "{}", stderr(&o));
}

#[test]
fn gpu_commands_print_no_window_system_noise() {
    let o = Command::new(env!("CARGO_BIN_EXE_bitgrok"))
        .arg("devices")
        .env_remove("XDG_RUNTIME_DIR")
        .env_remove("NODEVICE_SELECT")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(!stderr(&o).contains("XDG_RUNTIME_DIR"), "{}", stderr(&o));
}
