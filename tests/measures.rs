//! The measures behind the three levels of a verdict, on synthetic inputs whose answers are known:
//! neuron profiles pre- and post-ReLU, the rectification null against its analytic pass rate, the
//! clock form of the logits and frequency ablations, the sustained phase rule and the checkpoint
//! an analysis takes.

mod common;

use std::f64::consts::PI;

use nalgebra::DMatrix;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal};

use bitgrok::analysis::{
    self, logit_algorithm, neuron_measures, neuron_measures::NeuronProfile, neurons,
    rectification_null,
};
use bitgrok::metrics::EpochMetrics;
use bitgrok::metrics::{self, Generalisation, Phases};
use bitgrok::model::{ActQuant, LinearNorm, ParamId, Params, Weights};
use bitgrok::reference::quant::rms_norm;
use bitgrok::report::checkpoint_choice::analysed_checkpoint;
use bitgrok::report::levels;

fn angle(k: usize, x: usize, p: usize) -> f64 {
    2.0 * PI * ((k * x) % p) as f64 / p as f64
}

/// `p² x 1`: a neuron's pre-activation over (a, b), a-major.
fn neuron(p: usize, f: impl Fn(usize, usize) -> f64) -> DMatrix<f64> {
    DMatrix::from_fn(p * p, 1, |i, _| f(i / p, i % p))
}

/// The pre-ReLU profile of every neuron (column) of `pre`.
fn profiles(pre: &DMatrix<f64>, basis: &analysis::fourier::FourierBasis) -> Vec<NeuronProfile> {
    NeuronProfile::all(&neurons::frequency_fractions(pre, basis))
}

fn profile(values: &DMatrix<f64>, p: usize) -> NeuronProfile {
    let fr = neurons::frequency_fractions(values, &analysis::basis(p));
    NeuronProfile::of(&fr.row(0).iter().copied().collect::<Vec<_>>())
}

#[test]
fn a_pure_frequency_is_single_frequency_pre_relu_at_any_offset() {
    let p = 31;
    for k in [1, 5, 15] {
        for offset in [-2.0, -0.5, 0.0, 0.7, 3.0] {
            // The clock's trig-identity shapes: cos(w a) + cos(w b), and cos(w (a + b)).
            for shape in 0..2 {
                let n = neuron(p, |a, b| {
                    offset
                        + if shape == 0 {
                            angle(k, a, p).cos() + (angle(k, b, p) + 0.4).cos()
                        } else {
                            angle(k, a + b, p).cos()
                        }
                });
                let pr = profile(&n, p);
                assert_eq!(pr.dominant, Some(k));
                assert!((pr.max_share - 1.0).abs() < 1e-9, "{pr:?}");
                assert_eq!(pr.frequencies_needed, Some(1));
                assert!(pr.cross_frequency < 1e-9);
            }
        }
    }
}

#[test]
fn a_sixty_forty_neuron_needs_two_frequencies() {
    let p = 23;
    let (k1, k2) = (3, 7);
    // Shares 0.6 and 0.4 of the variance: amplitudes in the ratio sqrt(0.6 / 0.4).
    let n = neuron(p, |a, b| {
        0.6f64.sqrt() * angle(k1, a + b, p).cos() + 0.4f64.sqrt() * angle(k2, a + b, p).sin()
    });
    let pr = profile(&n, p);
    assert_eq!(pr.dominant, Some(k1));
    assert!((pr.max_share - 0.6).abs() < 1e-9, "{pr:?}");
    assert!((pr.top2_share - 1.0).abs() < 1e-9);
    assert_eq!(pr.frequencies_needed, Some(2));
    // A product of two frequencies is all cross-frequency: no number of frequencies reaches 85%.
    let n = neuron(p, |a, b| angle(k1, a, p).cos() * angle(k2, b, p).cos());
    let pr = profile(&n, p);
    assert!((pr.cross_frequency - 1.0).abs() < 1e-9, "{pr:?}");
    assert_eq!(pr.frequencies_needed, None);
}

