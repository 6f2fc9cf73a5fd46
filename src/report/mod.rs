//! `bitgrok analyze`: everything the study measures about one trained run, as numbers
//! (`analysis.json`), figures (PNG) and a notebook-like `report.md`.

pub mod cache;
pub mod checkpoint_choice;
pub mod compare;
mod figures;
pub mod levels;
mod markdown;
mod text;

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result};
use nalgebra::DMatrix;
use serde::{Deserialize, Serialize};

use crate::analysis::{self, fourier::FourierBasis};
use crate::engine::device::Gpu;
use crate::engine::{Activations, Engine};
use crate::metrics::{self, Phases};
use crate::model::{ModelConfig, Params};
pub use crate::reference::effective_params;
use crate::run::{write_atomic, RunConfig, RunDir};
use crate::task::{Examples, Split};

/// Neurons belong to a frequency when at least this fraction of their variance is explained by it.
pub const CLUSTER_THRESHOLD: f64 = 0.85;
/// Most checkpoints the progress measures visit (evenly spaced, first and last included), so a
/// 25,000-epoch run stays practical to analyse on a CPU adapter.
const MAX_PROGRESS_POINTS: usize = 100;

/// JSON has no NaN (serde_json writes it as null): read null back as NaN.
fn nan_if_null<'de, D: serde::Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    Ok(Option::<f64>::deserialize(d)?.unwrap_or(f64::NAN))
}

/// Every number of an analysis (`analysis.json`; NaN is written as null).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Summary {
    pub run: PathBuf,
    pub epoch: usize,
    pub config: RunConfig,
    pub phases: PhasesJson,
    #[serde(deserialize_with = "nan_if_null")]
    pub final_train_loss: f64,
    #[serde(deserialize_with = "nan_if_null")]
    pub final_test_loss: f64,
    #[serde(deserialize_with = "nan_if_null")]
    pub final_test_acc: f64,
    #[serde(deserialize_with = "nan_if_null")]
    pub accuracy_all_pairs: f64,
    /// Found from the averaged energy shares of W_E and W_L.
    pub key_frequencies: Vec<usize>,
    pub key_frequency_rule: String,
    /// Their share of the averaged energy.
    #[serde(deserialize_with = "nan_if_null")]
    pub key_frequency_share: f64,
    /// Share of W_E's Fourier energy per frequency 1..K.
    pub embedding_energy_share: Vec<f64>,
    /// Share of the neuron-logit map's Fourier energy per frequency 1..K.
    pub logit_map_energy_share: Vec<f64>,
    pub neurons: NeuronSummary,
    pub attention_to: AttentionSummary,
    pub embedding_singular_values: Vec<f64>,
    pub gaussian_control_singular_values: Vec<f64>,
    pub progress: Vec<ProgressPoint>,
    #[serde(deserialize_with = "nan_if_null")]
    pub distance_irrelevance: f64,
    /// Over all pairs with a ≠ b.
    #[serde(deserialize_with = "nan_if_null")]
    pub gradient_symmetricity: f64,
    /// Why this checkpoint was analysed.
    #[serde(default)]
    pub checkpoint_choice: String,
    /// Implementation: the neurons as distributions, pre- and post-ReLU, with the null.
    #[serde(default)]
    pub neuron_level: levels::NeuronLevel,
    /// Algorithm: the clock form of the logits and the frequency ablations.
    #[serde(default)]
    pub algorithm: levels::AlgorithmLevel,
    /// Clock, pizza or mixed, on both metrics.
    #[serde(default)]
    pub clock_pizza: levels::ClockPizza,
    #[serde(deserialize_with = "nan_if_null")]
    pub seconds: f64,
    /// The files analysed; a cached analysis is reused only while they are unchanged.
    #[serde(default)]
    pub analysed: Option<cache::AnalysedFiles>,
}

