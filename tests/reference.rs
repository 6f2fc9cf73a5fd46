//! Tests of the CPU reference (`bitgrok::reference`), the oracle of every shader: the shared test
//! vectors, finite differences (direct, and through a surrogate for the straight-through
//! estimator), the quantisers, AdamW, and the test-vector loader.

mod common;

use std::collections::{BTreeSet, HashMap};
use std::path::PathBuf;

use bitgrok::model::config::N_CTX;
use bitgrok::model::{ActQuant, LinearNorm, ModelConfig, ParamId, Params, Weights};
use bitgrok::model::{WeightCentre, WeightQuantiser, WeightScale};
use bitgrok::optim::AdamW;
use bitgrok::reference::{self, quant, ActRow, Exact, Quantiser, Site};
use bitgrok::task::Examples;
use bitgrok::testvectors::{self, TestVector};

// ---------------------------------------------------------------------------------------------
// Shared test vectors
// ---------------------------------------------------------------------------------------------

/// Agreement demanded wherever no tie is involved: `|got - want| <= TIGHT (|want| + 1e-3 scale)`,
/// `scale` being the tensor's largest magnitude (so entries near zero are not held to a relative
/// error of their own). Observed errors are below 1e-12 on this measure.
const TIGHT: f64 = 1e-9;

/// Bound on forward values (logits) of an example where an int8 rounding tie went the other way
/// (see [`Ties`]): the flip moves one activation by one int8 step, `max|x| / 127` of a normalised
/// row, which the rest of the network passes on damped. Observed: 2.3e-3 (real-seed-bitnet-p31).
const TIE_FORWARD_BOUND: f64 = 1e-2;

/// Why a quantised model's results depend on floating-point summation order.
///
/// With int8 activations and binary/ternary weights every `Linear` output is an integer multiple
/// of one scale, so some values are mathematically exact ties: pre-activations that are exactly 0
/// (where ReLU' is 0 or 1 depending on the sign of the rounding error) and int8 inputs at exactly
/// k + 1/2 (which round up or down depending on it). Two correct implementations summing in
/// different orders resolve such ties differently. The first kind only changes gradients; the
/// second changes the forward pass of that example too.
///
/// The examples holding a tie are found from the reference's own values: a last-position
/// pre-activation within 1e-9 of its row's largest, or an int8 input within 1e-9 of a half-integer
/// on a row that reaches the loss (exact ties land at ~1e-14, chance near-ties at ~1e-7).
struct Ties {
    /// Examples with an int8 rounding tie that reaches the logits.
    forward: BTreeSet<usize>,
    /// Examples with a tie of either kind.
    any: BTreeSet<usize>,
}

/// The configured quantisers, noting the rows with an int8 input near a half-integer.
struct TieFinder {
    exact: Exact,
    int8: bool,
    tied_rows: Vec<ActRow>,
}

impl Quantiser for TieFinder {
    fn weight(&mut self, id: ParamId, w: &[f64]) -> Vec<f64> {
        self.exact.weight(id, w)
    }

    fn act(&mut self, at: ActRow, row: &[f64]) -> Vec<f64> {
        let absmax = row.iter().fold(0.0f64, |m, x| m.max(x.abs()));
        let scale = 127.0 / absmax.max(bitgrok::model::config::QUANT_EPS);
        let near_tie = row
            .iter()
            .any(|x| ((x * scale).abs().fract() - 0.5).abs() < 1e-9);
        if self.int8 && near_tie {
            self.tied_rows.push(at);
        }
        self.exact.act(at, row)
    }
}

impl Ties {
    fn find(tv: &TestVector) -> Ties {
        assert_no_ternary_weight_tie(&tv.params);
        let mut finder = TieFinder {
            exact: Exact::new(&tv.config),
            int8: tv.config.act_quant == ActQuant::Int8,
            tied_rows: Vec::new(),
        };
        let fwd = reference::forward_with(&tv.params, &tv.tokens, &mut finder);
        // Rows of positions 0 and 1 reach the logits only through the keys and values.
        let reaches_loss = |at: &ActRow| at.pos == N_CTX - 1 || at.site == Site::Qkv;
        let forward: BTreeSet<usize> = finder
            .tied_rows
            .iter()
            .filter(|at| reaches_loss(at))
            .map(|at| at.example)
            .collect();
        let d_mlp = tv.config.d_mlp;
        let relu = (0..tv.tokens.len()).filter(|&n| {
            let row = &fwd.mlp_pre[(n * N_CTX + N_CTX - 1) * d_mlp..][..d_mlp];
            let largest = max_abs(row);
            row.iter().any(|x| x.abs() <= 1e-9 * largest)
        });
        let any = relu.chain(forward.iter().copied()).collect();
        Ties { forward, any }
    }
}