#[test]
fn the_readout_undoes_a_per_pair_scale_that_mixes_frequencies() {
    // A neuron that reads one frequency (k1) from the residual, divided by a per-pair scale that
    // varies at another (k2), as an RMS norm of the MLP input does, plus a bias.
    for p in [23, 24] {
        let (k1, k2) = (3, 7);
        let bias = [0.4];
        let scale: Vec<f64> = (0..p * p)
            .map(|i| 1.0 + 0.3 * angle(k2, i / p, p).cos())
            .collect();
        let read = |a: usize, b: usize| 4.0 + angle(k1, a, p).cos() + angle(k1, b, p).cos();
        let pre = neuron(p, |a, b| bias[0] + read(a, b) / scale[a * p + b]);
        let mixed = profile(&pre, p);
        assert!(
            mixed.max_share < 0.85,
            "p = {p}: the quotient mixes: {mixed:?}"
        );
        let readout = neuron_measures::readout(&pre, Some(&bias), &scale);
        let pure = profile(&readout, p);
        assert_eq!(pure.dominant, Some(k1));
        assert!((pure.max_share - 1.0).abs() < 1e-9, "p = {p}: {pure:?}");
        // Without a scale, the readout is `pre` less its bias: the same shares.
        let unscaled = neuron_measures::readout(&pre, Some(&bias), &vec![1.0; p * p]);
        assert!((profile(&unscaled, p).max_share - mixed.max_share).abs() < 1e-12);
    }
    assert_eq!(neuron_measures::variation(&[2.0, 2.0, 2.0]), 0.0);
    assert!((neuron_measures::variation(&[1.0, 3.0]) - 0.5).abs() < 1e-15);
}

/// A model's readout takes its own bias and norm: for a model with biases and an RMS norm on
/// every Linear input, the MLP's pre-activations over residual rows `mid` are
/// `N(mid) W_in + b_in`, and what its neurons read is `mid W_in`.
#[test]
fn a_models_readout_is_w_in_times_the_residual() {
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let normal = Normal::new(0.0, 1.0).unwrap();
    for linear_norm in [LinearNorm::Rms, LinearNorm::None] {
        let mut config = common::tiny_config(
            Weights::F32,
            ActQuant::None,
            linear_norm,
            false,
            true,
            false,
        );
        config.biases = true;
        let mut params = Params::init(&config, 0);
        for (m, b) in params.get_mut(ParamId::BIn).iter_mut().enumerate() {
            *b = 0.1 * m as f64 - 0.5;
        }
        let (p, d, m) = (config.p, config.d_model, config.d_mlp);
        let basis = analysis::basis(p);
        // Rows of very different sizes, so that the norm's scale varies a lot.
        let mid = DMatrix::from_fn(p * p, d, |i, _| (1.0 + i as f64) * normal.sample(&mut rng));
        let w_in = DMatrix::from_row_slice(d, m, params.get(ParamId::WIn));
        let b_in = params.get(ParamId::BIn).to_vec();
        let rms: Vec<f64> = mid
            .row_iter()
            .map(|r| 1.0 / rms_norm(&r.iter().copied().collect::<Vec<_>>()).1)
            .collect();
        let normed = match linear_norm {
            LinearNorm::Rms => DMatrix::from_fn(p * p, d, |i, j| mid[(i, j)] / rms[i]),
            LinearNorm::None => mid.clone(),
        };
        let pre = DMatrix::from_fn(p * p, m, |i, n| {
            (normed.row(i) * w_in.column(n))[(0, 0)] + b_in[n]
        });
        let pre_fractions = neurons::frequency_fractions(&pre, &basis);
        let readout = levels::readout(&params, (&pre, &pre_fractions), &mid, &basis);
        let expected = neurons::frequency_fractions(&(&mid * &w_in), &basis);
        assert!(
            (&readout.fractions - &expected).abs().max() < 1e-9,
            "{linear_norm:?}"
        );
        match linear_norm {
            LinearNorm::Rms => assert_eq!(
                readout.scale_variation,
                Some(neuron_measures::variation(&rms))
            ),
            LinearNorm::None => assert_eq!(readout.scale_variation, None),
        }
    }
}

