//! Files from other people: every loader (checkpoint, resume point, run config, metrics, test
//! vector, import of an external checkpoint, sweep.json) meets corrupt, truncated and hostile input
//! with an error, never a panic or an unbounded allocation. A kept corpus of hostile files
//! (tests/corpus/loaders) runs first, then a bounded proptest pass mutates valid files and the
//! corpus.

use std::path::{Path, PathBuf};

use bitgrok::interop::import;
use bitgrok::metrics;
use bitgrok::model::{ModelConfig, Params, Preset, Weights};
use bitgrok::optim::OptimizerState;
use bitgrok::run::{ResumePoint, RunConfig, RunDir};
use bitgrok::sweep::file::SweepFile;
use bitgrok::sweep::{Shard, SweepSpec};
use bitgrok::testvectors;
use proptest::prelude::*;

fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus/loaders")
}

fn corpus() -> Vec<(String, Vec<u8>)> {
    let mut files: Vec<(String, Vec<u8>)> = std::fs::read_dir(corpus_dir())
        .unwrap()
        .map(|e| {
            let path = e.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            (name, std::fs::read(&path).unwrap())
        })
        .collect();
    files.sort();
    assert!(files.len() >= 10, "the corpus is missing");
    files
}

fn small_config() -> RunConfig {
    let mut model = ModelConfig::preset(Preset::Nanda, 5);
    (model.d_model, model.n_heads, model.d_head, model.d_mlp) = (8, 2, 4, 16);
    RunConfig {
        preset: Preset::Nanda,
        model,
        frac: 0.5,
        data_seed: 1,
        seed: 0,
        adamw: Default::default(),
        epochs: 10,
        eval_every: 1,
        checkpoint_every: 5,
        stop_after_grok: None,
        crate_version: String::new(),
        adapter: String::new(),
        imported_from: None,
    }
}

/// Valid files of each kind, written by bitgrok itself: the seeds of the mutations.
fn valid_files() -> Vec<(String, Vec<u8>)> {
    let dir = tempfile::tempdir().unwrap();
    let run = RunDir::create(dir.path(), false).unwrap();
    let config = small_config();
    let params = Params::init(&config.model, 3);
    run.write_config(&config).unwrap();
    run.write_checkpoint(5, &params).unwrap();
    run.write_resume_point(&ResumePoint {
        epoch: 5,
        params: params.clone(),
        optimizer: OptimizerState {
            step: 5,
            m: params.clone(),
            v: params,
        },
    })
    .unwrap();
    let read = |p: PathBuf| std::fs::read(p).unwrap();
    let vector = testvectors::shared_dir().join("tiny-seed-bitnet.safetensors");
    vec![
        ("config.json".into(), read(run.config_path())),
        ("checkpoint.safetensors".into(), read(run.checkpoint_path(5))),
        ("resume.safetensors".into(), read(run.resume_path())),
        ("metrics.csv".into(), b"epoch,train_loss,test_loss,train_acc,test_acc,test_acc_transpose_seen,test_acc_transpose_unseen\n1,4.5e0,4.6e0,0.1,0,0,0\n".to_vec()),
        ("vector.safetensors".into(), read(vector)),
        ("sweep.json".into(), sweep_json()),
    ]
}

/// A sweep's sweep.json as `bitgrok sweep` writes it before its first model finishes.
fn sweep_json() -> Vec<u8> {
    let c = small_config();
    let spec = SweepSpec {
        preset: c.preset,
        p: c.model.p,
        frac: c.frac,
        d_model: c.model.d_model,
        n_heads: c.model.n_heads,
        d_head: c.model.d_head,
        d_mlp: c.model.d_mlp,
        epochs: c.epochs,
        eval_every: c.eval_every,
        checkpoint_every: c.checkpoint_every,
        stop_after_grok: None,
        data_seed: c.data_seed,
        split: Default::default(),
        overrides: Default::default(),
        axes: Vec::new(),
        weights: vec![Weights::F32, Weights::Ternary],
        act_quant: vec![c.model.act_quant],
        weight_decay: vec![1.0],
        lr: vec![1e-3],
        seeds: vec![0, 1],
    };
    let dir = tempfile::tempdir().unwrap();
    let file = SweepFile {
        spec,
        shard: Shard { index: 1, count: 2 },
        rows: Vec::new(),
    };
    file.write(dir.path()).unwrap();
    std::fs::read(dir.path().join("sweep.json")).unwrap()
}

