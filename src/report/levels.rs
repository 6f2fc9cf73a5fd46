//! The measures behind the three levels a verdict speaks to, for one analysed checkpoint:
//!
//! * **features**: the Fourier embedding (the key frequencies, in [`super::Summary`]);
//! * **algorithm**: what the logits compute, and how the loss depends on each key frequency
//!   ([`AlgorithmLevel`]);
//! * **implementation**: how the MLP neurons carry the frequencies ([`NeuronLevel`]), and the
//!   clock/pizza distinction of Zhong et al. ([`ClockPizza`]).

use anyhow::Result;
use nalgebra::DMatrix;
use serde::{Deserialize, Serialize};

use crate::analysis::{
    self, fourier::FourierBasis, logit_algorithm, neuron_measures, rectification_null, stats,
};
use crate::model::{LinearNorm, ParamId, Params, QuantGroup};
use crate::reference;

/// Seed of the rectification null's noise.
const NULL_SEED: u64 = 0;

/// Neurons, pre- and post-ReLU, as distributions (see [`crate::analysis::neuron_measures`]).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct NeuronLevel {
    /// The thresholds of the curves below.
    pub thresholds: Vec<f64>,
    /// Fraction of neurons whose largest share reaches each threshold.
    pub clustered_pre: Vec<f64>,
    pub clustered_post: Vec<f64>,
    /// The same, each neuron weighted by its importance.
    pub weighted_pre: Vec<f64>,
    pub weighted_post: Vec<f64>,
    /// Post-ReLU, synthetic neurons of each real one's dominant frequency, pre-ReLU purity and
    /// firing rate (see [`crate::analysis::rectification_null`]).
    pub null_post: Vec<f64>,
    /// Post-ReLU, the same with purity 1: perfectly single-frequency neurons at the run's firing
    /// rates.
    pub pure_null_post: Vec<f64>,
    /// The same over what neurons read from the residual stream, before the MLP input norm's
    /// per-pair scale ([`neuron_measures::readout`]; `pre`'s curve for a model without a norm).
    /// An analysis written without it does not parse, so caches of it are analysed again.
    pub clustered_readout: Vec<f64>,
    /// The coefficient of variation of that scale over the pairs; None without a norm.
    pub norm_scale_variation: Option<f64>,
    pub median_max_share_pre: f64,
    pub median_max_share_post: f64,
    /// Median number of frequencies a neuron needs for 85% of its variance (neurons that never
    /// reach it count as K + 1).
    pub median_frequencies_needed_pre: f64,
    pub median_frequencies_needed_post: f64,
    pub mean_cross_frequency_pre: f64,
    pub mean_cross_frequency_post: f64,
    pub median_firing_rate: f64,
    pub per_neuron: Vec<NeuronRow>,
}

/// One neuron's numbers.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct NeuronRow {
    /// Dominant frequency pre-ReLU (None: no variance).
    pub frequency: Option<usize>,
    pub max_share_pre: f64,
    pub max_share_post: f64,
    pub top2_share_pre: f64,
    pub top2_share_post: f64,
    pub frequencies_needed_pre: Option<usize>,
    pub frequencies_needed_post: Option<usize>,
    pub cross_frequency_pre: f64,
    pub cross_frequency_post: f64,
    pub firing_rate: f64,
    pub importance: f64,
}

impl NeuronLevel {
    /// The clustered fractions at the threshold closest to `t`.
    pub fn at(&self, curve: &[f64], t: f64) -> f64 {
        if curve.is_empty() {
            // An analysis written before these measures.
            return f64::NAN;
        }
        let i = (0..self.thresholds.len())
            .min_by(|&i, &j| {
                (self.thresholds[i] - t)
                    .abs()
                    .total_cmp(&(self.thresholds[j] - t).abs())
            })
            .expect("a threshold grid");
        curve[i]
    }
}

/// What the MLP neurons read from the residual stream, as frequency shares.
pub struct Readout {
    /// `M x K` [`frequency_fractions`] of [`neuron_measures::readout`].
    ///
    /// [`frequency_fractions`]: analysis::neurons::frequency_fractions
    pub fractions: DMatrix<f64>,
    /// The coefficient of variation of the MLP input norm's per-pair scale; None without a norm.
    pub scale_variation: Option<f64>,
}