#[test]
fn clustered_curves_count_and_weigh() {
    let shares = [0.9, 0.6, 0.3];
    let t = [0.5, 0.85];
    assert_eq!(
        neuron_measures::clustered_curve(&shares, &[1.0; 3], &t),
        vec![2.0 / 3.0, 1.0 / 3.0]
    );
    assert_eq!(
        neuron_measures::clustered_curve(&shares, &[0.0, 1.0, 3.0], &t),
        vec![0.25, 0.0]
    );
    assert_eq!(
        neuron_measures::clustered_curve(&shares, &[0.0; 3], &t),
        vec![0.0, 0.0]
    );
}

/// Independent of the closed form: the fundamental's share of a rectified cosine by numerical
/// integration over a fine phase grid.
fn rectified_share_numerically(rate: f64) -> f64 {
    let c = (PI * rate).cos();
    let n = 200_000;
    let f: Vec<(f64, f64)> = (0..n)
        .map(|i| {
            let th = 2.0 * PI * (i as f64 + 0.5) / n as f64;
            (th, (th.cos() - c).max(0.0))
        })
        .collect();
    let mean = f.iter().map(|x| x.1).sum::<f64>() / n as f64;
    let var = f.iter().map(|x| (x.1 - mean).powi(2)).sum::<f64>() / n as f64;
    let a1 = 2.0 * f.iter().map(|x| x.1 * x.0.cos()).sum::<f64>() / n as f64;
    a1 * a1 / 2.0 / var
}

#[test]
fn rectified_cosine_share_has_its_known_values() {
    assert!((neuron_measures::rectified_cosine_share(1.0) - 1.0).abs() < 1e-12);
    // Half-wave rectification keeps 84.07% in the fundamental: just under Nanda et al.'s cut.
    let half = 0.125 / (0.25 - 1.0 / (PI * PI));
    assert!((neuron_measures::rectified_cosine_share(0.5) - half).abs() < 1e-12 && half < 0.85);
    for rate in [0.1, 0.3, 0.5, 0.7, 0.9] {
        let (closed, numeric) = (
            neuron_measures::rectified_cosine_share(rate),
            rectified_share_numerically(rate),
        );
        assert!(
            (closed - numeric).abs() < 1e-6,
            "rate {rate}: {closed} vs {numeric}"
        );
    }
}

#[test]
fn the_pure_null_reproduces_the_analytic_post_relu_pass_rate() {
    // One neuron of frequency k over the sum a + b, firing on a given fraction of the pairs. The
    // pure null keeps its shape and firing rate with purity 1: each synthetic neuron's post-ReLU
    // share must be the rectified cosine's, so it passes a threshold exactly when that does.
    let p = 101;
    let basis = analysis::basis(p);
    for (k, rate) in [(4, 0.3), (9, 0.5), (20, 0.75)] {
        let pre = neuron(p, |a, b| angle(k, a + b, p).cos());
        let fired = rectification_null::fire_on(
            &pre.iter().copied().collect::<Vec<_>>(),
            (rate * (p * p) as f64).round() as usize,
        );
        let pre_shifted = DMatrix::from_fn(p * p, 1, |i, _| {
            // A pre-activation with the same firing rate: positive exactly where `fired` is.
            if fired[i] > 0.0 {
                fired[i]
            } else {
                pre[(i, 0)] - 10.0
            }
        });
        let shares = rectification_null::null_max_shares(
            &pre_shifted,
            &profiles(&pre_shifted, &basis),
            &basis,
            Some(1.0),
            3,
            7,
        );
        let want = neuron_measures::rectified_cosine_share(rate);
        assert_eq!(shares.len(), 3);
        for s in &shares {
            assert!(
                (s - want).abs() < 0.01,
                "k {k}, rate {rate}: {s} vs analytic {want}"
            );
        }
        for t in [0.8, 0.85, 0.9] {
            let pass = shares.iter().filter(|&&s| s >= t).count() as f64 / shares.len() as f64;
            let analytic = if want >= t { 1.0 } else { 0.0 };
            if (want - t).abs() > 0.01 {
                assert_eq!(pass, analytic, "k {k}, rate {rate}, threshold {t}");
            }
        }
    }
}

