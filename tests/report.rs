//! `analyze` and `compare` on small trained runs: every figure is a valid, non-blank PNG, the
//! numbers are written, and the comparison has a verdict.

mod common;

use std::path::Path;

use common::{bitgrok_ok as bitgrok, small_model};

fn train(dir: &Path, name: &str, extra: &[&str]) -> String {
    let out = dir.join(name).to_str().unwrap().to_string();
    let mut args = vec!["train"];
    args.extend(small_model("13", "0.6"));
    args.extend(["--epochs", "300", "--checkpoint-every", "50", "--out", &out]);
    args.extend_from_slice(extra);
    bitgrok(&args);
    out
}

/// Decodes a PNG and checks it is a real figure: a sensible size and many colours.
fn assert_figure(path: &Path) {
    let img = image::open(path)
        .unwrap_or_else(|e| panic!("{} is not a valid PNG: {e}", path.display()))
        .to_rgb8();
    let (w, h) = img.dimensions();
    assert!(
        w >= 400 && h >= 300,
        "{}: {w}x{h} is too small",
        path.display()
    );
    let mut colours: Vec<[u8; 3]> = img.pixels().map(|p| p.0).collect();
    colours.sort();
    colours.dedup();
    assert!(
        colours.len() >= 8,
        "{} looks blank ({} colours)",
        path.display(),
        colours.len()
    );
}

fn figures_of(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut pngs: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "png"))
        .collect();
    pngs.sort();
    pngs
}

#[test]
fn analyze_and_compare_write_every_figure() {
    let dir = tempfile::tempdir().unwrap();
    let fp = train(dir.path(), "fp", &["--preset", "nanda"]);
    let tern = train(dir.path(), "tern", &["--preset", "seed-bitnet"]);
    for run in [&fp, &tern] {
        bitgrok(&["analyze", run]);
        let analysis = Path::new(run).join("analysis");
        let json: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(analysis.join("analysis.json")).unwrap())
                .unwrap();
        assert_eq!(
            json["progress"].as_array().unwrap().len(),
            7,
            "one progress point per checkpoint (0, 50, ..., 300)"
        );
        let report = std::fs::read_to_string(analysis.join("report.md")).unwrap();
        let pngs = figures_of(&analysis);
        assert!(pngs.len() >= 15, "{run}: only {} figures", pngs.len());
        for png in &pngs {
            assert_figure(png);
            let name = png.file_name().unwrap().to_str().unwrap();
            assert!(
                report.contains(&format!("({name})")),
                "report.md does not show {name}"
            );
        }
    }
    assert!(Path::new(&tern)
        .join("analysis/quantised_patterns.png")
        .exists());
    assert!(!Path::new(&fp)
        .join("analysis/quantised_patterns.png")
        .exists());

    let out = dir.path().join("cmp");
    bitgrok(&["compare", &fp, &tern, "--out", out.to_str().unwrap()]);
    let md = std::fs::read_to_string(out.join("compare.md")).unwrap();
    assert!(md.contains("Criteria:"), "the verdict states its criteria");
    for png in figures_of(&out) {
        assert_figure(&png);
    }
}

/// Even moduli end to end: the Nyquist frequency has a cosine and no sine, and every figure and
/// measure takes the frequency count from the Fourier basis (this once failed with "11 labels
/// for 12 bars" at p = 24). Train, analyze, compare with an odd-p run, export, sweep and
/// sweep-report.
#[test]
fn even_p_runs_end_to_end() {
    let dir = tempfile::tempdir().unwrap();
    let path = |name: &str| dir.path().join(name).to_str().unwrap().to_string();
    let model = ["--d-model", "32", "--d-head", "8", "--d-mlp", "64"];
    let mut runs = Vec::new();
    for p in ["12", "13"] {
        let out = path(&format!("p{p}"));
        let mut args = vec!["train", "--preset", "nanda", "--p", p, "--frac", "0.6"];
        args.extend(model);
        args.extend(["--epochs", "100", "--checkpoint-every", "50", "--out", &out]);
        bitgrok(&args);
        bitgrok(&["analyze", &out]);
        let analysis = Path::new(&out).join("analysis");
        let json: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(analysis.join("analysis.json")).unwrap())
                .unwrap();
        let k: usize = p.parse::<usize>().unwrap() / 2;
        assert_eq!(json["embedding_energy_share"].as_array().unwrap().len(), k);
        assert_eq!(
            json["neuron_level"]["thresholds"].as_array().unwrap().len(),
            json["neuron_level"]["clustered_pre"]
                .as_array()
                .unwrap()
                .len()
        );
        for png in figures_of(&analysis) {
            assert_figure(&png);
        }
        runs.push(out);
    }
    let cmp = path("cmp");
    bitgrok(&["compare", &runs[0], &runs[1], "--out", &cmp]);
    assert!(std::fs::read_to_string(Path::new(&cmp).join("compare.md"))
        .unwrap()
        .contains("Criteria:"));
    let export = path("p12.safetensors");
    bitgrok(&["export", &runs[0], "--out", &export]);
    assert!(Path::new(&export).exists());

    let sweep = path("sweep");
    let mut args = vec!["sweep", "--preset", "nanda", "--p", "12", "--frac", "0.6"];
    args.extend(model);
    args.extend([
        "--epochs",
        "60",
        "--checkpoint-every",
        "30",
        "--seeds",
        "0-1",
        "--out",
        &sweep,
    ]);
    bitgrok(&args);
    bitgrok(&["sweep-report", &sweep]);
    assert!(Path::new(&sweep).join("report/sweep_report.md").exists());
}