/// The readout of a model's neurons from `pre` (`p² x M`, with its [`frequency_fractions`]) and
/// `mid` (`p² x d_model`, the residual stream the MLP reads, whose RMS the model's linear norm
/// divides by). Without that norm the readout is `pre` less its bias, with `pre`'s fractions.
///
/// [`frequency_fractions`]: analysis::neurons::frequency_fractions
pub fn readout(
    params: &Params,
    (pre, pre_fractions): (&DMatrix<f64>, &DMatrix<f64>),
    mid: &DMatrix<f64>,
    basis: &FourierBasis,
) -> Readout {
    let c = &params.config;
    if c.linear_norm == LinearNorm::None {
        return Readout {
            fractions: pre_fractions.clone(),
            scale_variation: None,
        };
    }
    let scale: Vec<f64> = mid
        .row_iter()
        .map(|row| {
            let values: Vec<f64> = row.iter().copied().collect();
            1.0 / reference::quant::rms_norm(&values).1
        })
        .collect();
    let bias = c.biases.then(|| params.get(ParamId::BIn));
    let read = neuron_measures::readout(pre, bias, &scale);
    Readout {
        fractions: analysis::neurons::frequency_fractions(&read, basis),
        scale_variation: Some(neuron_measures::variation(&scale)),
    }
}

/// `pre`: `p² x M` pre-ReLU activations; the fractions: their [`frequency_fractions`] before and
/// after the ReLU; `readout`: what the neurons read; `w_l`: the neuron-logit map.
///
/// [`frequency_fractions`]: analysis::neurons::frequency_fractions
pub fn neuron_level(
    pre: &DMatrix<f64>,
    (pre_fractions, post_fractions): (&DMatrix<f64>, &DMatrix<f64>),
    readout: &Readout,
    w_l: &DMatrix<f64>,
    basis: &FourierBasis,
) -> NeuronLevel {
    let post = pre.map(|x| x.max(0.0));
    let profiles_pre = neuron_measures::NeuronProfile::all(pre_fractions);
    let profiles_post = neuron_measures::NeuronProfile::all(post_fractions);
    let firing = neuron_measures::firing_rates(pre);
    let importance = neuron_measures::importance(&post, w_l);
    let thresholds = neuron_measures::threshold_grid();
    let ones = vec![1.0; pre.ncols()];
    let max_pre: Vec<f64> = profiles_pre.iter().map(|n| n.max_share).collect();
    let max_post: Vec<f64> = profiles_post.iter().map(|n| n.max_share).collect();
    let curve =
        |shares: &[f64], w: &[f64]| neuron_measures::clustered_curve(shares, w, &thresholds);
    let null_curve = |purity: Option<f64>| {
        let shares = rectification_null::null_max_shares(
            pre,
            &profiles_pre,
            basis,
            purity,
            rectification_null::DRAWS,
            NULL_SEED,
        );
        // Neurons without variance have no synthetic twin; they count as unclustered, as the real
        // ones do, so the null's fractions are over all neurons.
        let dead = pre.ncols() - shares.len() / rectification_null::DRAWS;
        let mut padded = shares;
        padded.extend(std::iter::repeat_n(0.0, dead * rectification_null::DRAWS));
        curve(&padded, &vec![1.0; padded.len()])
    };
    let k = basis.num_frequencies();
    let needed = |n: &neuron_measures::NeuronProfile| n.frequencies_needed.unwrap_or(k + 1) as f64;
    let per_neuron = (0..pre.ncols())
        .map(|m| {
            let (a, b) = (&profiles_pre[m], &profiles_post[m]);
            NeuronRow {
                frequency: a.dominant,
                max_share_pre: a.max_share,
                max_share_post: b.max_share,
                top2_share_pre: a.top2_share,
                top2_share_post: b.top2_share,
                frequencies_needed_pre: a.frequencies_needed,
                frequencies_needed_post: b.frequencies_needed,
                cross_frequency_pre: a.cross_frequency,
                cross_frequency_post: b.cross_frequency,
                firing_rate: firing[m],
                importance: importance[m],
            }
        })
        .collect();
    NeuronLevel {
        clustered_pre: curve(&max_pre, &ones),
        clustered_post: curve(&max_post, &ones),
        clustered_readout: curve(
            &neuron_measures::NeuronProfile::all(&readout.fractions)
                .iter()
                .map(|n| n.max_share)
                .collect::<Vec<_>>(),
            &ones,
        ),
        norm_scale_variation: readout.scale_variation,
        weighted_pre: curve(&max_pre, &importance),
        weighted_post: curve(&max_post, &importance),
        null_post: null_curve(None),
        pure_null_post: null_curve(Some(1.0)),
        thresholds,
        median_max_share_pre: median(&max_pre),
        median_max_share_post: median(&max_post),
        median_frequencies_needed_pre: median(&profiles_pre.iter().map(needed).collect::<Vec<_>>()),
        median_frequencies_needed_post: median(
            &profiles_post.iter().map(needed).collect::<Vec<_>>(),
        ),
        mean_cross_frequency_pre: mean(profiles_pre.iter().map(|n| n.cross_frequency)),
        mean_cross_frequency_post: mean(profiles_post.iter().map(|n| n.cross_frequency)),
        median_firing_rate: median(&firing),
        per_neuron,
    }
}