/// Feeds `bytes` to every loader as each kind of file; returns which loaders accepted it
/// (checkpoint, resume point, config, metrics, test vector, import, sweep with its plan). A
/// panic fails the test.
fn load_everywhere(bytes: &[u8]) -> [bool; 7] {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let config = small_config();
    let run = RunDir::create(root, false).unwrap();
    let file = root.join("input");
    std::fs::write(&file, bytes).unwrap();
    let checkpoint = Params::load(&config.model, &file).is_ok();
    std::fs::write(run.resume_path(), bytes).unwrap();
    let resume = run.read_resume_point(&config.model).is_ok();
    std::fs::write(run.config_path(), bytes).unwrap();
    let run_config = run.read_config().is_ok();
    let metrics = metrics::read(&file, 100_000).is_ok();
    let vector = testvectors::load(&file).is_ok();
    let imported =
        import::import(&file, &Default::default(), &root.join("imported"), false).is_ok();
    std::fs::write(root.join("sweep.json"), bytes).unwrap();
    let sweep = SweepFile::read(root).and_then(|f| f.spec.plan()).is_ok();
    [
        checkpoint, resume, run_config, metrics, vector, imported, sweep,
    ]
}

#[test]
fn valid_files_load() {
    let accepted: Vec<[bool; 7]> = valid_files()
        .iter()
        .map(|(_, b)| load_everywhere(b))
        .collect();
    assert!(accepted[0][2], "config");
    assert!(
        accepted[1][0] && accepted[1][5],
        "checkpoint (and its import)"
    );
    assert!(accepted[2][0] && accepted[2][1], "resume point");
    assert!(accepted[3][3], "metrics");
    assert!(accepted[4][4], "test vector");
    assert!(accepted[5][6], "sweep");
}

#[test]
fn every_corpus_file_is_refused_by_every_loader() {
    for (name, bytes) in corpus() {
        let accepted = load_everywhere(&bytes);
        assert_eq!(accepted, [false; 7], "{name} was accepted by a loader");
    }
}

/// One corruption of a file.
#[derive(Clone, Debug)]
enum Mutation {
    Truncate(usize),
    SetBytes(Vec<(usize, u8)>),
    /// Replaces the run of ASCII digits around a position with a (possibly huge) number: turns
    /// shapes, offsets, sizes and header lengths hostile while the JSON stays well-formed.
    Number(usize, u64),
    HeaderLength(u64),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        any::<usize>().prop_map(Mutation::Truncate),
        prop::collection::vec((any::<usize>(), any::<u8>()), 1..8).prop_map(Mutation::SetBytes),
        (
            any::<usize>(),
            prop_oneof![0..1000u64, any::<u64>(), Just(u64::MAX)]
        )
            .prop_map(|(i, n)| Mutation::Number(i, n)),
        any::<u64>().prop_map(Mutation::HeaderLength),
    ]
}

fn apply(bytes: &[u8], m: &Mutation) -> Vec<u8> {
    let mut out = bytes.to_vec();
    if out.is_empty() {
        return out;
    }
    match m {
        Mutation::Truncate(n) => out.truncate(n % out.len()),
        Mutation::SetBytes(edits) => {
            let len = out.len();
            for &(i, b) in edits {
                out[i % len] = b;
            }
        }
        Mutation::Number(i, n) => {
            let digits: Vec<usize> = (0..out.len())
                .filter(|&j| out[j].is_ascii_digit())
                .collect();
            if let Some(&at) = digits.get(i % digits.len().max(1)) {
                let start = (0..=at)
                    .rev()
                    .take_while(|&j| out[j].is_ascii_digit())
                    .last()
                    .unwrap();
                let end = (at..out.len())
                    .take_while(|&j| out[j].is_ascii_digit())
                    .last()
                    .unwrap()
                    + 1;
                out.splice(start..end, n.to_string().into_bytes());
            }
        }
        Mutation::HeaderLength(n) => {
            let k = out.len().min(8);
            out[..k].copy_from_slice(&n.to_le_bytes()[..k]);
        }
    }
    out
}

fn seeds() -> &'static [(String, Vec<u8>)] {
    static SEEDS: std::sync::OnceLock<Vec<(String, Vec<u8>)>> = std::sync::OnceLock::new();
    SEEDS.get_or_init(|| valid_files().into_iter().chain(corpus()).collect())
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 2000,
        failure_persistence: Some(Box::new(
            proptest::test_runner::FileFailurePersistence::WithSource("regressions")
        )),
        ..ProptestConfig::default()
    })]

    #[test]
    fn mutated_files_never_panic_a_loader(
        seed in any::<prop::sample::Index>(),
        mutations in prop::collection::vec(mutation(), 1..4),
    ) {
        let (_, bytes) = seed.get(seeds());
        let bytes = mutations.iter().fold(bytes.clone(), |b, m| apply(&b, m));
        load_everywhere(&bytes);
    }
}
