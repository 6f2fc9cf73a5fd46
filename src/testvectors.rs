//! Loader for the shared test vectors (`shared/testvectors/README.md`): a configuration, latent
//! parameters, all p² inputs, and the float64 results of an independent implementation.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, ensure, Context, Result};
use safetensors::SafeTensors;
use serde::Deserialize;

use crate::model::config::N_CTX;
use crate::model::params::{tensor_to_f64, tensor_to_i32};
use crate::model::{ModelConfig, Params};
use crate::optim::AdamW;

/// One test-vector file.
#[derive(Clone, Debug, PartialEq)]
pub struct TestVector {
    /// File stem, e.g. `tiny-nanda`.
    pub name: String,
    pub config: ModelConfig,
    /// The optimiser settings of `adamw1`.
    pub adamw: AdamW,
    pub adamw_step: u64,
    pub params: Params,
    pub tokens: Vec<[usize; 3]>,
    pub labels: Vec<usize>,
    /// The independent implementation's results for all N inputs.
    pub expected: Outputs,
}

/// Everything one training step computes that conformance compares, with all N inputs as the
/// batch.
#[derive(Clone, Debug, PartialEq)]
pub struct Outputs {
    /// `[N, d_vocab_out]`, last position.
    pub logits: Vec<f64>,
    /// Mean cross-entropy over all N.
    pub loss: f64,
    /// `[N, H, 3]`: attention of the last position over the three positions.
    pub attn_pattern_last: Vec<f64>,
    /// `[N, d_mlp]`: post-ReLU MLP activations at the last position.
    pub mlp_post_last: Vec<f64>,
    /// `[N, d_model]` each: the residual stream at the last position before and after the MLP
    /// (what the analysis's ablations and readout start from). Test vector files do not carry
    /// them (empty), so only the engine-against-reference checks compare them.
    pub resid_mid_last: Vec<f64>,
    pub resid_final_last: Vec<f64>,
    /// Straight-through gradient of `loss` for each latent parameter.
    pub grads: Params,
    /// Each parameter after one AdamW step with `grads` from zero moments.
    pub adamw1: Params,
}

/// The `adamw` header entry: the hyper-parameters plus the step number.
#[derive(Deserialize)]
struct AdamWHeader {
    #[serde(flatten)]
    hp: AdamW,
    step: u64,
}

/// `$BITGROK_TESTVECTORS` if set, else `shared/testvectors` beside the crate.
pub fn shared_dir() -> PathBuf {
    match std::env::var_os("BITGROK_TESTVECTORS") {
        Some(dir) => PathBuf::from(dir),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/testvectors"),
    }
}

/// The `*.safetensors` files of `dir`, sorted.
pub fn all_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let entries = std::fs::read_dir(dir)
        .with_context(|| format!("listing test vectors in {}", dir.display()))?;
    let mut files = Vec::new();
    for entry in entries {
        let path = entry
            .with_context(|| format!("listing test vectors in {}", dir.display()))?
            .path();
        if path.extension().is_some_and(|ext| ext == "safetensors") {
            files.push(path);
        }
    }
    files.sort();
    Ok(files)
}

/// Most bytes a test vector file may take (the shared ones are a few MB).
const MAX_VECTOR_BYTES: u64 = 1 << 30;

pub fn load(path: &Path) -> Result<TestVector> {
    let bytes = crate::bounded_read::map(path, MAX_VECTOR_BYTES, "a test vector file")?;
    parse(&bytes, path).with_context(|| format!("loading test vector {}", path.display()))
}

fn parse(bytes: &[u8], path: &Path) -> Result<TestVector> {
    let st = SafeTensors::deserialize(bytes).context("not a valid safetensors file")?;
    let (_, metadata) =
        SafeTensors::read_metadata(bytes).context("not a valid safetensors file")?;
    let header = metadata
        .metadata()
        .as_ref()
        .context("the header has no metadata")?;

    let config: ModelConfig = header_json(header, "config")?;
    config
        .validate()
        .map_err(anyhow::Error::msg)
        .context("invalid config in the header")?;
    let adamw: AdamWHeader = header_json(header, "adamw")?;

    let tokens = read_tokens(&st, &config)?;
    let n = tokens.len();
    let labels = read_indices(&st, "inputs.labels", &[n], config.p)?;
    let f64s = |name: &str, shape: &[usize]| read_f64(&st, name, shape);
    Ok(TestVector {
        name: path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default(),
        adamw: adamw.hp,
        adamw_step: adamw.step,
        params: Params::from_safetensors(&config, &st, "params.")?,
        expected: Outputs {
            logits: f64s("expected.logits", &[n, config.p])?,
            loss: f64s("expected.loss", &[1])?[0],
            attn_pattern_last: f64s("expected.attn_pattern_last", &[n, config.n_heads, N_CTX])?,
            mlp_post_last: f64s("expected.mlp_post_last", &[n, config.d_mlp])?,
            resid_mid_last: Vec::new(),
            resid_final_last: Vec::new(),
            grads: Params::from_safetensors(&config, &st, "grad.")?,
            adamw1: Params::from_safetensors(&config, &st, "adamw1.")?,
        },
        tokens,
        labels,
        config,
    })
}

fn header_json<T: serde::de::DeserializeOwned>(
    header: &HashMap<String, String>,
    key: &str,
) -> Result<T> {
    let json = header
        .get(key)
        .with_context(|| format!("the header has no `{key}` entry"))?;
    serde_json::from_str(json).with_context(|| format!("bad `{key}` JSON in the header: {json}"))
}

/// `inputs.tokens`, int32 `[N, 3]`, each below `d_vocab`.
fn read_tokens(st: &SafeTensors, config: &ModelConfig) -> Result<Vec<[usize; 3]>> {
    let name = "inputs.tokens";
    let n = st
        .tensor(name)
        .with_context(|| format!("tensor {name} is missing"))?
        .shape()
        .first()
        .copied();
    let flat = read_indices(st, name, &[n.unwrap_or(0), N_CTX], config.d_vocab())?;
    ensure!(!flat.is_empty(), "tensor {name} holds no examples");
    Ok(flat
        .chunks_exact(N_CTX)
        .map(|t| [t[0], t[1], t[2]])
        .collect())
}

/// An int32 tensor of the given shape whose values all lie in `0..bound`.
fn read_indices(st: &SafeTensors, name: &str, shape: &[usize], bound: usize) -> Result<Vec<usize>> {
    let view = checked_view(st, name, shape)?;
    tensor_to_i32(name, view.dtype(), view.data())?
        .into_iter()
        .map(|x| match usize::try_from(x) {
            Ok(i) if i < bound => Ok(i),
            _ => bail!("tensor {name} holds {x}, outside 0..{bound}"),
        })
        .collect()
}

fn read_f64(st: &SafeTensors, name: &str, shape: &[usize]) -> Result<Vec<f64>> {
    let view = checked_view(st, name, shape)?;
    tensor_to_f64(name, view.dtype(), view.data())
}

fn checked_view<'a>(
    st: &SafeTensors<'a>,
    name: &str,
    shape: &[usize],
) -> Result<safetensors::tensor::TensorView<'a>> {
    let view = st
        .tensor(name)
        .with_context(|| format!("tensor {name} is missing"))?;
    ensure!(
        view.shape() == shape,
        "tensor {name} has shape {:?}, expected {shape:?}",
        view.shape()
    );
    Ok(view)
}