/// What the logits compute, and how the loss depends on each key frequency.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct AlgorithmLevel {
    /// Fraction of the (per-pair centred) logit variance explained by
    /// `Σ_k α_k cos(w_k (a + b − c))` on the key frequencies.
    pub clock_form_fraction: f64,
    /// ln p: the loss of uniform logits.
    pub chance_loss: f64,
    /// Loss over all pairs of the unablated model (the GPU's forward pass).
    pub loss: f64,
    /// Per key frequency, the loss over all pairs with it ablated.
    pub ablations: Vec<FrequencyAblation>,
    /// Per frequency `1..=K`, key or not, the loss over all pairs with it alone removed from the
    /// embedding (empty in analyses written before it).
    #[serde(default)]
    pub embedding_losses: Vec<f64>,
    /// All key frequencies ablated from the embedding at once.
    pub embedding_all_keys_loss: f64,
    /// Every frequency but the key ones ablated from the embedding.
    pub embedding_non_keys_loss: f64,
    /// All key frequencies ablated from the MLP output at once.
    pub mlp_all_keys_loss: f64,
    /// Loss over all pairs recomputed on the CPU from the residual stream (the baseline of the
    /// MLP-output ablations; equal to `loss` up to f32 rounding).
    pub mlp_baseline_loss: f64,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct FrequencyAblation {
    pub frequency: usize,
    /// Frequency k removed from the number rows of W_E (what every later layer reads).
    pub embedding_loss: f64,
    /// The `(const, k)`, `(k, const)` and `(k, k)` terms removed from the MLP's output over the
    /// pairs (what the MLP writes into the residual stream).
    pub mlp_loss: f64,
}

/// The residual stream at the last position and the logits of all p² pairs, a-major.
pub struct Residuals<'a> {
    /// `p² x d_vocab_out`.
    pub logits: &'a DMatrix<f64>,
    /// `p² x d_model`: x1, before the MLP.
    pub mid: &'a DMatrix<f64>,
    /// `p² x d_model`: x2, after it.
    pub last: &'a DMatrix<f64>,
}