/// A ternary `W / gamma` at +-1/2 would make every example ambiguous; the vectors have none.
fn assert_no_ternary_weight_tie(params: &Params) {
    if params.config.weights != Weights::Ternary {
        return;
    }
    let c = &params.config;
    for id in ParamId::all_present(c)
        .into_iter()
        .filter(|&id| c.quantises(id))
    {
        let w = params.get(id);
        let gamma = w.iter().map(|x| x.abs()).sum::<f64>() / w.len() as f64;
        let margin = w
            .iter()
            .map(|x| ((x / gamma).abs() - 0.5).abs())
            .fold(1.0, f64::min);
        assert!(
            margin > 1e-9,
            "{}: a ternary weight sits on a rounding tie",
            id.name()
        );
    }
}

fn max_abs(x: &[f64]) -> f64 {
    x.iter().fold(0.0, |m, v| m.max(v.abs()))
}

/// Largest `|got - want| / (|want| + 1e-3 scale)` over the entries `keep` selects.
fn rel_error(got: &[f64], want: &[f64], keep: impl Fn(usize) -> bool) -> f64 {
    assert_eq!(got.len(), want.len());
    let floor = 1e-3 * max_abs(want);
    (0..got.len())
        .filter(|&i| keep(i))
        .map(|i| (got[i] - want[i]).abs() / (want[i].abs() + floor))
        .fold(0.0, f64::max)
}

fn abs_error(got: &[f64], want: &[f64]) -> f64 {
    got.iter()
        .zip(want)
        .map(|(g, w)| (g - w).abs())
        .fold(0.0, f64::max)
}

/// Accumulates failures so one run reports every mismatch of every file.
#[derive(Default)]
struct Checks {
    failures: Vec<String>,
}

impl Checks {
    fn require(&mut self, ok: bool, what: impl FnOnce() -> String) {
        if !ok {
            self.failures.push(what());
        }
    }

    /// Every entry tight, except entries of tied examples, which must be within `tie_bound`
    /// (absolute). `width` is the number of entries per example.
    fn per_example(
        &mut self,
        file: &str,
        name: &str,
        got: &[f64],
        want: &[f64],
        width: usize,
        ties: &BTreeSet<usize>,
    ) {
        let tied = |i: usize| ties.contains(&(i / width));
        let clean = rel_error(got, want, |i| !tied(i));
        let worst_tied = (0..got.len())
            .filter(|&i| tied(i))
            .map(|i| (got[i] - want[i]).abs())
            .fold(0.0, f64::max);
        println!(
            "  {name:28} rel {clean:.1e} on untied examples, abs {worst_tied:.1e} on {} tied",
            ties.len()
        );
        self.require(clean <= TIGHT, || {
            format!("{file}: {name}: relative error {clean:e} on untied examples")
        });
        self.require(worst_tied <= TIE_FORWARD_BOUND, || {
            format!("{file}: {name}: error {worst_tied:e} on tied examples exceeds {TIE_FORWARD_BOUND:e}")
        });
    }

    /// Every entry within `bound` (absolute) when given, else tight.
    fn tensor(&mut self, file: &str, name: &str, got: &[f64], want: &[f64], bound: Option<f64>) {
        let (rel, abs) = (rel_error(got, want, |_| true), abs_error(got, want));
        println!(
            "  {name:28} rel {rel:.1e} abs {abs:.1e} (scale {:.1e})",
            max_abs(want)
        );
        match bound {
            None => self.require(rel <= TIGHT, || {
                format!("{file}: {name}: relative error {rel:e}")
            }),
            Some(bound) => self.require(abs <= bound, || {
                format!("{file}: {name}: error {abs:e} exceeds {bound:e}")
            }),
        }
    }
}

