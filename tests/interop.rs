//! TransformerLens export and import, and the real model of Nanda et al. 2023: an export computes
//! bitgrok's logits in an independent numpy reader, export → import gives identical logits, the
//! original-layout checkpoint imports, generalises and analyses, and bad files are refused with
//! the tensor named.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use bitgrok::engine::device::Gpu;
use bitgrok::engine::Engine;
use bitgrok::error::is_usage_error;
use bitgrok::interop::{export, import};
use bitgrok::model::{ModelConfig, ParamId, Params};
use bitgrok::report;
use bitgrok::run::RunDir;
use bitgrok::task::Examples;
use common::{bitgrok_ok, small_model};
use safetensors::SafeTensors;

fn gpu() -> Gpu {
    Gpu::new(None).expect("these tests need a GPU adapter (lavapipe will do)")
}

/// Trains a small run of `preset` in `dir/name`.
fn small_run(dir: &Path, name: &str, preset: &str) -> PathBuf {
    let out = dir.join(name);
    let mut args = vec!["train", "--preset", preset];
    args.extend(small_model("11", "0.7"));
    args.extend(["--epochs", "40", "--checkpoint-every", "20"]);
    args.extend(["--out", out.to_str().unwrap()]);
    bitgrok_ok(&args);
    out
}

/// Last-position logits of every pair `[a, b, =]` (a-major) of a run's newest checkpoint, from
/// the GPU engine.
fn engine_logits(gpu: &Gpu, run: &Path) -> (ModelConfig, Vec<f32>) {
    let dir = RunDir::open(run).unwrap();
    let config = dir.read_config().unwrap();
    let (_, params) = dir.load_checkpoint(&config.model, None).unwrap();
    let all = Examples::all(config.model.p);
    let mut engine = Engine::new(gpu, &params, &all, None, &config.adamw).unwrap();
    let logits = engine.forward_train_batch(0).unwrap().logits;
    (config.model, logits)
}

fn export_run(run: &Path, out: &Path) -> export::Exported {
    export::export(run, None, out).unwrap()
}

fn import_export(exported: &export::Exported, out: &Path) -> import::Imported {
    let config = import::read_import_config(&exported.config).unwrap();
    import::import(&exported.weights, &config, out, false).unwrap()
}