/// The phases of [`Phases`] (the sustained rule).
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize)]
pub struct PhasesJson {
    pub memorised: Option<usize>,
    pub cleanup_start: Option<usize>,
    pub grokked: Option<usize>,
    /// First epoch the run generalised, sustained or not.
    #[serde(default)]
    pub first_reached: Option<usize>,
    /// Relapses after first generalising.
    #[serde(default)]
    pub relapses: usize,
    #[serde(default)]
    pub lowest_after_first: Option<f32>,
}

impl From<&Phases> for PhasesJson {
    fn from(p: &Phases) -> Self {
        PhasesJson {
            memorised: p.memorised,
            cleanup_start: p.cleanup_start,
            grokked: p.grokked,
            first_reached: p.first_reached,
            relapses: p.relapses,
            lowest_after_first: p.lowest_after_first,
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct NeuronSummary {
    pub d_mlp: usize,
    /// Neurons with ≥ 85% of their variance in one frequency.
    pub clustered: usize,
    pub clustered_fraction: f64,
    /// (frequency, neurons) for every frequency with a cluster, largest first.
    pub cluster_sizes: Vec<(usize, usize)>,
    /// Neurons that never fire (no variance over the inputs).
    pub dead: usize,
    pub mean_max_fraction: f64,
}

/// Mean attention of `=` to each position, per head.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct AttentionSummary {
    pub to_a: Vec<f64>,
    pub to_b: Vec<f64>,
    pub to_eq: Vec<f64>,
}

/// Progress measures of one checkpoint.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ProgressPoint {
    pub epoch: usize,
    #[serde(deserialize_with = "nan_if_null")]
    pub train_loss: f64,
    #[serde(deserialize_with = "nan_if_null")]
    pub test_loss: f64,
    /// Loss over all pairs of the logits kept only along the key-frequency directions.
    #[serde(deserialize_with = "nan_if_null")]
    pub restricted_loss: f64,
    /// Train loss of the logits with those directions removed.
    #[serde(deserialize_with = "nan_if_null")]
    pub excluded_loss: f64,
    #[serde(deserialize_with = "nan_if_null")]
    pub sum_squared_weights: f64,
    /// Sum of squares of the effective (quantised) weights; equal to the latent one for f32.
    #[serde(deserialize_with = "nan_if_null")]
    pub sum_squared_quantised: f64,
    #[serde(deserialize_with = "nan_if_null")]
    pub gini_embedding: f64,
    #[serde(deserialize_with = "nan_if_null")]
    pub gini_logit_map: f64,
}

/// Everything computed from one checkpoint, kept in memory for the figures.
pub struct Snapshot {
    pub config: ModelConfig,
    pub params: Params,
    /// Effective (quantised) parameters.
    pub effective: Params,
    pub basis: FourierBasis,
    /// p² x p logits of all pairs, a-major.
    pub logits: DMatrix<f64>,
    /// [p², H, 3]
    pub attn_pattern: Vec<f64>,
    /// p² x M before the ReLU.
    pub mlp_pre: DMatrix<f64>,
    /// p x D: W_E rows 0..p in the Fourier basis.
    pub embed_fourier: DMatrix<f64>,
    /// M x K, post-ReLU (Nanda et al.'s measure).
    pub neuron_fractions: DMatrix<f64>,
    /// M x K, pre-ReLU.
    pub neuron_fractions_pre: DMatrix<f64>,
    pub clusters: Vec<Option<usize>>,
    pub embedding_norms: Vec<f64>,
    pub logit_map_norms: Vec<f64>,
    pub principal_components: DMatrix<f64>,
}

/// What the figures and the report need beyond the summary.
pub struct Analysis {
    pub summary: Summary,
    pub snapshot: Snapshot,
    pub metrics: Vec<crate::metrics::EpochMetrics>,
    pub phases: Phases,
    pub out_dir: PathBuf,
}

fn to_matrix(rows: usize, cols: usize, values: &[f32]) -> DMatrix<f64> {
    DMatrix::from_row_iterator(rows, cols, values.iter().map(|&x| x as f64))
}

/// The p label columns of `[n, d_vocab_out]` logits: an `=` output, never a label, is left out
/// of the Fourier measures, as in Nanda et al.'s analysis.
fn label_logits(c: &ModelConfig, values: &[f32]) -> DMatrix<f64> {
    let n = values.len() / c.d_vocab_out();
    to_matrix(n, c.d_vocab_out(), values)
        .columns(0, c.p)
        .into_owned()
}

/// Energy shares (squared norms, normalised to sum 1).
fn shares(norms: &[f64]) -> Vec<f64> {
    let total: f64 = norms
        .iter()
        .map(|x| x * x)
        .sum::<f64>()
        .max(f64::MIN_POSITIVE);
    norms.iter().map(|x| x * x / total).collect()
}

/// W_E's number rows (of `effective`, the parameters as the forward pass uses them) in the
/// Fourier basis, their norms per frequency, and the norms per frequency of the (effective)
/// neuron-logit map along the output.
fn fourier_norms(
    params: &Params,
    effective: &Params,
    basis: &FourierBasis,
) -> (DMatrix<f64>, Vec<f64>, Vec<f64>) {
    // The embedding the forward pass reads: the quantised one when `--quantize` covers it (the
    // neuron-logit map quantises W_out and W_U itself).
    let embed_fourier = basis.transform(&analysis::number_embeddings(effective));
    let embedding_norms = analysis::frequency_norms(&embed_fourier);
    let logit_map_norms =
        analysis::logit_map_frequency_norms(&analysis::neuron_logit_map(params), basis);
    (embed_fourier, embedding_norms, logit_map_norms)
}

/// Forward over all p² pairs of one checkpoint on the GPU.
fn forward_all(engine: &mut Engine, params: &Params) -> Result<Activations> {
    engine.set_params(0, params)?;
    engine.forward_train_batch(0)
}

/// Loss of the logits restricted to, and excluding, the key-frequency directions.
fn restricted_and_excluded(
    logits: &DMatrix<f64>,
    p: usize,
    keys: &[usize],
    split: &Split,
) -> (f64, f64) {
    let all = Examples::all(p);
    let labels: Vec<usize> = all.labels.iter().map(|&l| l as usize).collect();
    let restricted = analysis::measures::restricted_logits(logits, p, keys);
    let excluded = analysis::measures::excluded_logits(logits, p, keys);
    let train_rows: Vec<usize> = split.train.iter().map(|&i| i as usize).collect();
    let excluded_train = excluded.select_rows(train_rows.iter());
    let train_labels: Vec<usize> = train_rows.iter().map(|&i| labels[i]).collect();
    (
        analysis::measures::cross_entropy(&restricted, &labels),
        analysis::measures::cross_entropy(&excluded_train, &train_labels),
    )
}

pub fn analyze(gpu: &Gpu, run: &Path, epoch: Option<usize>, progress: bool) -> Result<Analysis> {
    let started = Instant::now();
    let dir = RunDir::open(run)?;
    let config = dir.read_config()?;
    let c = config.model.clone();
    let p = c.p;
    let metrics = metrics::read(&dir.metrics_path(), config.epochs)?;
    let phases = phases_of(&config, &metrics);
    let (epoch, checkpoint_choice) = match epoch {
        Some(e) => (Some(e), "the checkpoint asked for".to_string()),
        None => match checkpoint_choice::analysed_checkpoint(
            &metrics,
            &phases,
            &dir.checkpoint_epochs()?,
        ) {
            Some((e, why)) => (Some(e), why),
            None => (None, String::new()),
        },
    };
    let (epoch, params) = dir.load_checkpoint(&c, epoch)?;
    // Right after the metrics were read: a change after this makes the cached analysis stale.
    let analysed = cache::AnalysedFiles::of(&dir, &config, epoch)?;
    params
        .check_finite()
        .with_context(|| format!("cannot analyse the checkpoint of epoch {epoch}"))?;
    let split = Split::new(p, config.frac, config.data_seed);
    let all = Examples::all(p);
    let mut engine = Engine::new(gpu, &params, &all, None, &config.adamw)?;

    // The analysed checkpoint.
    let acts = forward_all(&mut engine, &params)?;
    let n = p * p;
    let logits = label_logits(&c, &acts.logits);
    let all_logits = to_matrix(n, c.d_vocab_out(), &acts.logits);
    let mlp_pre = to_matrix(n, c.d_mlp, &acts.mlp_pre);
    let mlp_post = mlp_pre.map(|x| x.max(0.0));
    let basis = analysis::fourier::basis(p);
    let effective = effective_params(&params);
    let (embed_fourier, embedding_norms, logit_map_norms) =
        fourier_norms(&params, &effective, &basis);
    let embedding_energy: Vec<f64> = embedding_norms.iter().map(|x| x * x).collect();
    // Frequencies the model uses on the way in (W_E) and on the way out (W_L), their shares
    // averaged: in bit models the per-token norms spread W_E's energy, while W_L stays sharp.
    let logit_map_energy: Vec<f64> = logit_map_norms.iter().map(|x| x * x).collect();
    let keys = analysis::key_frequencies_combined(&[&embedding_energy, &logit_map_energy]);
    let neuron_fractions = analysis::neurons::frequency_fractions(&mlp_post, &basis);
    let clusters = analysis::neurons::clusters(&neuron_fractions, CLUSTER_THRESHOLD);
    let neuron_fractions_pre = analysis::neurons::frequency_fractions(&mlp_pre, &basis);
    let resid_mid = to_matrix(n, c.d_model, &acts.resid_mid);
    let mut ablation_engine = None;
    let neuron_level = levels::neuron_level(
        &mlp_pre,
        (&neuron_fractions_pre, &neuron_fractions),
        &levels::readout(
            &params,
            (&mlp_pre, &neuron_fractions_pre),
            &resid_mid,
            &basis,
        ),
        &analysis::neuron_logit_map(&params),
        &basis,
    );
    let resid_final = to_matrix(n, c.d_model, &acts.resid_final);
    let algorithm = levels::algorithm_level(
        &params,
        &basis,
        &keys.freqs,
        &levels::Residuals {
            logits: &all_logits,
            mid: &resid_mid,
            last: &resid_final,
        },
        &mut |ablated| {
            // Ablations of a quantised embedding leave it unquantised: another model.
            let engine = if ablated.config == c {
                &mut engine
            } else {
                if ablation_engine.is_none() {
                    ablation_engine = Some(Engine::new(gpu, ablated, &all, None, &config.adamw)?);
                }
                ablation_engine.as_mut().expect("built above")
            };
            engine.set_params(0, ablated)?;
            engine.evaluate()?;
            let logits = to_matrix(n, c.d_vocab_out(), &engine.train_logits(0)?);
            Ok(analysis::measures::cross_entropy(
                &logits,
                &analysis::measures::pair_labels(p),
            ))
        },
    )?;
    let labels: Vec<usize> = all.labels.iter().map(|&l| l as usize).collect();
    let accuracy_all_pairs = (0..n)
        .filter(|&i| argmax(all_logits.row(i).iter()) == labels[i])
        .count() as f64
        / n as f64;

    // Progress measures over every checkpoint, with the final key frequencies.
    let mut progress_points = Vec::new();
    let epochs = evenly_spaced(&dir.checkpoint_epochs()?, MAX_PROGRESS_POINTS);
    let bar = if progress {
        indicatif::ProgressBar::new(epochs.len() as u64)
    } else {
        indicatif::ProgressBar::hidden()
    };
    for &e in &epochs {
        let (_, ps) = dir.load_checkpoint(&c, Some(e))?;
        ps.check_finite()
            .with_context(|| format!("cannot analyse the checkpoint of epoch {e}"))?;
        // Progress measures need only the logits: skip reading the activations back.
        engine.set_params(0, &ps)?;
        engine.evaluate()?;
        let logits_e = label_logits(&c, &engine.train_logits(0)?);
        let (restricted_loss, excluded_loss) =
            restricted_and_excluded(&logits_e, p, &keys.freqs, &split);
        let eff = effective_params(&ps);
        let (_, e_norms, l_norms) = fourier_norms(&ps, &eff, &basis);
        let m = metrics.iter().find(|m| m.epoch == e);
        progress_points.push(ProgressPoint {
            epoch: e,
            train_loss: m.map_or(f64::NAN, |m| m.train_loss as f64),
            test_loss: m.map_or(f64::NAN, |m| m.test_loss as f64),
            restricted_loss,
            excluded_loss,
            sum_squared_weights: analysis::measures::sum_squares(&ps),
            sum_squared_quantised: analysis::measures::sum_squares(&eff),
            gini_embedding: analysis::measures::gini(&e_norms),
            gini_logit_map: analysis::measures::gini(&l_norms),
        });
        bar.inc(1);
    }
    bar.finish_and_clear();

    let clock_pizza = levels::clock_pizza(&params, &logits);

    // Embedding spectrum against a Gaussian control of the same shape and scale.
    let w_e = analysis::number_embeddings(&effective);
    let embedding_singular_values = analysis::svd::singular_values(&w_e);
    let control = analysis::svd::gaussian_control(&w_e, 0);
    let gaussian_control_singular_values = analysis::svd::singular_values(&control);
    let principal_components = analysis::svd::principal_components(&w_e, 4.min(c.d_model)).coords;

    let attention = attention_summary(&acts.attn_pattern, c.n_heads);
    let neurons = neuron_summary(&neuron_fractions, &clusters, &mlp_post);
    let last = metrics.last();
    // Test losses may be recorded only every few epochs.
    let last_tested = metrics.iter().rev().find(|m| m.test_loss.is_finite());
    let summary = Summary {
        run: run.to_path_buf(),
        epoch,
        config: config.clone(),
        phases: PhasesJson::from(&phases),
        final_train_loss: last.map_or(f64::NAN, |m| m.train_loss as f64),
        final_test_loss: last_tested.map_or(f64::NAN, |m| m.test_loss as f64),
        final_test_acc: last.map_or(f64::NAN, |m| m.test_acc as f64),
        accuracy_all_pairs,
        key_frequencies: keys.freqs.clone(),
        key_frequency_rule: keys.rule.clone(),
        key_frequency_share: keys
            .freqs
            .iter()
            .fold(0.0, |acc, &f| acc + keys.evidence[f - 1]),
        embedding_energy_share: shares(&embedding_norms),
        logit_map_energy_share: shares(&logit_map_norms),
        neurons,
        attention_to: attention,
        embedding_singular_values,
        gaussian_control_singular_values,
        progress: progress_points,
        distance_irrelevance: clock_pizza.distance_irrelevance,
        gradient_symmetricity: clock_pizza.gradient_symmetricity,
        checkpoint_choice,
        neuron_level,
        algorithm,
        clock_pizza,
        seconds: 0.0,
        analysed: Some(analysed),
    };
    let snapshot = Snapshot {
        config: c,
        params,
        effective,
        basis,
        logits,
        attn_pattern: acts.attn_pattern.iter().map(|&x| x as f64).collect(),
        mlp_pre,
        embed_fourier,
        neuron_fractions,
        neuron_fractions_pre,
        clusters,
        embedding_norms,
        logit_map_norms,
        principal_components,
    };
    let out_dir = run.join("analysis");
    std::fs::create_dir_all(&out_dir).with_context(|| format!("creating {}", out_dir.display()))?;
    let mut analysis = Analysis {
        summary,
        snapshot,
        metrics,
        phases,
        out_dir,
    };
    let figures = figures::write_all(&analysis)?;
    analysis.summary.seconds = started.elapsed().as_secs_f64();
    write_atomic(
        &analysis.out_dir.join("analysis.json"),
        serde_json::to_string_pretty(&analysis.summary)?.as_bytes(),
    )?;
    write_atomic(
        &analysis.out_dir.join("report.md"),
        markdown::report(&analysis, &figures).as_bytes(),
    )?;
    Ok(analysis)
}

/// The phases of a run's metrics, with the cleanup cut its split gives.
fn phases_of(config: &RunConfig, metrics: &[crate::metrics::EpochMetrics]) -> Phases {
    let c = &config.model;
    let split = Split::new(c.p, config.frac, config.data_seed);
    Phases::find(
        metrics,
        metrics::Generalisation::new(split.test.len()),
        metrics::cleanup_accuracy(c.p, split.transpose_unseen_test_pairs()),
    )
}

/// The checkpoint `analyze` takes when none is named ([`checkpoint_choice::analysed_checkpoint`]).
pub(crate) fn default_checkpoint(dir: &RunDir, config: &RunConfig) -> Result<Option<usize>> {
    let metrics = metrics::read(&dir.metrics_path(), config.epochs)?;
    let phases = phases_of(config, &metrics);
    Ok(
        checkpoint_choice::analysed_checkpoint(&metrics, &phases, &dir.checkpoint_epochs()?)
            .map(|(e, _)| e),
    )
}

/// At most `max` of `items`, evenly spaced, keeping the first and the last.
fn evenly_spaced(items: &[usize], max: usize) -> Vec<usize> {
    if items.len() <= max || max < 2 {
        return items.to_vec();
    }
    let mut picked: Vec<usize> = (0..max)
        .map(|i| items[i * (items.len() - 1) / (max - 1)])
        .collect();
    picked.dedup();
    picked
}

fn argmax<'a>(values: impl Iterator<Item = &'a f64>) -> usize {
    values
        .enumerate()
        .fold((0, f64::NEG_INFINITY), |best, (i, &v)| {
            if v > best.1 {
                (i, v)
            } else {
                best
            }
        })
        .0
}