#[test]
fn reference_reproduces_every_shared_test_vector() {
    let dir = testvectors::shared_dir();
    let files = testvectors::all_files(&dir).unwrap();
    assert!(!files.is_empty(), "no test vectors in {}", dir.display());
    let mut checks = Checks::default();
    for path in files {
        let tv = testvectors::load(&path).unwrap();
        check_test_vector(&tv, &mut checks);
    }
    assert!(
        checks.failures.is_empty(),
        "mismatches:\n{}",
        checks.failures.join("\n")
    );
}

fn check_test_vector(tv: &TestVector, checks: &mut Checks) {
    let (file, c, n) = (tv.name.as_str(), &tv.config, tv.tokens.len() as f64);
    let ties = Ties::find(tv);
    println!(
        "{file}: {} of {n} examples hold a tie, {} in the forward pass",
        ties.any.len(),
        ties.forward.len()
    );

    let fwd = reference::forward(&tv.params, &tv.tokens);
    checks.per_example(
        file,
        "logits",
        &fwd.logits,
        &tv.expected.logits,
        c.p,
        &ties.forward,
    );
    checks.per_example(
        file,
        "attn_pattern_last",
        &fwd.attn_pattern_last(),
        &tv.expected.attn_pattern_last,
        c.n_heads * N_CTX,
        &ties.forward,
    );
    checks.per_example(
        file,
        "mlp_post_last",
        &fwd.mlp_post_last(c.d_mlp),
        &tv.expected.mlp_post_last,
        c.d_mlp,
        &ties.forward,
    );

    // Cross-entropy moves by at most 2 max|d logit| per example, averaged over the examples.
    let logit_shift: f64 = fwd
        .logits
        .chunks(c.p)
        .zip(tv.expected.logits.chunks(c.p))
        .map(|(g, w)| abs_error(g, w))
        .sum();
    let (loss, grads) = reference::loss_and_grads(&tv.params, &tv.tokens, &tv.labels);
    let loss_bound = TIGHT * tv.expected.loss.abs() + 2.0 * logit_shift / n;
    checks.tensor(file, "loss", &[loss], &[tv.expected.loss], Some(loss_bound));
    let forward_loss = reference::cross_entropy(&fwd.logits, &tv.labels, c.p);
    checks.require((forward_loss - loss).abs() <= 1e-12 * loss, || {
        format!("{file}: forward and backward losses differ")
    });

    for (id, got) in grads.iter() {
        checks.tensor(
            file,
            &format!("grad {}", id.name()),
            got,
            tv.expected.grads.get(id),
            grad_bound(id, &ties, n, tv),
        );
    }

    // AdamW alone, from the file's own gradients: tight whatever the ties.
    let mut adamw1_from = |grads: &Params, what: &str, bound: Option<f64>| {
        for (id, got) in one_adamw_step(tv, grads).iter() {
            let name = format!("adamw1 {}{what}", id.name());
            checks.tensor(file, &name, got, tv.expected.adamw1.get(id), bound);
        }
    };
    adamw1_from(&tv.expected.grads, " (file grads)", None);
    // End to end. The first step is `p (1 - lr wd) - lr g / (|g| + eps)`: a different gradient
    // moves an entry by less than 2 lr, whatever the difference.
    let bound = (!ties.any.is_empty()).then_some(2.0 * tv.adamw.lr);
    adamw1_from(&grads, "", bound);
}

/// `None` (tight) where no tie can reach the gradient. Ties of the ReLU alone change only what the
/// backward reaches after the ReLU, so `W_U`, `ln_final` and `W_out` stay tight. Otherwise each tied
/// example can change its own `1/N` share of the gradient, of the order of the tensor's scale:
/// the bound is `(tied / N) scale`, at least twice the error observed (tiny-seed-bitnet, `W_in`).
fn grad_bound(id: ParamId, ties: &Ties, n: f64, tv: &TestVector) -> Option<f64> {
    let before_relu = matches!(id, ParamId::WU | ParamId::LnFinal | ParamId::WOut);
    if ties.any.is_empty() || (ties.forward.is_empty() && before_relu) {
        return None;
    }
    Some(ties.any.len() as f64 / n * max_abs(tv.expected.grads.get(id)))
}