/// `loss_with(params)` runs the model with other parameters over all pairs and returns its loss
/// (the report runs it on the GPU); their configuration is the model's, but for a model that
/// quantises its embedding, whose ablations come with the embedding's quantiser off.
pub fn algorithm_level(
    params: &Params,
    basis: &FourierBasis,
    keys: &[usize],
    resid: &Residuals,
    loss_with: &mut dyn FnMut(&Params) -> Result<f64>,
) -> Result<AlgorithmLevel> {
    let c = &params.config;
    let p = c.p;
    let labels = analysis::measures::pair_labels(p);
    let label_logits = resid.logits.columns(0, p).into_owned();
    let loss = analysis::measures::cross_entropy(resid.logits, &labels);
    let effective = reference::quant::effective_params(params);
    let read = embedding_as_read(params, &effective);
    let embedding_without = |freqs: &[usize]| {
        let mut ablated = read.clone();
        let mut w_e = analysis::number_embeddings(&read);
        for &k in freqs {
            w_e = logit_algorithm::remove_frequency(&w_e, basis, k);
        }
        let rows = ablated.get_mut(ParamId::WE);
        for t in 0..p {
            for j in 0..c.d_model {
                rows[t * c.d_model + j] = w_e[(t, j)];
            }
        }
        ablated
    };
    let mlp_out = resid.last - resid.mid;
    let mlp_without = |freqs: &[usize]| -> f64 {
        let mut removed = mlp_out.clone();
        for &k in freqs {
            removed = logit_algorithm::remove_frequency_2d(&removed, basis, k);
        }
        let x2 = resid.mid + removed;
        analysis::measures::cross_entropy(&unembed(&effective, &x2), &labels)
    };
    // Every frequency alone, key or not: which the loss needs, whatever the energies say.
    let embedding_losses = (1..=basis.num_frequencies())
        .map(|k| loss_with(&embedding_without(&[k])))
        .collect::<Result<Vec<f64>>>()?;
    let ablations = keys
        .iter()
        .map(|&k| FrequencyAblation {
            frequency: k,
            embedding_loss: embedding_losses[k - 1],
            mlp_loss: mlp_without(&[k]),
        })
        .collect();
    let non_keys: Vec<usize> = (1..=basis.num_frequencies())
        .filter(|k| !keys.contains(k))
        .collect();
    Ok(AlgorithmLevel {
        clock_form_fraction: logit_algorithm::clock_form_fraction(&label_logits, p, keys),
        chance_loss: (p as f64).ln(),
        loss,
        ablations,
        embedding_losses,
        embedding_all_keys_loss: loss_with(&embedding_without(keys))?,
        embedding_non_keys_loss: loss_with(&embedding_without(&non_keys))?,
        mlp_all_keys_loss: mlp_without(keys),
        mlp_baseline_loss: mlp_without(&[]),
    })
}

/// `params` with the embedding as the model reads it, what the embedding ablations edit: for a
/// model that quantises W_E and W_pos, their quantised values, in a configuration that leaves them
/// as they are. (Edited before the quantiser, an ablation would be quantised afresh, which moves
/// every frequency of the embedding, not only the one removed.)
fn embedding_as_read(params: &Params, effective: &Params) -> Params {
    let c = &params.config;
    if !c.quantises_group(QuantGroup::Embed) {
        return params.clone();
    }
    let mut read = params.clone();
    read.config.quantize = c.quantize.without(QuantGroup::Embed);
    for id in [ParamId::WE, ParamId::WPos]
        .into_iter()
        .filter(|id| id.present(c))
    {
        read.get_mut(id).copy_from_slice(effective.get(id));
    }
    read
}

/// The logits (`n x d_vocab_out`) of residual-stream rows `x2` (`n x d_model`) of a model whose
/// `effective` parameters are given (W_U quantised where the model quantises it): the final norm
/// with its gain when the model has one, then `W_U` (and `b_U`).
fn unembed(effective: &Params, x2: &DMatrix<f64>) -> DMatrix<f64> {
    let params = effective;
    let c = &params.config;
    let mut input = x2.clone();
    if c.final_norm {
        let gain = params.get(ParamId::LnFinal);
        for mut row in input.row_iter_mut() {
            let values: Vec<f64> = row.iter().copied().collect();
            let (normed, _) = reference::quant::rms_norm(&values);
            for (j, x) in row.iter_mut().enumerate() {
                *x = normed[j] * gain[j];
            }
        }
    }
    let w_u = DMatrix::from_row_slice(c.d_model, c.d_vocab_out(), params.get(ParamId::WU));
    let mut logits = input * w_u;
    if c.biases {
        for (j, &b) in params.get(ParamId::BU).iter().enumerate() {
            logits.column_mut(j).add_scalar_mut(b);
        }
    }
    logits
}

/// Clock or pizza (Zhong et al. 2023), on both of their metrics over all pairs.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct ClockPizza {
    pub distance_irrelevance: f64,
    /// Over every pair with a ≠ b.
    pub gradient_symmetricity: f64,
    /// "clock", "pizza" or "mixed" by [`classify`].
    pub kind: String,
}