#[test]
fn a_numpy_reader_of_the_export_computes_bitgroks_logits() {
    let gpu = gpu();
    let dir = tempfile::tempdir().unwrap();
    let run = small_run(dir.path(), "nanda", "nanda");
    let exported = export_run(&run, &dir.path().join("model.safetensors"));
    assert!(exported.note.exact_in_transformer_lens);
    let npy = dir.path().join("logits.npy");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/transformer_lens_forward.py");
    let o = Command::new("python3")
        .arg(&script)
        .arg(&exported.weights)
        .arg(&npy)
        .output()
        .expect("python3 is needed (with numpy and safetensors; .ci/run installs them)");
    assert!(
        o.status.success(),
        "the numpy reader failed (pip install numpy safetensors): {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let theirs = read_npy_f64(&npy);
    let (c, ours) = engine_logits(&gpu, &run);
    assert_eq!(theirs.len(), c.p * c.p * c.d_vocab_out());
    let scale = theirs.iter().fold(0.0f64, |m, x| m.max(x.abs()));
    let worst = ours
        .iter()
        .zip(&theirs)
        .map(|(&a, &b)| (a as f64 - b).abs())
        .fold(0.0, f64::max);
    assert!(
        worst <= 1e-5 * scale,
        "numpy logits differ from bitgrok's by {worst:e} (scale {scale:e})"
    );
}

/// The data of a little-endian float64 .npy file.
fn read_npy_f64(path: &Path) -> Vec<f64> {
    let bytes = std::fs::read(path).unwrap();
    assert_eq!(&bytes[..6], b"\x93NUMPY");
    let header_len = u16::from_le_bytes([bytes[8], bytes[9]]) as usize;
    let header = String::from_utf8_lossy(&bytes[10..10 + header_len]);
    assert!(header.contains("'<f8'"), "{header}");
    bytes[10 + header_len..]
        .chunks_exact(8)
        .map(|c| f64::from_le_bytes(c.try_into().unwrap()))
        .collect()
}

#[test]
fn export_then_import_gives_identical_logits() {
    let gpu = gpu();
    let dir = tempfile::tempdir().unwrap();
    let run = small_run(dir.path(), "nanda", "nanda");
    let exported = export_run(&run, &dir.path().join("model.safetensors"));
    let imported = import_export(&exported, &dir.path().join("back"));
    assert_eq!(imported.layout, import::Layout::TransformerLens);
    let (_, before) = engine_logits(&gpu, &run);
    let (c, after) = engine_logits(&gpu, &imported.run);
    assert!(c.biases, "TransformerLens names every bias");
    assert_eq!(before, after);
}

#[test]
fn a_ternary_export_says_what_transformer_lens_cannot_express_and_round_trips() {
    let gpu = gpu();
    let dir = tempfile::tempdir().unwrap();
    let run = small_run(dir.path(), "ternary", "seed-bitnet");
    let exported = export_run(&run, &dir.path().join("model.safetensors"));
    let note = &exported.note;
    assert!(!note.exact_in_transformer_lens);
    let missing = note.not_expressible.join("\n");
    for what in ["RMS norm", "int8", "ln_final"] {
        assert!(missing.contains(what), "{what} not mentioned: {missing}");
    }
    // Effective weights: every row of W_in takes at most three values.
    let bytes = std::fs::read(&exported.weights).unwrap();
    let st = SafeTensors::deserialize(&bytes).unwrap();
    let w_in: Vec<f32> =
        bytemuck::cast_slice(st.tensor("blocks.0.mlp.W_in").unwrap().data()).to_vec();
    let mut levels: Vec<i64> = w_in.iter().map(|x| (x * 1e6).round() as i64).collect();
    levels.sort();
    levels.dedup();
    assert!(
        levels.len() <= 3,
        "W_in is not ternary: {} levels",
        levels.len()
    );

    // Back in bitgrok, with the switches the export recorded, the model computes the same logits
    // (up to the rounding of the scales, which can move an int8 code by one).
    let imported = import_export(&exported, &dir.path().join("back"));
    let (_, before) = engine_logits(&gpu, &run);
    let (c, after) = engine_logits(&gpu, &imported.run);
    assert_eq!(c.act_quant, bitgrok::model::ActQuant::Int8);
    let norm: f64 = before
        .iter()
        .map(|&x| (x as f64).powi(2))
        .sum::<f64>()
        .sqrt();
    let err: f64 = before
        .iter()
        .zip(&after)
        .map(|(&a, &b)| (a as f64 - b as f64).powi(2))
        .sum::<f64>()
        .sqrt();
    assert!(err <= 1e-3 * norm, "relative L2 difference {}", err / norm);
}

/// The published paper's binary model with every matrix quantised (`--quantize all
/// --weight-scale none --weight-centre mean`) on the `nanda` architecture: its export holds
/// every weight matrix as exactly +-1, names them in the note, is exact in TransformerLens (the
/// forward pass is a plain transformer of the effective weights), and comes back with the same
/// logits.
#[test]
fn a_fully_quantised_export_holds_signs_and_round_trips() {
    let gpu = gpu();
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("binary-all");
    let mut args = vec!["train", "--preset", "nanda", "--weights", "binary"];
    args.extend([
        "--quantize",
        "all",
        "--weight-scale",
        "none",
        "--weight-centre",
        "mean",
    ]);
    args.extend(small_model("11", "0.7"));
    args.extend(["--epochs", "20", "--checkpoint-every", "20"]);
    args.extend(["--out", run.to_str().unwrap()]);
    bitgrok_ok(&args);
    let exported = export_run(&run, &dir.path().join("model.safetensors"));
    let note = &exported.note;
    assert!(note.exact_in_transformer_lens, "{:?}", note.not_expressible);
    let notes = note.notes.join("\n");
    for name in [
        "embed.W_E",
        "pos_embed.W_pos",
        "unembed.W_U",
        "blocks.0.mlp.W_in",
    ] {
        assert!(notes.contains(name), "{name} not named: {notes}");
    }
    let bytes = std::fs::read(&exported.weights).unwrap();
    let st = SafeTensors::deserialize(&bytes).unwrap();
    for id in [
        ParamId::WE,
        ParamId::WPos,
        ParamId::WQ,
        ParamId::WOut,
        ParamId::WU,
    ] {
        let w: &[f32] = bytemuck::cast_slice(st.tensor(id.name()).unwrap().data());
        assert!(
            w.iter().all(|&x| x.abs() == 1.0),
            "{} is not +-1",
            id.name()
        );
    }
    let imported = import_export(&exported, &dir.path().join("back"));
    let (_, before) = engine_logits(&gpu, &run);
    let (_, after) = engine_logits(&gpu, &imported.run);
    let scale = before.iter().fold(0.0f32, |m, x| m.max(x.abs()));
    let err = before
        .iter()
        .zip(&after)
        .fold(0.0f32, |m, (a, b)| m.max((a - b).abs()));
    assert!(
        err <= 1e-5 * scale,
        "logits differ by {err} (scale {scale})"
    );
}

fn nanda2023() -> PathBuf {
    bitgrok::testvectors::shared_dir()
        .parent()
        .unwrap()
        .join("external/nanda2023-low-precision-mod-addition.safetensors")
}

#[test]
fn the_nanda_2023_model_imports_generalises_and_analyses() {
    let gpu = gpu();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("nanda2023");
    let imported = import::import(&nanda2023(), &Default::default(), &out, false).unwrap();
    let c = &imported.config;
    assert_eq!(imported.layout, import::Layout::Nanda2023);
    assert_eq!(
        (c.p, c.d_model, c.n_heads, c.d_head, c.d_mlp),
        (113, 128, 4, 32, 512)
    );
    assert!(c.biases && c.eq_output && c.pos_embed && c.causal);
    assert_eq!(imported.epoch, 50_000);

    // The stored curves become the run's metrics.
    let metrics =
        bitgrok::metrics::read(&RunDir::open(&out).unwrap().metrics_path(), 100_000).unwrap();
    assert_eq!(metrics.len(), 50_000);
    assert!(metrics[0].train_loss > 4.0 && metrics[0].test_loss > 4.0);
    assert!(metrics[1].test_loss.is_nan() && metrics[10].test_loss.is_finite());
    assert!(metrics.last().unwrap().train_loss < 1e-2);

    let an = report::analyze(&gpu, &out, None, false).unwrap();
    let s = &an.summary;
    assert!(
        s.accuracy_all_pairs > 0.99,
        "accuracy on all pairs {}",
        s.accuracy_all_pairs
    );
    assert!(
        s.final_test_loss < 0.1,
        "final test loss {}",
        s.final_test_loss
    );
    assert!(
        (2..=8).contains(&s.key_frequencies.len()),
        "{:?}",
        s.key_frequencies
    );
    assert!(
        s.neurons.clustered_fraction > 0.5,
        "clustered {}",
        s.neurons.clustered_fraction
    );
    assert!(an.out_dir.join("training_curves.png").exists());

    // The algorithm at the logits: about half of the centred logit variance is of the clock
    // form (the wrong classes carry the rest), yet the loss depends on the key frequencies alone.
    let a = &s.algorithm;
    assert!(
        (0.3..0.7).contains(&a.clock_form_fraction),
        "{}",
        a.clock_form_fraction
    );
    assert!(report::levels::LevelSummary::of(s).key_algorithm, "{a:?}");
    assert_eq!(s.clock_pizza.kind, "clock");

    // Every level measure agrees with an independent numpy implementation.
    let exported = export_run(&out, &dir.path().join("nanda2023-tl.safetensors"));
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/check_measures.py");
    let o = Command::new("python3")
        .arg(&script)
        .arg(&exported.weights)
        .arg(an.out_dir.join("analysis.json"))
        .output()
        .expect("python3 is needed (with numpy and safetensors; .ci/run installs them)");
    assert!(
        o.status.success(),
        "the numpy check disagrees:\n{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );

    // Through TransformerLens's layout and back, it is the same model: compare says so at every
    // level, counting accuracy on all pairs as generalisation for runs without an accuracy curve.
    let back = import_export(&exported, &dir.path().join("back"));
    let report =
        report::compare::compare(&gpu, &[out, back.run], &dir.path().join("compare")).unwrap();
    let text = std::fs::read_to_string(report).unwrap();
    for level in [
        "**Features (the embedding): same",
        "**Algorithm (what the logits compute, causally): same",
        "**Implementation (how neurons carry it): same",
    ] {
        assert!(text.contains(level), "{level} missing from:\n{text}");
    }
}

/// Writes a safetensors file of f32 zeros with the given names and shapes.
fn zeros_file(path: &Path, tensors: &[(&str, Vec<usize>)]) {
    let data: Vec<Vec<u8>> = tensors
        .iter()
        .map(|(_, s)| vec![0u8; 4 * s.iter().product::<usize>()])
        .collect();
    let views: Vec<(String, safetensors::tensor::TensorView)> = tensors
        .iter()
        .zip(&data)
        .map(|((n, s), d)| {
            (
                n.to_string(),
                safetensors::tensor::TensorView::new(safetensors::Dtype::F32, s.clone(), d)
                    .unwrap(),
            )
        })
        .collect();
    std::fs::write(path, safetensors::serialize(views, None).unwrap()).unwrap();
}

/// Tensor names and shapes.
type Tensors = Vec<(&'static str, Vec<usize>)>;

/// A TransformerLens-layout model (p = 5, D 8, 2 heads × 4, M 16), with one tensor's shape
/// replaced.
fn tl_tensors(bad: Option<(&'static str, Vec<usize>)>) -> Tensors {
    let config = ModelConfig {
        p: 5,
        d_model: 8,
        n_heads: 2,
        d_head: 4,
        d_mlp: 16,
        ..ModelConfig::preset(bitgrok::model::Preset::Nanda, 5)
    };
    Params::zeros(&config)
        .ids()
        .map(|id: ParamId| {
            let shape = match &bad {
                Some((name, s)) if *name == id.name() => s.clone(),
                _ => id.shape(&config),
            };
            (id.name(), shape)
        })
        .collect()
}

#[test]
fn bad_files_are_refused_naming_the_tensor() {
    let dir = tempfile::tempdir().unwrap();
    let cases: Vec<(Tensors, &str)> = vec![
        (
            tl_tensors(Some(("blocks.0.attn.W_K", vec![2, 8, 5]))),
            "blocks.0.attn.W_K",
        ),
        (tl_tensors(Some(("unembed.W_U", vec![8, 9]))), "unembed.W_U"),
        (
            {
                let mut t = tl_tensors(None);
                t.push(("blocks.0.ln1.w", vec![8]));
                t
            },
            "blocks.0.ln1.w",
        ),
        (
            tl_tensors(None)
                .into_iter()
                .filter(|(n, _)| *n != "blocks.0.mlp.W_out")
                .collect(),
            "blocks.0.mlp.W_out",
        ),
    ];
    for (i, (tensors, name)) in cases.into_iter().enumerate() {
        let path = dir.path().join(format!("bad{i}.safetensors"));
        zeros_file(&path, &tensors);
        let err = import::import(
            &path,
            &Default::default(),
            &dir.path().join(format!("run{i}")),
            false,
        )
        .err()
        .unwrap_or_else(|| panic!("case {i} was accepted"));
        assert!(format!("{err:#}").contains(name), "case {i}: {err:#}");
        assert!(!dir.path().join(format!("run{i}")).exists());
        assert!(is_usage_error(&err), "case {i}: {err:#}");
    }
    // A config that disagrees with the tensors.
    let path = dir.path().join("good.safetensors");
    zeros_file(&path, &tl_tensors(None));
    let config = import::ImportConfig {
        d_mlp: Some(32),
        ..Default::default()
    };
    let err = import::import(&path, &config, &dir.path().join("run"), false)
        .err()
        .expect("a d_mlp that disagrees was accepted");
    assert!(format!("{err}").contains("d_mlp = 32"), "{err}");
    assert!(is_usage_error(&err));
}