fn one_adamw_step(tv: &TestVector, grads: &Params) -> Params {
    let mut params = tv.params.clone();
    let (mut m, mut v) = (Params::zeros(&tv.config), Params::zeros(&tv.config));
    reference::adamw_step(&mut params, grads, &mut m, &mut v, tv.adamw_step, &tv.adamw);
    params
}

// ---------------------------------------------------------------------------------------------
// Finite differences
// ---------------------------------------------------------------------------------------------

/// Every quantiser `Q(x)` replaced by `x + (Q(x0) - x0)`, the offset frozen at the base point
/// `x0` (the first value seen for each weight matrix and each activation row). Its value at the
/// base point is `Q(x0)` and its derivative is the identity, so the true gradient of the model
/// built from it is exactly the straight-through gradient, which finite differences can see.
///
/// A centred quantiser `Q(W - mean W)` becomes `(W - mean W) + (Q(W0 - mean W0) - (W0 - mean W0))`:
/// the straight-through estimator wraps `W - mean W`, and the mean is differentiated.
struct FrozenOffsets {
    exact: Exact,
    centre: WeightCentre,
    weights: HashMap<ParamId, Vec<f64>>,
    acts: HashMap<ActRow, Vec<f64>>,
}

impl FrozenOffsets {
    fn new(config: &ModelConfig) -> Self {
        FrozenOffsets {
            exact: Exact::new(config),
            centre: config.weight_centre,
            weights: HashMap::new(),
            acts: HashMap::new(),
        }
    }
}

impl Quantiser for FrozenOffsets {
    fn weight(&mut self, id: ParamId, w: &[f64]) -> Vec<f64> {
        let x = quant::centre(w, self.centre);
        let offset = self
            .weights
            .entry(id)
            .or_insert_with(|| sub(&self.exact.weight(id, w), &x));
        add(&x, offset)
    }

    fn act(&mut self, at: ActRow, row: &[f64]) -> Vec<f64> {
        let offset = self
            .acts
            .entry(at)
            .or_insert_with(|| sub(&self.exact.act(at, row), row));
        add(row, offset)
    }
}

fn add(a: &[f64], b: &[f64]) -> Vec<f64> {
    a.iter().zip(b).map(|(x, y)| x + y).collect()
}

fn sub(a: &[f64], b: &[f64]) -> Vec<f64> {
    a.iter().zip(b).map(|(x, y)| x - y).collect()
}

/// The full-precision tiny model with positions and a causal mask.
fn f32_tiny(final_norm: bool) -> ModelConfig {
    common::tiny_config(
        Weights::F32,
        ActQuant::None,
        LinearNorm::None,
        true,
        true,
        final_norm,
    )
}

fn all_examples(p: usize) -> (Vec<[usize; 3]>, Vec<usize>) {
    let examples = Examples::all(p);
    (
        examples.tokens(p),
        examples.labels.iter().map(|&l| l as usize).collect(),
    )
}

/// Seeded parameters whose last-position pre-activations all keep clear of the ReLU kink, where
/// finite differences are meaningless. Quantised products are often exactly 0 (see [`Ties`]), so
/// some seeds are skipped.
fn kink_free_params(config: &ModelConfig, tokens: &[[usize; 3]]) -> Params {
    (0..100)
        .map(|seed| Params::init(config, seed).with_random_biases(seed))
        .find(|params| {
            let fwd = reference::forward(params, tokens);
            let last = fwd
                .mlp_pre
                .chunks(config.d_mlp)
                .skip(N_CTX - 1)
                .step_by(N_CTX);
            last.flatten().all(|x| x.abs() > 1e-4)
        })
        .expect("no seed below 100 keeps the pre-activations off the ReLU kink")
}