/// Distance irrelevance at or above this reads as a clock, below [`PIZZA_DI`] as a pizza.
pub const CLOCK_DI: f64 = 0.6;
pub const PIZZA_DI: f64 = 0.4;
/// Gradient symmetricity at or above this reads as a pizza.
pub const PIZZA_GS: f64 = 0.9;

/// Both metrics must agree: a clock has distance irrelevance ≥ 0.6 and gradient symmetricity
/// < 0.9; a pizza distance irrelevance < 0.4 and gradient symmetricity ≥ 0.9; anything else is
/// mixed (Zhong et al. read the two together; their clocks sit near DI 1 with low symmetricity,
/// their pizzas near DI 0 with symmetricity near 1).
pub fn classify(distance_irrelevance: f64, gradient_symmetricity: f64) -> &'static str {
    if distance_irrelevance >= CLOCK_DI && gradient_symmetricity < PIZZA_GS {
        "clock"
    } else if distance_irrelevance < PIZZA_DI && gradient_symmetricity >= PIZZA_GS {
        "pizza"
    } else {
        "mixed"
    }
}

/// The rule of [`classify`], in words.
pub fn kind_rule() -> String {
    format!(
        "clock when distance irrelevance ≥ {CLOCK_DI} and gradient symmetricity < {PIZZA_GS}; \
         pizza when distance irrelevance < {PIZZA_DI} and gradient symmetricity ≥ {PIZZA_GS}; \
         mixed otherwise (both over all pairs)"
    )
}

pub fn clock_pizza(params: &Params, label_logits: &DMatrix<f64>) -> ClockPizza {
    let p = params.config.p;
    let correct = analysis::clock_pizza::correct_logits(label_logits, p);
    let distance_irrelevance = analysis::clock_pizza::distance_irrelevance(&correct, p);
    let tokens: Vec<[usize; 3]> = (0..p)
        .flat_map(|a| (0..p).filter(move |&b| b != a).map(move |b| [a, b, p]))
        .collect();
    let gradient_symmetricity = parallel_symmetricity(params, &tokens);
    ClockPizza {
        distance_irrelevance,
        gradient_symmetricity,
        kind: classify(distance_irrelevance, gradient_symmetricity).into(),
    }
}