#[test]
fn the_null_matches_purity_and_is_seeded() {
    // With its own purity, a neuron that is 70% one frequency gives synthetic neurons whose
    // pre-ReLU purity is 70% too (checked through a firing rate of 1, where ReLU changes nothing).
    let p = 23;
    let basis = analysis::basis(p);
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let normal = Normal::new(0.0, 1.0).unwrap();
    let noise: Vec<f64> = (0..p * p).map(|_| normal.sample(&mut rng)).collect();
    let base = neuron(p, |a, b| angle(5, a, p).cos() + angle(5, b, p).sin() + 50.0);
    let noisy = DMatrix::from_fn(p * p, 1, |i, _| base[(i, 0)] + 0.6 * noise[i]);
    let q = profile(&noisy, p).max_share;
    let shares =
        rectification_null::null_max_shares(&noisy, &profiles(&noisy, &basis), &basis, None, 4, 1);
    for s in &shares {
        assert!(
            (s - q).abs() < 1e-9,
            "synthetic purity {s} vs the neuron's {q}"
        );
    }
    assert_eq!(
        shares,
        rectification_null::null_max_shares(&noisy, &profiles(&noisy, &basis), &basis, None, 4, 1)
    );
    assert_ne!(
        shares,
        rectification_null::null_max_shares(&noisy, &profiles(&noisy, &basis), &basis, None, 4, 2)
    );
}

/// `p² x p` logits `Σ α_k cos(w_k (a + b − c))` plus a per-pair shift.
fn clock_logits(p: usize, terms: &[(usize, f64)]) -> DMatrix<f64> {
    DMatrix::from_fn(p * p, p, |i, c| {
        let s = i / p + i % p;
        let shift = (i % 7) as f64;
        shift
            + terms
                .iter()
                .map(|&(k, alpha)| alpha * angle(k, s + p - c, p).cos())
                .sum::<f64>()
    })
}

#[test]
fn clock_form_explains_clock_logits_fully() {
    for p in [13, 24] {
        let logits = clock_logits(p, &[(2, 3.0), (5, 1.5), (p / 2, 0.7)]);
        let all = logit_algorithm::clock_form_fraction(&logits, p, &[2, 5, p / 2]);
        assert!((all - 1.0).abs() < 1e-12, "p {p}: {all}");
        let part = logit_algorithm::clock_form_fraction(&logits, p, &[2]);
        assert!(part > 0.5 && part < 1.0, "p {p}: {part}");
        assert!(logit_algorithm::clock_form_fraction(&logits, p, &[3]) < 1e-12);
        assert_eq!(logit_algorithm::clock_form_fraction(&logits, p, &[]), 0.0);
    }
    // Noise is (almost) not of the form.
    let p = 17;
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    let normal = Normal::new(0.0, 1.0).unwrap();
    let noise = DMatrix::from_fn(p * p, p, |_, _| normal.sample(&mut rng));
    assert!(logit_algorithm::clock_form_fraction(&noise, p, &[1, 2, 3]) < 0.05);
}