/// Central differences (`h = 1e-6`) of `loss` against `loss_and_grads` for every parameter entry.
/// Rounding and truncation errors stay below 1e-9 here; a wrong gradient errs by about itself.
fn check_finite_differences(config: &ModelConfig, quantiser: &mut dyn Quantiser) {
    let (tokens, labels) = all_examples(config.p);
    let params = kink_free_params(config, &tokens);
    let (loss0, grads) = reference::loss_and_grads(&params, &tokens, &labels);
    let mut loss = |params: &Params| {
        reference::cross_entropy(
            &reference::forward_with(params, &tokens, quantiser).logits,
            &labels,
            config.d_vocab_out(),
        )
    };
    // The first pass fixes the base point of a frozen-offset quantiser and must give the loss.
    assert!(
        (loss(&params) - loss0).abs() <= 1e-12,
        "{config:?}: the quantiser changes the loss"
    );
    let h = 1e-6;
    for (id, grad) in grads.iter() {
        for (i, &g) in grad.iter().enumerate() {
            let shifted = |delta: f64| {
                let mut p = params.clone();
                p.get_mut(id)[i] += delta;
                p
            };
            let fd = (loss(&shifted(h)) - loss(&shifted(-h))) / (2.0 * h);
            assert!(
                (fd - g).abs() <= 1e-5 * g.abs() + 1e-8,
                "{config:?}: d loss / d {}[{i}] = {g:e}, finite differences give {fd:e}",
                id.name()
            );
        }
    }
}

#[test]
fn gradients_match_finite_differences_in_full_precision() {
    // `causal` cannot change the loss (the last position sees every key) but is covered anyway.
    for linear_norm in [LinearNorm::None, LinearNorm::Rms] {
        for pos_embed in [false, true] {
            for causal in [false, true] {
                for final_norm in [false, true] {
                    let config = common::tiny_config(
                        Weights::F32,
                        ActQuant::None,
                        linear_norm,
                        pos_embed,
                        causal,
                        final_norm,
                    );
                    check_finite_differences(&config, &mut Exact::new(&config));
                }
            }
        }
    }
}

#[test]
fn gradients_match_finite_differences_with_biases_and_an_eq_output() {
    for (linear_norm, final_norm) in [(LinearNorm::None, false), (LinearNorm::Rms, true)] {
        let mut config = common::tiny_config(
            Weights::F32,
            ActQuant::None,
            linear_norm,
            true,
            true,
            final_norm,
        );
        config.biases = true;
        config.eq_output = true;
        check_finite_differences(&config, &mut Exact::new(&config));
    }
}

#[test]
fn straight_through_gradients_match_the_frozen_offset_surrogate() {
    for weights in [Weights::Binary, Weights::Ternary] {
        for act_quant in [ActQuant::None, ActQuant::Int8] {
            for (pos_embed, causal, final_norm) in [(false, false, true), (true, true, false)] {
                let config = common::tiny_config(
                    weights,
                    act_quant,
                    LinearNorm::Rms,
                    pos_embed,
                    causal,
                    final_norm,
                );
                check_finite_differences(&config, &mut FrozenOffsets::new(&config));
            }
        }
    }
}

/// The switches of the weight quantiser (`--quantize`, `--weight-scale`, `--weight-centre`),
/// each setting with each weight precision: straight-through gradients of the embedding and
/// unembedding, and centred gradients `g - mean g`, against finite differences of the
/// surrogate (which differentiates through the mean).
#[test]
fn gradients_of_every_weight_quantiser_match_the_frozen_offset_surrogate() {
    let scopes = ["embed", "unembed", "attn", "mlp+embed", "all"];
    let quantisers = [
        (WeightScale::Absmean, WeightCentre::None),
        (WeightScale::None, WeightCentre::None),
        (WeightScale::Absmean, WeightCentre::Mean),
        (WeightScale::None, WeightCentre::Mean),
    ];
    for weights in [Weights::Binary, Weights::Ternary] {
        for (i, scope) in scopes.iter().enumerate() {
            for (j, &(scale, centre)) in quantisers.iter().enumerate() {
                // Alternate the other switches so each meets both settings of the norms.
                let rms = (i + j) % 2 == 0;
                let mut config = common::tiny_config(
                    weights,
                    ActQuant::None,
                    if rms {
                        LinearNorm::Rms
                    } else {
                        LinearNorm::None
                    },
                    true,
                    true,
                    !rms,
                );
                config.quantize = scope.parse().unwrap();
                (config.weight_scale, config.weight_centre) = (scale, centre);
                check_finite_differences(&config, &mut FrozenOffsets::new(&config));
            }
        }
    }
}