fn attention_summary(pattern: &[f32], heads: usize) -> AttentionSummary {
    let n = pattern.len() / (heads * 3);
    let mean = |h: usize, j: usize| {
        (0..n)
            .map(|i| pattern[(i * heads + h) * 3 + j] as f64)
            .sum::<f64>()
            / n as f64
    };
    AttentionSummary {
        to_a: (0..heads).map(|h| mean(h, 0)).collect(),
        to_b: (0..heads).map(|h| mean(h, 1)).collect(),
        to_eq: (0..heads).map(|h| mean(h, 2)).collect(),
    }
}

fn neuron_summary(
    fractions: &DMatrix<f64>,
    clusters: &[Option<usize>],
    post: &DMatrix<f64>,
) -> NeuronSummary {
    let m = clusters.len();
    let mut sizes: Vec<(usize, usize)> = Vec::new();
    for f in clusters.iter().flatten() {
        match sizes.iter_mut().find(|(k, _)| k == f) {
            Some(entry) => entry.1 += 1,
            None => sizes.push((*f, 1)),
        }
    }
    sizes.sort_by(|x, y| y.1.cmp(&x.1).then(x.0.cmp(&y.0)));
    let clustered = clusters.iter().filter(|c| c.is_some()).count();
    let dead = (0..m)
        .filter(|&j| post.column(j).iter().all(|&x| x == post[(0, j)]))
        .count();
    let max_fraction: Vec<f64> = (0..m).map(|j| fractions.row(j).max()).collect();
    NeuronSummary {
        d_mlp: m,
        clustered,
        clustered_fraction: clustered as f64 / m as f64,
        cluster_sizes: sizes,
        dead,
        mean_max_fraction: max_fraction.iter().sum::<f64>() / m as f64,
    }
}