#[test]
fn ablating_a_frequency_removes_it_and_nothing_else() {
    let p = 15;
    let basis = analysis::basis(p);
    // A function of one input with frequencies 2 and 5, and a constant.
    let x = DMatrix::from_fn(p, 2, |t, j| {
        1.0 + angle(2, t, p).cos() * (j + 1) as f64 + angle(5, t, p).sin()
    });
    let without_3 = logit_algorithm::remove_frequency(&x, &basis, 3);
    assert!(
        (&without_3 - &x).abs().max() < 1e-12,
        "frequency 3 is absent"
    );
    let without_2 = logit_algorithm::remove_frequency(&x, &basis, 2);
    let want = DMatrix::from_fn(p, 2, |t, _| 1.0 + angle(5, t, p).sin());
    assert!((without_2 - want).abs().max() < 1e-12);

    // A function of the pair with frequency 4 terms (and a cross term between 1 and 6, which
    // belongs to neither).
    let f = |with_4: bool| {
        DMatrix::from_fn(p * p, 1, |i, _| {
            let (a, b) = (i / p, i % p);
            2.0 + angle(1, a, p).cos() * angle(6, b, p).sin()
                + if with_4 {
                    angle(4, a + b, p).cos() + angle(4, a, p).sin()
                } else {
                    0.0
                }
        })
    };
    let v = f(true);
    for k in [1, 3, 6, 7] {
        let same = logit_algorithm::remove_frequency_2d(&v, &basis, k);
        assert!(
            (&same - &v).abs().max() < 1e-12,
            "frequency {k} has no terms of its own"
        );
    }
    let removed = logit_algorithm::remove_frequency_2d(&v, &basis, 4);
    assert!((removed - f(false)).abs().max() < 1e-12);
}

/// The algorithm level of a model that quantises everything (`--quantize all`): its MLP-output
/// ablations unembed with the quantised W_U, so that nothing ablated gives the model's own loss,
/// and its embedding ablations edit the quantised embedding the model reads, which keeps none of
/// the removed frequency.
#[test]
fn ablations_of_a_fully_quantised_model_edit_what_it_reads() {
    let mut config = common::tiny_fully_quantised(true);
    config.biases = true;
    let (p, d) = (config.p, config.d_model);
    let params = Params::init(&config, 11).with_random_biases(11);
    let tokens: Vec<[usize; 3]> = (0..p * p).map(|i| [i / p, i % p, p]).collect();
    let labels = analysis::measures::pair_labels(p);
    let loss_of = |params: &Params| {
        let fwd = bitgrok::reference::forward(params, &tokens);
        let logits = DMatrix::from_row_slice(p * p, config.d_vocab_out(), &fwd.logits);
        analysis::measures::cross_entropy(&logits, &labels)
    };
    let fwd = bitgrok::reference::forward(&params, &tokens);
    let logits = DMatrix::from_row_slice(p * p, config.d_vocab_out(), &fwd.logits);
    let mid = DMatrix::from_row_slice(p * p, d, &fwd.resid_mid);
    let last = DMatrix::from_row_slice(p * p, d, &fwd.resid_final);
    let basis = analysis::basis(p);
    let mut ablated_models = Vec::new();
    let level = levels::algorithm_level(
        &params,
        &basis,
        &[1],
        &levels::Residuals {
            logits: &logits,
            mid: &mid,
            last: &last,
        },
        &mut |ablated| {
            ablated_models.push(ablated.clone());
            Ok(loss_of(ablated))
        },
    )
    .unwrap();
    // Every frequency's embedding ablation, the key ones' among them.
    assert_eq!(level.embedding_losses.len(), basis.num_frequencies());
    assert_eq!(level.ablations[0].embedding_loss, level.embedding_losses[0]);
    assert!(
        (level.mlp_baseline_loss - level.loss).abs() < 1e-9,
        "{} against {}",
        level.mlp_baseline_loss,
        level.loss
    );
    // The first ablation removes frequency 1 from the embedding: the one the model reads, as it
    // reads it (the quantiser off for it), keeps none of it and the rest unchanged.
    let ablated = &ablated_models[0];
    assert!(!ablated
        .config
        .quantises_group(bitgrok::model::QuantGroup::Embed));
    let read = |params: &Params| {
        let effective = bitgrok::reference::quant::effective_params(params);
        basis.transform(&analysis::number_embeddings(&effective))
    };
    let (before, after) = (read(&params), read(ablated));
    let removed = basis.rows_of(1);
    for r in 0..p {
        let expected = if removed.contains(&r) { 0.0 } else { 1.0 };
        for j in 0..d {
            assert!(
                (after[(r, j)] - expected * before[(r, j)]).abs() < 1e-12,
                "basis row {r}, column {j}: {} from {}",
                after[(r, j)],
                before[(r, j)]
            );
        }
    }
}