/// Centred gradients sum to 0, where the plain straight-through ones do not (but for W_U's):
/// the check above could fail without the centring.
#[test]
fn centred_gradients_sum_to_zero_and_differ_from_straight_through() {
    let mut config = common::tiny_fully_quantised(false);
    let (tokens, labels) = all_examples(config.p);
    let params = Params::init(&config, 7);
    let (_, plain) = reference::loss_and_grads(&params, &tokens, &labels);
    config.weight_centre = WeightCentre::Mean;
    let (_, centred) = reference::loss_and_grads(&Params::init(&config, 7), &tokens, &labels);
    for id in ParamId::all_present(&config)
        .into_iter()
        .filter(|&id| config.quantises(id))
    {
        let (g, c) = (plain.get(id), centred.get(id));
        let sum: f64 = c.iter().sum();
        assert!(
            sum.abs() < 1e-12 * max_abs(g) * c.len() as f64,
            "{}: sum {sum:e}",
            id.name()
        );
        // The logits' gradient sums to 0 over the outputs, so W_U's always does.
        let mean = g.iter().sum::<f64>() / g.len() as f64;
        assert!(
            id == ParamId::WU || mean.abs() > 1e-9 * max_abs(g),
            "{}: its plain gradient already sums to 0",
            id.name()
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Forward details
// ---------------------------------------------------------------------------------------------

#[test]
fn causal_mask_hides_later_keys() {
    let pattern = |causal| {
        let config = common::tiny_config(
            Weights::F32,
            ActQuant::None,
            LinearNorm::None,
            true,
            causal,
            false,
        );
        reference::forward(&Params::init(&config, 3), &[[1, 2, 5]]).attn_pattern
        // [H, query, key]
    };
    let (causal, open) = (pattern(true), pattern(false));
    for head in causal.chunks(N_CTX * N_CTX) {
        assert_eq!(&head[..3], &[1.0, 0.0, 0.0]);
        assert_eq!(head[5], 0.0);
        assert!((head[6..].iter().sum::<f64>() - 1.0).abs() < 1e-12);
    }
    assert!(open.iter().all(|&a| a > 0.0));
    // The last query sees every key either way.
    assert_eq!(
        reference::Forward {
            attn_pattern: causal,
            ..Default::default()
        }
        .attn_pattern_last(),
        reference::Forward {
            attn_pattern: open,
            ..Default::default()
        }
        .attn_pattern_last()
    );
}

#[test]
fn cross_entropy_and_accuracy_of_known_logits() {
    let logits = [0.0, 0.0, 0.0, 0.0, 1000.0, 0.0]; // two examples, p = 3
    let ce = reference::cross_entropy(&logits, &[0, 1], 3);
    // ln 3 for the uniform row; ln(1 + 2 e^-1000) = 0 for the confident right one.
    assert!((ce - 3f64.ln() / 2.0).abs() < 1e-15, "{ce}");
    // The first of tied logits wins.
    assert_eq!(reference::accuracy(&logits, &[0, 1], 3), 1.0);
    assert_eq!(reference::accuracy(&logits, &[0, 0], 3), 0.5);
    assert_eq!(reference::accuracy(&logits, &[1, 2], 3), 0.0);
}

// ---------------------------------------------------------------------------------------------
// Quantisers
// ---------------------------------------------------------------------------------------------

#[test]
fn ternary_quantises_a_known_matrix() {
    // mean|W| = 3.8 / 6; W / gamma = [0.79, -1.58, 0.16, 3.16, -0.32, 0].
    let w = [0.5, -1.0, 0.1, 2.0, -0.2, 0.0];
    let gamma = 3.8 / 6.0;
    let got = quant::weight(&w, Weights::Ternary);
    for (got, t) in got.iter().zip([1.0, -1.0, 0.0, 1.0, 0.0, 0.0]) {
        assert!((got - t * gamma).abs() < 1e-15, "{got} != {t} gamma");
    }
}

#[test]
fn ternary_of_a_zero_matrix_is_zero() {
    // The scale floor (1e-5) keeps W / gamma finite.
    assert_eq!(quant::weight(&[0.0; 4], Weights::Ternary), vec![0.0; 4]);
}

#[test]
fn binary_centres_on_the_mean_and_has_two_values() {
    // mean 3, mean|W| 3: the signs of [-2, -1, 0, 3] times 3, a weight at the mean counting as
    // +1 (the sign bit the shaders pack it into has no zero).
    assert_eq!(
        quant::weight(&[1.0, 2.0, 3.0, 6.0], Weights::Binary),
        vec![-3.0, -3.0, 3.0, 3.0]
    );
}

/// The published paper's quantisers (Li 2024, `bitnet/bitlinear.py`) and their halves.
#[test]
fn centred_and_unscaled_quantisers_of_known_matrices() {
    let q = |weights, scale, centre| WeightQuantiser {
        weights,
        scale,
        centre,
    };
    use WeightCentre::{Mean, None as Plain};
    use WeightScale::{Absmean, None as Unscaled};
    // W = [1, 2, 3, 10]: mean 4, W - mean W = [-3, -2, -1, 6] with mean|.| 3, so the centred
    // ternary codes are round([-1, -2/3, -1/3, 2]) clipped; uncentred, W / mean|W| =
    // [0.25, 0.5, 0.75, 2.5] rounds (ties to even) to [0, 0, 1, 2] clipped.
    let w = [1.0, 2.0, 3.0, 10.0];
    let ternary = |scale, centre| quant::weight(&w, q(Weights::Ternary, scale, centre));
    assert_eq!(ternary(Absmean, Mean), vec![-3.0, -3.0, 0.0, 3.0]);
    assert_eq!(ternary(Unscaled, Mean), vec![-1.0, -1.0, 0.0, 1.0]);
    assert_eq!(ternary(Absmean, Plain), vec![0.0, 0.0, 4.0, 4.0]);
    assert_eq!(ternary(Unscaled, Plain), vec![0.0, 0.0, 1.0, 1.0]);
    // Binary codes are the signs of W - mean W either way; centring changes the scale from
    // mean|W| (4) to mean|W - mean W| (3); the paper's binary weights are the signs alone.
    let binary = |scale, centre| quant::weight(&w, q(Weights::Binary, scale, centre));
    assert_eq!(binary(Absmean, Plain), vec![-4.0, -4.0, -4.0, 4.0]);
    assert_eq!(binary(Absmean, Mean), vec![-3.0, -3.0, -3.0, 3.0]);
    assert_eq!(binary(Unscaled, Mean), vec![-1.0, -1.0, -1.0, 1.0]);
    assert_eq!(binary(Unscaled, Plain), vec![-1.0, -1.0, -1.0, 1.0]);
    // The defaults are BitNet's quantisers.
    assert_eq!(
        WeightQuantiser::from(Weights::Ternary),
        q(Weights::Ternary, Absmean, Plain)
    );
}

#[test]
fn f32_weights_are_unchanged() {
    assert_eq!(quant::weight(&[0.3, -7.0], Weights::F32), vec![0.3, -7.0]);
}

#[test]
fn int8_rounds_half_to_even() {
    // absmax 127 makes the scale 1, so the row is its own int8 code.
    let row = [127.0, 2.5, 3.5, -0.5, -1.5, 0.49];
    assert_eq!(
        quant::act_int8(&row),
        vec![127.0, 2.0, 4.0, -0.0, -2.0, 0.0]
    );
    // At scale 127 / 2: 0.5 * 63.5 = 31.75 -> 32, so 32 / 63.5.
    assert_eq!(quant::act_int8(&[2.0, 0.5]), vec![2.0, 32.0 / 63.5]);
}

#[test]
fn int8_clamps_to_the_int8_range() {
    // The absmax scale never reaches the clamp, so give the scale directly.
    assert_eq!(
        quant::act_int8_scaled(&[-130.0, -128.4, 130.0, 126.6], 1.0),
        vec![-128.0, -128.0, 127.0, 127.0]
    );
}

#[test]
fn int8_of_a_zero_row_is_zero() {
    assert_eq!(quant::act_int8(&[0.0; 3]), vec![0.0; 3]);
}

#[test]
fn rms_norm_has_unit_mean_square() {
    let (normed, inv_rms) = quant::rms_norm(&[3.0, -4.0]);
    let rms = (12.5f64 + 1e-5).sqrt();
    assert_eq!(normed, vec![3.0 / rms, -4.0 / rms]);
    assert!((inv_rms - 1.0 / rms).abs() < 1e-15);
}

// ---------------------------------------------------------------------------------------------
// AdamW
// ---------------------------------------------------------------------------------------------

#[test]
fn adamw_step_matches_a_hand_computed_step() {
    // Step 2 from p = 1, g = 0.5, m = 0.1, v = 0.01 with lr 0.1, wd 0.5, betas (0.9, 0.99):
    //   decay  p = 1 - 0.1 * 0.5 * 1              = 0.95
    //   m = 0.9 * 0.1 + 0.1 * 0.5                 = 0.14
    //   v = 0.99 * 0.01 + 0.01 * 0.25             = 0.0124
    //   m^ = 0.14 / (1 - 0.81)                    = 0.736842105263158
    //   v^ = 0.0124 / (1 - 0.9801)                = 0.623115577889447, sqrt 0.789376702145083
    //   p = 0.95 - 0.1 * 0.736842105263158 / (0.789376702145083 + 1e-8) = 0.856655201005254
    let config = f32_tiny(true);
    let filled = |x: f64| {
        let mut params = Params::zeros(&config);
        for id in ParamId::all_present(&config) {
            params.get_mut(id).fill(x);
        }
        params
    };
    let (mut params, grads, mut m, mut v) = (filled(1.0), filled(0.5), filled(0.1), filled(0.01));
    let hp = AdamW {
        lr: 0.1,
        weight_decay: 0.5,
        betas: [0.9, 0.99],
        eps: 1e-8,
    };
    reference::adamw_step(&mut params, &grads, &mut m, &mut v, 2, &hp);
    for id in ParamId::all_present(&config) {
        assert!(
            params
                .get(id)
                .iter()
                .all(|p| (p - 0.856655201005254).abs() < 1e-14),
            "{}",
            id.name()
        );
        assert!(m.get(id).iter().all(|m| (m - 0.14).abs() < 1e-15));
        assert!(v.get(id).iter().all(|v| (v - 0.0124).abs() < 1e-15));
    }
}

// ---------------------------------------------------------------------------------------------
// Loader
// ---------------------------------------------------------------------------------------------

/// Writes `bytes` to a fresh temporary file and returns the loader's error message.
fn load_error(name: &str, bytes: &[u8]) -> String {
    let path: PathBuf =
        std::env::temp_dir().join(format!("bitgrok-{}-{name}.safetensors", std::process::id()));
    std::fs::write(&path, bytes).unwrap();
    let result = testvectors::load(&path);
    std::fs::remove_file(&path).unwrap();
    format!("{:#}", result.expect_err("a bad file loaded"))
}

#[test]
fn loader_reports_bad_files() {
    let good = std::fs::read(testvectors::shared_dir().join("tiny-nanda.safetensors")).unwrap();
    let truncated = load_error("truncated", &good[..good.len() / 2]);
    assert!(
        truncated.contains("not a valid safetensors file"),
        "{truncated}"
    );

    let config = f32_tiny(false);
    let header = |config_json: String| {
        let adamw =
            r#"{"lr": 0.001, "weight_decay": 1.0, "betas": [0.9, 0.98], "eps": 1e-08, "step": 1}"#;
        Some(HashMap::from([
            ("config".to_string(), config_json),
            ("adamw".to_string(), adamw.to_string()),
        ]))
    };
    let params_only = Params::zeros(&config)
        .to_safetensors_bytes("params.", header(serde_json::to_string(&config).unwrap()))
        .unwrap();
    let missing = load_error("missing", &params_only);
    assert!(
        missing.contains("tensor inputs.tokens is missing"),
        "{missing}"
    );

    let bad_json = Params::zeros(&config)
        .to_safetensors_bytes("params.", header("{\"p\": 5".into()))
        .unwrap();
    let bad_json = load_error("bad-json", &bad_json);
    assert!(bad_json.contains("bad `config` JSON"), "{bad_json}");

    assert!(
        testvectors::load(&testvectors::shared_dir().join("no-such-file.safetensors")).is_err()
    );
}
