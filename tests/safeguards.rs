//! What a user hits without trying: cached analyses that no longer describe the run, `--force`
//! and `--out` pointed at the wrong place, two processes writing one run, edited or corrupted
//! files, files that never end. Each is refused or recomputed, never silently wrong.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use bitgrok::model::{params, Params};
use bitgrok::run::RunDir;
use bitgrok::run_lock::DirLock;
use common::{bitgrok, bitgrok_ok};

/// The issue's tiny model: p = 13, 70% of pairs, d_model 16 (2 heads × 8), d_mlp 32.
const S: [&str; 14] = [
    "--preset",
    "nanda",
    "--p",
    "13",
    "--frac",
    "0.7",
    "--d-model",
    "16",
    "--n-heads",
    "2",
    "--d-head",
    "8",
    "--d-mlp",
    "32",
];

fn run(args: &[&str]) -> Output {
    bitgrok(args).output().unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// `train $S --epochs E --out OUT` plus `extra`.
fn train(out: &Path, epochs: &str, extra: &[&str]) -> Output {
    let mut argv = vec!["train"];
    argv.extend(S);
    argv.extend(["--epochs", epochs, "--out", out.to_str().unwrap()]);
    argv.extend(extra);
    bitgrok_ok(&argv)
}

/// Asserts that `o` exited with `code` and that its stderr contains every one of `parts`.
fn assert_fails(o: &Output, code: i32, parts: &[&str]) {
    let e = stderr(o);
    assert_eq!(o.status.code(), Some(code), "{e}");
    for part in parts {
        assert!(e.contains(part), "expected {part:?} in: {e}");
    }
    assert!(!e.contains("panicked"), "{e}");
}

fn analysed_epoch(run: &Path) -> u64 {
    let text = std::fs::read_to_string(run.join("analysis/analysis.json")).unwrap();
    let json: serde_json::Value = serde_json::from_str(&text).unwrap();
    json["epoch"].as_u64().unwrap()
}

fn newest_checkpoint(run: &Path) -> usize {
    *RunDir::open(run)
        .unwrap()
        .checkpoint_epochs()
        .unwrap()
        .last()
        .unwrap()
}

#[test]
fn compare_reanalyses_a_run_trained_further_after_its_analysis() {
    let dir = tempfile::tempdir().unwrap();
    let (r, other) = (dir.path().join("r"), dir.path().join("other"));
    train(&r, "100", &[]);
    train(&other, "100", &["--seed", "1"]);
    bitgrok_ok(&["analyze", r.to_str().unwrap()]);
    assert_eq!(analysed_epoch(&r), 100);
    bitgrok_ok(&["train", "--resume", r.to_str().unwrap(), "--epochs", "200"]);
    // Moved, too: the comparison names it by where it is now.
    let moved = dir.path().join("moved");
    std::fs::rename(&r, &moved).unwrap();
    let out = dir.path().join("cmp");
    bitgrok_ok(&[
        "compare",
        moved.to_str().unwrap(),
        other.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(
        analysed_epoch(&moved),
        200,
        "the epoch-100 analysis was reused"
    );
    let report = std::fs::read_to_string(out.join("compare.md")).unwrap();
    assert!(report.contains("moved"), "{report}");
}

#[test]
fn an_edited_config_is_caught_against_the_checkpoints_and_the_split() {
    let dir = tempfile::tempdir().unwrap();
    let r = dir.path().join("r");
    train(&r, "20", &["--checkpoint-every", "10"]);
    let config = std::fs::read_to_string(r.join("config.json")).unwrap();
    let r_s = r.to_str().unwrap();

    std::fs::write(
        r.join("config.json"),
        config.replace("\"weights\": \"f32\"", "\"weights\": \"ternary\""),
    )
    .unwrap();
    assert_fails(
        &run(&["eval", r_s]),
        1,
        &["weights \"f32\" here, \"ternary\" in config.json"],
    );
    assert_fails(
        &run(&["train", "--resume", r_s]),
        1,
        &["config.json was changed"],
    );

    std::fs::write(
        r.join("config.json"),
        config.replace("\"frac\": 0.7", "\"frac\": 0.5"),
    )
    .unwrap();
    assert_fails(
        &run(&["eval", r_s]),
        1,
        &["split.json", "frac = 0.7", "frac = 0.5"],
    );
}

#[test]
fn force_replaces_only_runs_and_out_must_be_a_directory_of_its_own() {
    let dir = tempfile::tempdir().unwrap();
    // A project directory that is no run: never written into, with or without --force.
    let proj = dir.path().join("proj");
    std::fs::create_dir_all(proj.join("checkpoints")).unwrap();
    std::fs::write(proj.join("checkpoints/model.pt"), b"precious").unwrap();
    for force in [&[][..], &["--force"][..]] {
        let mut argv = vec!["train"];
        argv.extend(S);
        argv.extend(["--epochs", "10", "--out", proj.to_str().unwrap()]);
        argv.extend(force);
        assert_fails(&run(&argv), 2, &["holds no bitgrok run"]);
        assert_eq!(
            std::fs::read(proj.join("checkpoints/model.pt")).unwrap(),
            b"precious"
        );
        assert!(!proj.join("config.json").exists());
    }
    let file = dir.path().join("file");
    std::fs::write(&file, b"x").unwrap();
    let mut argv = vec!["train"];
    argv.extend(S);
    argv.extend(["--out", file.to_str().unwrap()]);
    assert_fails(&run(&argv), 2, &["is an existing file"]);
    let e = RunDir::check_new(Path::new("/"), true).unwrap_err();
    assert!(format!("{e}").contains("filesystem root"), "{e}");

    // A run replaced with --force: a user's own file in it stays.
    let r = dir.path().join("r");
    train(&r, "20", &["--checkpoint-every", "10"]);
    std::fs::write(r.join("checkpoints/notes.txt"), b"mine").unwrap();
    train(&r, "10", &["--force", "--seed", "1"]);
    assert_eq!(
        std::fs::read(r.join("checkpoints/notes.txt")).unwrap(),
        b"mine"
    );
    assert_eq!(newest_checkpoint(&r), 10);
}

#[test]
fn a_forced_replacement_removes_the_old_training_state_before_the_new_config() {
    let dir = tempfile::tempdir().unwrap();
    let r = dir.path().join("r");
    train(&r, "20", &["--checkpoint-every", "10"]);
    bitgrok_ok(&["analyze", r.to_str().unwrap()]);
    // What `train --force` does before it writes the new config: a kill right after it leaves
    // nothing of the old run that a resume could continue under the new settings.
    let replaced = RunDir::create(&r, true).unwrap();
    for old in [
        "resume.safetensors",
        "metrics.csv",
        "split.json",
        "config.json",
        "analysis",
    ] {
        assert!(!r.join(old).exists(), "{old} of the old run is left");
    }
    assert!(replaced.checkpoint_epochs().unwrap().is_empty());
    drop(replaced);
    assert_fails(
        &run(&["train", "--resume", r.to_str().unwrap()]),
        2,
        &["not a run directory"],
    );
}

#[test]
fn a_second_writer_is_refused_naming_the_first() {
    let dir = tempfile::tempdir().unwrap();
    let r = dir.path().join("r");
    train(&r, "10", &[]);
    let held = DirLock::acquire(&r).unwrap();
    let by = format!("in use by pid {}", std::process::id());
    assert_fails(
        &run(&["train", "--resume", r.to_str().unwrap(), "--epochs", "20"]),
        2,
        &[&by],
    );
    let mut argv = vec!["train"];
    argv.extend(S);
    argv.extend(["--epochs", "10", "--force", "--out", r.to_str().unwrap()]);
    assert_fails(&run(&argv), 2, &[&by]);
    drop(held);
    bitgrok_ok(&["train", "--resume", r.to_str().unwrap(), "--epochs", "20"]);

    let sweep = dir.path().join("sweep");
    std::fs::create_dir(&sweep).unwrap();
    let held = DirLock::acquire(&sweep).unwrap();
    let mut argv = vec!["sweep"];
    argv.extend(S);
    argv.extend(["--epochs", "10", "--out", sweep.to_str().unwrap()]);
    assert_fails(&run(&argv), 2, &[&by]);
    drop(held);
}

#[test]
fn concurrent_atomic_writes_of_one_file_use_their_own_temporaries() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.json");
    std::thread::scope(|s| {
        for t in 0..4u8 {
            let path = &path;
            s.spawn(move || {
                for _ in 0..50 {
                    bitgrok::run::write_atomic(path, &[t; 4096]).unwrap();
                }
            });
        }
    });
    let bytes = std::fs::read(&path).unwrap();
    assert!(bytes.len() == 4096 && bytes.iter().all(|&b| b == bytes[0]));
}

#[test]
fn an_existing_run_is_refused_before_an_adapter_is_looked_for() {
    let dir = tempfile::tempdir().unwrap();
    let r = dir.path().join("r");
    train(&r, "10", &[]);
    let o = common::bitgrok_without_adapter(&[])
        .arg("train")
        .args(S)
        .args(["--epochs", "10", "--out", r.to_str().unwrap()])
        .output()
        .unwrap();
    assert_fails(&o, 2, &["already holds a run"]);
}

#[test]
fn export_and_sweep_merge_never_overwrite_their_inputs() {
    let dir = tempfile::tempdir().unwrap();
    let r = dir.path().join("r");
    train(&r, "20", &["--checkpoint-every", "10"]);
    let own = r.join("checkpoints/epoch_00020.safetensors");
    let before = std::fs::read(&own).unwrap();
    let o = run(&[
        "export",
        r.to_str().unwrap(),
        "--epoch",
        "10",
        "--out",
        own.to_str().unwrap(),
    ]);
    assert_fails(&o, 2, &["is a file of the run itself"]);
    assert_eq!(std::fs::read(&own).unwrap(), before);

    let shard = |i: &str| -> PathBuf {
        let out = dir.path().join(format!("sh{i}"));
        let mut argv = vec!["sweep"];
        argv.extend(S);
        let spec = format!("{i}/2");
        argv.extend(["--epochs", "10", "--seeds", "0-1", "--shard", &spec]);
        argv.extend(["--out", out.to_str().unwrap()]);
        bitgrok_ok(&argv);
        out
    };
    let (sh0, sh1) = (shard("0"), shard("1"));
    let before = std::fs::read(sh0.join("sweep.json")).unwrap();
    let o = run(&[
        "sweep-merge",
        sh0.to_str().unwrap(),
        sh1.to_str().unwrap(),
        "--out",
        sh0.to_str().unwrap(),
    ]);
    assert_fails(&o, 2, &["is the shard"]);
    assert_eq!(std::fs::read(sh0.join("sweep.json")).unwrap(), before);
}

#[test]
fn an_interrupted_forced_sweep_continues_to_finished_models() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("sweep");
    let out_s = out.to_str().unwrap();
    let mut argv = vec!["sweep"];
    argv.extend(S);
    argv.extend(["--epochs", "300", "--seeds", "0-1", "--out", out_s]);
    bitgrok_ok(&argv);
    let model0 = out.join("f32-none-wd1-lr0.001-s0");
    assert_eq!(analysed_epoch(&model0), 300);

    // Interrupted once the forced sweep has trained (its model's metrics are new).
    let mut forced = argv.clone();
    forced.push("--force");
    let started = std::time::SystemTime::now();
    std::thread::sleep(std::time::Duration::from_millis(20));
    let child = bitgrok(&forced)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let metrics = model0.join("metrics.csv");
    let rewritten = || {
        std::fs::metadata(&metrics)
            .and_then(|m| m.modified())
            .is_ok_and(|t| t > started)
    };
    while !rewritten() {
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    let sent = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(sent.success());
    let o = child.wait_with_output().unwrap();
    assert_eq!(o.status.code(), Some(130), "{}", stderr(&o));
    assert!(stderr(&o).contains("without --force"), "{}", stderr(&o));

    bitgrok_ok(&argv);
    let file = bitgrok::sweep::file::SweepFile::read(&out).unwrap();
    assert_eq!(file.rows.len(), 2);
    for row in &file.rows {
        let run = out.join(&row.run);
        assert_eq!(row.epochs, 300, "{}", row.settings.name);
        assert_eq!(newest_checkpoint(&run), 300, "{}", row.settings.name);
        assert_eq!(analysed_epoch(&run), 300, "{}", row.settings.name);
    }
}

/// Rewrites the checkpoint of `epoch` in `run` with `edit` applied to its parameters.
fn edit_checkpoint(run: &Path, epoch: usize, edit: impl FnOnce(&mut Params)) {
    let dir = RunDir::open(run).unwrap();
    let config = dir.read_config().unwrap();
    let (_, mut p) = dir.load_checkpoint(&config.model, Some(epoch)).unwrap();
    edit(&mut p);
    dir.write_checkpoint(epoch, &p).unwrap();
}

#[test]
fn a_nan_in_a_checkpoint_or_an_imported_model_is_named_not_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let r = dir.path().join("r");
    train(&r, "20", &["--checkpoint-every", "10"]);
    edit_checkpoint(&r, 20, |p| {
        p.get_mut(bitgrok::model::ParamId::WIn)[3] = f64::NAN
    });
    let o = run(&["analyze", r.to_str().unwrap()]);
    assert_fails(&o, 1, &["blocks.0.mlp.W_in", "non-finite"]);
    let other = dir.path().join("other");
    train(&other, "20", &["--seed", "1"]);
    let cmp = dir.path().join("cmp");
    let o = run(&[
        "compare",
        r.to_str().unwrap(),
        other.to_str().unwrap(),
        "--out",
        cmp.to_str().unwrap(),
    ]);
    assert_fails(&o, 1, &["blocks.0.mlp.W_in"]);

    let exported = dir.path().join("model.safetensors");
    bitgrok_ok(&[
        "export",
        other.to_str().unwrap(),
        "--out",
        exported.to_str().unwrap(),
    ]);
    let mut bytes = std::fs::read(&exported).unwrap();
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    bytes[8 + n..8 + n + 4].copy_from_slice(&f32::NAN.to_le_bytes());
    std::fs::write(&exported, bytes).unwrap();
    let imported = dir.path().join("imported");
    let o = run(&[
        "import",
        exported.to_str().unwrap(),
        "--out",
        imported.to_str().unwrap(),
    ]);
    assert_fails(&o, 1, &["non-finite"]);
}

#[test]
fn flipped_bits_are_caught_by_the_checksum_and_old_checkpoints_still_load() {
    let dir = tempfile::tempdir().unwrap();
    let r = dir.path().join("r");
    train(&r, "20", &["--checkpoint-every", "10"]);
    let r_s = r.to_str().unwrap();
    let flip = |path: &Path| {
        let mut bytes = std::fs::read(path).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 0x10;
        std::fs::write(path, bytes).unwrap();
    };
    flip(&r.join("checkpoints/epoch_00010.safetensors"));
    assert_fails(
        &run(&["eval", r_s, "--epoch", "10"]),
        1,
        &["checksum", "epoch_00010"],
    );
    flip(&r.join("resume.safetensors"));
    assert_fails(
        &run(&["train", "--resume", r_s, "--epochs", "30"]),
        1,
        &["checksum", "resume.safetensors"],
    );

    // A checkpoint written before checksums existed: the same file without one.
    let dir_run = RunDir::open(&r).unwrap();
    let config = dir_run.read_config().unwrap();
    let (_, p) = dir_run.load_checkpoint(&config.model, Some(20)).unwrap();
    let meta = std::collections::HashMap::from([
        (
            "config".to_string(),
            serde_json::to_string(&config.model).unwrap(),
        ),
        ("epoch".to_string(), "20".to_string()),
    ]);
    let old = params::serialize(&[("", &p)], Some(meta)).unwrap();
    std::fs::write(dir_run.checkpoint_path(20), old).unwrap();
    bitgrok_ok(&["eval", r_s, "--epoch", "20"]);
}

/// `bitgrok args` with its allocations capped at 3 GB (`ulimit -d`; memory-mapped files do not
/// count): a read that grows without bound fails there instead of taking the machine's memory.
fn run_capped(args: &[&str]) -> Output {
    Command::new("sh")
        .arg("-c")
        .arg("ulimit -d 3000000 && exec \"$0\" \"$@\"")
        .arg(env!("CARGO_BIN_EXE_bitgrok"))
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn endless_and_huge_files_are_refused_before_they_are_read() {
    let dir = tempfile::tempdir().unwrap();
    let r = dir.path().join("r");
    train(&r, "20", &["--checkpoint-every", "10"]);
    let r_s = r.to_str().unwrap();
    let zero = Path::new("/dev/zero");
    // Each file of the run replaced by an endless one, and the command that reads it first.
    for (file, args) in [
        ("checkpoints/epoch_00020.safetensors", vec!["eval", r_s]),
        (
            "resume.safetensors",
            vec!["train", "--resume", r_s, "--epochs", "30"],
        ),
        (
            "metrics.csv",
            vec!["train", "--resume", r_s, "--epochs", "30"],
        ),
        ("split.json", vec!["eval", r_s]),
        ("config.json", vec!["eval", r_s]),
    ] {
        let path = r.join(file);
        let saved = dir.path().join("saved");
        std::fs::rename(&path, &saved).unwrap();
        std::os::unix::fs::symlink(zero, &path).unwrap();
        let o = run_capped(&args);
        assert_fails(&o, 1, &["is not a regular file"]);
        std::fs::remove_file(&path).unwrap();
        std::fs::rename(&saved, &path).unwrap();
    }
    let imported = dir.path().join("imported");
    let imported_s = imported.to_str().unwrap();
    assert_fails(
        &run_capped(&["import", "/dev/zero", "--out", imported_s]),
        1,
        &["is not a regular file"],
    );
    let exported = dir.path().join("model.safetensors");
    bitgrok_ok(&["export", r_s, "--out", exported.to_str().unwrap()]);
    let o = run_capped(&[
        "import",
        exported.to_str().unwrap(),
        "--config",
        "/dev/zero",
        "--out",
        imported_s,
    ]);
    assert_fails(&o, 1, &["is not a regular file"]);
    // A sparse file of 4 GB: its header is read, not its data.
    let sparse = dir.path().join("sparse.safetensors");
    std::fs::File::create(&sparse)
        .unwrap()
        .set_len(4 << 30)
        .unwrap();
    let o = run_capped(&["import", sparse.to_str().unwrap(), "--out", imported_s]);
    assert_fails(&o, 1, &["not a valid safetensors file"]);

    // An in-bounds config of a huge model: refused from the checkpoint's header, not allocated.
    let config = std::fs::read_to_string(r.join("config.json")).unwrap();
    let huge = config
        .replace("\"p\": 13", "\"p\": 4096")
        .replace("\"d_model\": 16", "\"d_model\": 16384")
        .replace("\"d_head\": 8", "\"d_head\": 8192")
        .replace("\"d_mlp\": 32", "\"d_mlp\": 16384");
    std::fs::write(r.join("config.json"), huge).unwrap();
    std::fs::remove_file(r.join("split.json")).unwrap();
    let o = run_capped(&["eval", r_s]);
    assert_fails(&o, 1, &["config.json was changed"]);
}