#[test]
fn needed_frequencies_are_those_whose_ablation_costs_a_tenth_of_chance() {
    // ln p = 3: a frequency is needed when removing it raises the loss by 0.3 or more.
    let a = levels::AlgorithmLevel {
        chance_loss: 3.0,
        loss: 0.1,
        embedding_losses: vec![0.1, 0.5, 0.39, 2.0, 0.4],
        ..Default::default()
    };
    assert_eq!(levels::needed(&a), vec![2, 4, 5]);
}

#[test]
fn clock_and_pizza_need_both_metrics() {
    assert_eq!(levels::classify(0.95, 0.2), "clock");
    assert_eq!(levels::classify(0.1, 0.97), "pizza");
    // One number says clock, the other pizza: not decided.
    assert_eq!(levels::classify(0.86, 0.95), "mixed");
    assert_eq!(levels::classify(0.5, 0.5), "mixed");
}

fn row(epoch: usize, train_acc: f32, test_acc: f32, unseen: f32) -> EpochMetrics {
    EpochMetrics {
        epoch,
        train_loss: 1.0,
        test_loss: 1.0,
        train_acc,
        test_acc,
        test_acc_transpose_seen: 1.0,
        test_acc_transpose_unseen: unseen,
        params_finite: true,
    }
}

#[test]
fn phases_are_sustained_and_relapses_counted() {
    // Train accuracy touches 1 at 100 and falls back, stays from 300; test accuracy reaches
    // 99.9% at 1,000, relapses to 0.9 at 1,200, comes back at 1,500 and stays.
    let rows: Vec<EpochMetrics> = (0..=40)
        .map(|i| {
            let e = i * 100;
            let train = if e == 100 || e >= 300 { 1.0 } else { 0.9 };
            let test = match e {
                1000 | 1100 => 0.9995,
                1200..=1400 => 0.9,
                e if e >= 1500 => 1.0,
                _ => 0.2,
            };
            let unseen = if e >= 600 { 0.5 } else { 0.01 };
            row(e, train, test, unseen)
        })
        .collect();
    // 10,000 test pairs: generalised at 99.9%, relapsed below 99%.
    let rule = Generalisation::new(10_000);
    let ph = Phases::find(&rows, rule, 0.1);
    assert_eq!(ph.memorised, Some(300));
    assert_eq!(ph.first_reached, Some(1000));
    assert_eq!(ph.grokked, Some(1500));
    assert_eq!(ph.relapses, 1);
    assert_eq!(ph.lowest_after_first, Some(0.9));
    assert_eq!(ph.cleanup_start, Some(600));
    // A crossing in the last epochs counts: it holds to the end of the run.
    let short: Vec<EpochMetrics> = rows.iter().take(12).cloned().collect();
    assert_eq!(Phases::find(&short, rule, 0.1).grokked, Some(1000));

    // The analysed checkpoint: the best test accuracy from grokking on, the latest on a tie.
    let checkpoints: Vec<usize> = (0..=40).map(|i| i * 100).collect();
    let (e, why) = analysed_checkpoint(&rows, &ph, &checkpoints).unwrap();
    assert_eq!(e, 4000, "{why}");
    let never = Phases::find(&rows[..10], rule, 0.1);
    let (e, why) = analysed_checkpoint(&rows[..10], &never, &checkpoints[..10]).unwrap();
    assert_eq!(e, 900);
    assert!(why.contains("never generalised"), "{why}");
    // Reached 99.9% but relapsed to the end: the best checkpoint from the first crossing on.
    let relapsing = &rows[..14];
    let unstable = Phases::find(relapsing, rule, 0.1);
    assert_eq!(
        (unstable.grokked, unstable.first_reached),
        (None, Some(1000))
    );
    let (e, why) = analysed_checkpoint(relapsing, &unstable, &checkpoints[..14]).unwrap();
    assert_eq!(e, 1100, "{why}");
    assert!(why.contains("without holding it"), "{why}");
}

