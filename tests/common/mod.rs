//! Helpers of the integration tests that drive the `bitgrok` binary.
// Each test crate uses its own subset.
#![allow(dead_code)]

use std::process::{Command, Output};

pub fn bitgrok(args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_bitgrok"));
    c.args(args);
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
