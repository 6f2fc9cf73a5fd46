//! Helpers of the integration tests: driving the `bitgrok` binary, and small models.
// Each test crate uses its own subset.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

pub fn bitgrok(args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_bitgrok"));
    c.args(args);
    c
}

/// Starts `bitgrok args`, sends it SIGINT once `started` exists (a file the command writes
/// after its first submission), and waits for it to exit.
pub fn interrupt_once_written(args: &[&str], started: &Path) -> Output {
    let child = bitgrok(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !started.exists() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    let sent = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(sent.success());
    child.wait_with_output().unwrap()
}

/// `bitgrok args` with no adapter to find: only a backend this platform lacks is searched (no
/// Metal off Apple machines; on a Mac, no DX12).
pub fn bitgrok_without_adapter(args: &[&str]) -> Command {
    let backend = if cfg!(target_os = "macos") {
        "dx12"
    } else {
        "metal"
    };
    let mut c = bitgrok(args);
    c.env("WGPU_BACKEND", backend);
    c
}

/// Runs `bitgrok args` to completion; fails the test, showing its output, unless it succeeds.
pub fn bitgrok_ok(args: &[&str]) -> Output {
    let o = bitgrok(args).output().unwrap();
    assert!(
        o.status.success(),
        "bitgrok {args:?} failed:\n{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    o
}

/// `train` options of the small model the tests train: modulus `p`, `frac`, d_model 32
/// (4 heads × 8), d_mlp 64.
pub fn small_model(p: &'static str, frac: &'static str) -> Vec<&'static str> {
    vec![
        "--p",
        p,
        "--frac",
        frac,
        "--d-model",
        "32",
        "--d-head",
        "8",
        "--d-mlp",
        "64",
    ]
}

/// Every file of a run directory, by relative path (temporary files excluded).
pub fn files(root: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut out = BTreeMap::new();
    for dir in [root.to_path_buf(), root.join("checkpoints")] {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            if path.is_file() && !name.ends_with(".tmp") {
                let rel = path.strip_prefix(root).unwrap().to_path_buf();
                out.insert(rel, std::fs::read(&path).unwrap());
            }
        }
    }
    out
}

pub fn assert_same_files(a: &Path, b: &Path) {
    assert_same(&files(a), &files(b));
}

pub fn assert_same(fa: &BTreeMap<PathBuf, Vec<u8>>, fb: &BTreeMap<PathBuf, Vec<u8>>) {
    assert_eq!(
        fa.keys().collect::<Vec<_>>(),
        fb.keys().collect::<Vec<_>>(),
        "the runs hold different files"
    );
    for (name, bytes) in fa {
        assert!(bytes == &fb[name], "{} differs", name.display());
    }
}

/// A model small enough for finite differences (p = 5, d_model 8, 2 heads, d_mlp 16) with
/// these switches, TransformerLens's initialisation, no biases.
pub fn tiny_config(
    weights: bitgrok::model::Weights,
    act_quant: bitgrok::model::ActQuant,
    linear_norm: bitgrok::model::LinearNorm,
    pos_embed: bool,
    causal: bool,
    final_norm: bool,
) -> bitgrok::model::ModelConfig {
    use bitgrok::model::{Init, ModelConfig, Preset};
    ModelConfig {
        p: 5,
        d_model: 8,
        n_heads: 2,
        d_head: 4,
        d_mlp: 16,
        weights,
        act_quant,
        linear_norm,
        pos_embed,
        causal,
        final_norm,
        biases: false,
        eq_output: false,
        init: Init::TransformerLens,
        ..ModelConfig::preset(Preset::Nanda, 5)
    }
}

/// [`tiny_config`] with ternary weights everywhere (`--quantize all`), positional embeddings and
/// causal attention.
pub fn tiny_fully_quantised(final_norm: bool) -> bitgrok::model::ModelConfig {
    use bitgrok::model::{ActQuant, LinearNorm, QuantScope, Weights};
    bitgrok::model::ModelConfig {
        quantize: QuantScope::ALL,
        ..tiny_config(
            Weights::Ternary,
            ActQuant::None,
            LinearNorm::None,
            true,
            true,
            final_norm,
        )
    }
}