#[test]
fn generalisation_counts_wrong_pairs() {
    let accuracy = |n: usize, wrong: usize| (n - wrong) as f32 / n as f32;
    // From 1,000 test pairs on, the rule is 99.9% and the relapse below 99%, as accuracies.
    for n in [1000, 1500, 8940, 12769] {
        let rule = Generalisation::new(n);
        for wrong in 0..=n / 50 {
            let acc = accuracy(n, wrong);
            assert_eq!(
                rule.reached(acc),
                wrong as f64 <= 0.001 * n as f64,
                "{n} pairs, {wrong} wrong"
            );
            assert_eq!(
                rule.relapsed(acc),
                wrong as f64 > 0.01 * n as f64,
                "{n} pairs, {wrong} wrong"
            );
        }
    }
    // Fewer: one wrong pair is allowed (p = 23 with 80% trained has 106 test pairs), and a relapse
    // is one more, or 1% when that is more.
    let small = Generalisation::new(106);
    assert_eq!(small.allowed_errors(), 1);
    assert!(small.reached(accuracy(106, 1)) && !small.reached(accuracy(106, 2)));
    assert!(!small.relapsed(accuracy(106, 1)) && small.relapsed(accuracy(106, 2)));
    let tiny = Generalisation::new(50);
    assert!(tiny.reached(accuracy(50, 1)) && !tiny.relapsed(accuracy(50, 1)));
    assert!(tiny.relapsed(accuracy(50, 2)));
    // No accuracy, or no test pairs, never generalises.
    assert!(!small.reached(f32::NAN) && !small.relapsed(f32::NAN));
    assert!(!Generalisation::new(0).reached(1.0));
}

#[test]
fn the_cleanup_cut_stands_clear_of_chance() {
    // Many unseen pairs: 10%; few at a small p: chance plus four standard errors.
    assert!((metrics::cleanup_accuracy(113, 6000) - 0.1).abs() < 1e-7);
    let small = metrics::cleanup_accuracy(23, 53) as f64;
    let chance: f64 = 1.0 / 23.0;
    let se = (chance * (1.0 - chance) / 53.0).sqrt();
    assert!(
        (small - (chance + 4.0 * se)).abs() < 1e-6 && small > 0.15,
        "{small}"
    );
}

/// The offline definition the streaming rule must match: the first recorded epoch e such that
/// every recorded epoch in [e, e + SUSTAIN] holds.
fn sustained_by_definition(rows: &[(usize, bool)]) -> Option<usize> {
    (0..rows.len())
        .find(|&i| {
            rows[i..]
                .iter()
                .take_while(|r| r.0 <= rows[i].0 + metrics::SUSTAIN)
                .all(|r| r.1)
        })
        .map(|i| rows[i].0)
}

#[test]
fn the_streaming_sustained_rule_matches_its_definition() {
    use bitgrok::metrics::Sustained;
    use rand::Rng;
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    for case in 0..2000 {
        // Sparse or dense epochs, long or short stretches.
        let n = rng.random_range(1..60);
        let mut epoch = 0;
        let p_hold = [0.5, 0.9, 0.98][case % 3];
        let rows: Vec<(usize, bool)> = (0..n)
            .map(|_| {
                epoch += rng.random_range(1..[3, 60, 400][case % 3]);
                (epoch, rng.random_bool(p_hold))
            })
            .collect();
        let mut streamed = Sustained::default();
        for &(e, holds) in &rows {
            streamed.observe(e, holds);
            if let Some(c) = streamed.confirmed() {
                // Confirmed only once the definition can no longer change its mind.
                assert!(e >= c + metrics::SUSTAIN, "{rows:?}");
                assert_eq!(Some(c), sustained_by_definition(&rows), "{rows:?}");
            }
        }
        assert_eq!(
            streamed.finish(),
            sustained_by_definition(&rows),
            "{rows:?}"
        );
    }
    // Sparse evaluations: a failure past the window does not undo a stretch.
    let mut s = Sustained::default();
    s.observe(0, true);
    s.observe(550, false);
    assert_eq!(s.finish(), Some(0));
}