/// Gradient symmetricity over `tokens`, the examples split among the machine's cores (the mean
/// of per-chunk sums, so the result does not depend on the split but for rounding).
fn parallel_symmetricity(params: &Params, tokens: &[[usize; 3]]) -> f64 {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let chunk = tokens.len().div_ceil(threads).max(1);
    let sums: Vec<f64> = std::thread::scope(|scope| {
        let handles: Vec<_> = tokens
            .chunks(chunk)
            .map(|part| {
                scope.spawn(move || {
                    reference::correct_logit_input_gradients(params, part)
                        .iter()
                        .map(|(g_a, g_b)| analysis::clock_pizza::cosine_similarity(g_a, g_b))
                        .sum::<f64>()
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("a gradient thread"))
            .collect()
    });
    if tokens.is_empty() {
        0.0
    } else {
        sums.iter().sum::<f64>() / tokens.len() as f64
    }
}

fn mean(values: impl Iterator<Item = f64>) -> f64 {
    stats::spread(&values.collect::<Vec<_>>()).mean
}

fn median(values: &[f64]) -> f64 {
    stats::spread(values).median
}

/// Algorithm: the key frequencies are sufficient when removing every other frequency from W_E
/// raises the loss by less than this fraction of chance's loss (ln p).
pub const SUFFICIENT_RISE: f64 = 0.1;
/// The cut of Nanda et al. at which clustered fractions are compared.
pub const CLUSTER_CUT: f64 = 0.85;

/// One run's standing at each level, what `compare` and `sweep-report` judge by.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct LevelSummary {
    /// Generalised ([`crate::metrics::Generalisation`]; without an accuracy curve, the same rule
    /// over all pairs at the analysed checkpoint).
    pub generalised: bool,
    /// First epoch it generalised.
    pub reached_at: Option<usize>,
    /// Relapses after first generalising ([`crate::metrics::Generalisation::relapsed`]).
    pub relapses: usize,
    /// Features: the key-frequency rule finds a clear set.
    pub sparse_features: bool,
    /// Algorithm: the loss depends on the key frequencies alone (see [`key_frequency_algorithm`]).
    pub key_algorithm: bool,
    pub clock_form_fraction: f64,
    /// Loss with all key frequencies removed from W_E, over ln p.
    pub all_keys_ablated_over_chance: f64,
    /// Frequencies whose removal alone from W_E raises the loss by at least
    /// [`SUFFICIENT_RISE`] · ln p, and how many of them are not key frequencies.
    pub needed_frequencies: usize,
    pub needed_outside_keys: usize,
    /// "clock", "pizza" or "mixed" ([`classify`]).
    pub kind: String,
    /// Implementation: clustered fractions at the 0.85 cut.
    pub clustered_pre: f64,
    pub clustered_post: f64,
    pub clustered_null: f64,
    pub clustered_pre_weighted: f64,
    /// What neurons read before the MLP input norm's scale (`clustered_pre` without a norm).
    pub clustered_readout: f64,
    pub median_frequencies_needed_pre: f64,
    pub median_firing_rate: f64,
}

/// The frequencies (1-based) whose removal alone from W_E raises the loss by at least
/// [`SUFFICIENT_RISE`] · ln p: the ones the loss needs, found by ablation rather than energy.
pub fn needed(a: &AlgorithmLevel) -> Vec<usize> {
    a.embedding_losses
        .iter()
        .enumerate()
        .filter(|(_, &l)| l - a.loss >= SUFFICIENT_RISE * a.chance_loss)
        .map(|(i, _)| i + 1)
        .collect()
}

/// The loss depends on the key frequencies alone: removing them from W_E, and from the MLP
/// output, leaves the model no better than chance (loss ≥ ln p); removing every other frequency
/// from W_E raises it by less than [`SUFFICIENT_RISE`] · ln p.
pub fn key_frequency_algorithm(keys: &[usize], a: &AlgorithmLevel) -> bool {
    !keys.is_empty()
        && a.embedding_all_keys_loss >= a.chance_loss
        && a.mlp_all_keys_loss >= a.chance_loss
        && a.embedding_non_keys_loss - a.loss < SUFFICIENT_RISE * a.chance_loss
}

impl LevelSummary {
    pub fn of(s: &super::Summary) -> LevelSummary {
        let nl = &s.neuron_level;
        let p = s.config.model.p;
        let all_pairs = crate::metrics::Generalisation::new(p * p);
        LevelSummary {
            generalised: s.phases.first_reached.is_some()
                || s.phases.grokked.is_some()
                || (s.final_test_acc.is_nan() && all_pairs.reached(s.accuracy_all_pairs as f32)),
            reached_at: s.phases.first_reached,
            relapses: s.phases.relapses,
            sparse_features: !s.key_frequencies.is_empty(),
            key_algorithm: key_frequency_algorithm(&s.key_frequencies, &s.algorithm),
            clock_form_fraction: s.algorithm.clock_form_fraction,
            all_keys_ablated_over_chance: s.algorithm.embedding_all_keys_loss
                / s.algorithm.chance_loss,
            needed_frequencies: needed(&s.algorithm).len(),
            needed_outside_keys: needed(&s.algorithm)
                .iter()
                .filter(|k| !s.key_frequencies.contains(k))
                .count(),
            kind: if s.clock_pizza.kind.is_empty() {
                "unclassified".into()
            } else {
                s.clock_pizza.kind.clone()
            },
            clustered_pre: nl.at(&nl.clustered_pre, CLUSTER_CUT),
            clustered_post: nl.at(&nl.clustered_post, CLUSTER_CUT),
            clustered_null: nl.at(&nl.null_post, CLUSTER_CUT),
            clustered_pre_weighted: nl.at(&nl.weighted_pre, CLUSTER_CUT),
            clustered_readout: nl.at(&nl.clustered_readout, CLUSTER_CUT),
            median_frequencies_needed_pre: nl.median_frequencies_needed_pre,
            median_firing_rate: nl.median_firing_rate,
        }
    }
}
