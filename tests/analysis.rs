//! Tests of the analysis mathematics (`bitgrok::analysis`) on synthetic inputs whose answers are
//! known, and of the reference's input gradients against finite differences.

mod common;

use std::f64::consts::PI;

use nalgebra::DMatrix;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal};

use bitgrok::analysis::{self, clock_pizza, fourier, key_frequencies, measures, neurons, svd};
use bitgrok::model::config::N_CTX;
use bitgrok::model::{ActQuant, LinearNorm, ModelConfig, ParamId, Params, Weights};
use bitgrok::reference;
use bitgrok::task::Examples;

fn angle(k: usize, x: usize, p: usize) -> f64 {
    2.0 * PI * ((k * x) % p) as f64 / p as f64
}

fn noise(rng: &mut ChaCha8Rng, std: f64) -> f64 {
    Normal::new(0.0, std).unwrap().sample(rng)
}

// ---------------------------------------------------------------------------------------------
// Fourier basis
// ---------------------------------------------------------------------------------------------

#[test]
fn basis_is_orthonormal_for_odd_and_even_p() {
    for p in [2, 3, 4, 7, 10, 31, 113] {
        let b = analysis::basis(p);
        let gram = &b.matrix * b.matrix.transpose();
        let err = (gram - DMatrix::<f64>::identity(p, p)).abs().max();
        assert!(err < 1e-12, "p = {p}: |B B^T - I| = {err:e}");
        assert_eq!(b.labels.len(), p);
        assert_eq!(b.num_frequencies(), p / 2);
    }
}

#[test]
fn basis_rows_and_labels_are_in_order() {
    let p = 7;
    let b = analysis::basis(p);
    let want = [
        "const", "cos 1", "sin 1", "cos 2", "sin 2", "cos 3", "sin 3",
    ];
    assert_eq!(b.labels, want);
    for x in 0..p {
        let s = (2.0 / p as f64).sqrt();
        assert!((b.matrix[(0, x)] - 1.0 / (p as f64).sqrt()).abs() < 1e-15);
        assert!((b.matrix[(3, x)] - s * angle(2, x, p).cos()).abs() < 1e-15);
        assert!((b.matrix[(6, x)] - s * angle(3, x, p).sin()).abs() < 1e-15);
    }
    // Even p: the Nyquist frequency has its cosine only, the alternating vector.
    let b = analysis::basis(6);
    assert_eq!(
        b.labels,
        ["const", "cos 1", "sin 1", "cos 2", "sin 2", "cos 3"]
    );
    assert_eq!(b.rows_of(3), [5]);
    assert_eq!(b.rows_of(2), [3, 4]);
    for x in 0..6 {
        let alt = if x % 2 == 0 { 1.0 } else { -1.0 } / 6f64.sqrt();
        assert!((b.matrix[(5, x)] - alt).abs() < 1e-15);
    }
}

#[test]
fn frequency_norms_find_a_pure_frequency() {
    let p = 31;
    let b = analysis::basis(p);
    // Two columns at frequency 4 with different phases: all the norm at index 3.
    let x = DMatrix::from_fn(p, 2, |i, j| 3.0 * (angle(4, i, p) + j as f64).cos());
    let norms = analysis::frequency_norms(&b.transform(&x));
    assert_eq!(norms.len(), 15);
    for (i, n) in norms.iter().enumerate() {
        if i == 3 {
            // |3 cos| over p points is 3 sqrt(p / 2) per column.
            let want = (2.0 * 9.0 * p as f64 / 2.0).sqrt();
            assert!((n - want).abs() < 1e-9, "{n} != {want}");
        } else {
            assert!(n.abs() < 1e-9, "frequency {} has norm {n}", i + 1);
        }
    }
}

#[test]
fn fourier_2d_puts_a_along_rows_and_b_along_columns() {
    let p = 11;
    let b = analysis::basis(p);
    // A function of a alone, cos(2 pi 3 a / p): only (cos 3, const).
    let values: Vec<f64> = (0..p * p).map(|i| angle(3, i / p, p).cos()).collect();
    let c = analysis::fourier_2d(&values, &b);
    let row = b.labels.iter().position(|l| l == "cos 3").unwrap();
    for i in 0..p {
        for j in 0..p {
            let want = if (i, j) == (row, 0) {
                (p as f64 / 2.0).sqrt() * (p as f64).sqrt()
            } else {
                0.0
            };
            assert!(
                (c[(i, j)] - want).abs() < 1e-9,
                "C[{i}, {j}] = {}",
                c[(i, j)]
            );
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Key frequencies
// ---------------------------------------------------------------------------------------------

/// `p x d` embedding: for each column and chosen frequency a cosine of random phase (amplitudes
/// as given), plus N(0, noise^2) entries.
fn synthetic_embedding(
    p: usize,
    d: usize,
    freqs: &[(usize, f64)],
    noise_std: f64,
    seed: u64,
) -> DMatrix<f64> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut m = DMatrix::zeros(p, d);
    for j in 0..d {
        for &(k, amp) in freqs {
            let phase = rng.random_range(0.0..2.0 * PI);
            for x in 0..p {
                m[(x, j)] += amp * (angle(k, x, p) + phase).cos();
            }
        }
    }
    m.apply(|x| *x += noise(&mut rng, noise_std));
    m
}

fn energy(m: &DMatrix<f64>, b: &fourier::FourierBasis) -> Vec<f64> {
    analysis::frequency_norms(&b.transform(m))
        .iter()
        .map(|n| n * n)
        .collect()
}

#[test]
fn key_frequencies_of_a_sparse_embedding_are_exactly_its_frequencies() {
    let p = 31;
    let b = analysis::basis(p);
    for seed in 0..20 {
        for amps in [[1.0, 1.0, 1.0], [1.0, 0.6, 0.3]] {
            let chosen = [(3, amps[0]), (7, amps[1]), (11, amps[2])];
            let w_e = synthetic_embedding(p, 32, &chosen, 0.1, seed);
            let key = analysis::key_frequencies(&energy(&w_e, &b));
            assert_eq!(
                key.freqs,
                [3, 7, 11],
                "seed {seed}, amplitudes {amps:?}: {}",
                key.rule
            );
            assert_eq!(key.evidence.len(), 15);
            assert!((key.evidence.iter().sum::<f64>() - 1.0).abs() < 1e-12);
            assert!(key.rule.contains("largest ratio"), "{}", key.rule);
        }
    }
}

#[test]
fn key_frequencies_of_white_noise_are_empty() {
    let p = 31;
    let b = analysis::basis(p);
    for d in [8, 32, 128] {
        for seed in 0..20 {
            let w_e = synthetic_embedding(p, d, &[], 1.0, 1000 + seed);
            let key = analysis::key_frequencies(&energy(&w_e, &b));
            assert!(
                key.freqs.is_empty(),
                "d {d}, seed {seed}: {:?}, {}",
                key.freqs,
                key.rule
            );
        }
    }
    let key = analysis::key_frequencies(&[0.0; 5]);
    assert!(key.freqs.is_empty());
    assert_eq!(key.evidence, [0.0; 5]);
}

#[test]
fn an_untrained_model_has_no_key_frequencies() {
    use bitgrok::model::Preset;
    for preset in [Preset::Nanda, Preset::SeedBitnet] {
        let config = ModelConfig::preset(preset, 113);
        let params = Params::init(&config, 0);
        let b = analysis::basis(113);
        let w_e = analysis::number_embeddings(&params);
        assert_eq!(w_e.shape(), (113, config.d_model));
        let e = analysis::embedding_energy(&params, &b);
        assert_eq!(e, energy(&w_e, &b));
        let key = analysis::key_frequencies(&e);
        assert!(key.freqs.is_empty(), "{preset:?}: {}", key.rule);
        let w_l = analysis::neuron_logit_map(&params);
        let e_l: Vec<f64> = analysis::logit_map_frequency_norms(&w_l, &b)
            .iter()
            .map(|n| n * n)
            .collect();
        assert!(analysis::key_frequencies_combined(&[&e, &e_l])
            .freqs
            .is_empty());
    }
}

#[test]
fn key_frequency_rule_edge_cases() {
    // A single frequency is key when it has energy.
    assert_eq!(analysis::key_frequencies(&[2.0]).freqs, [1]);
    // The cut is at the largest ratio among the top half: 10/1 after two, not 10/9 after one.
    let key = analysis::key_frequencies(&[1.0, 10.0, 9.0, 1.0, 1.0, 0.9]);
    assert_eq!(key.freqs, [2, 3]);
    // A big gap whose kept set holds too little of the energy is rejected.
    let mut e = vec![1.0; 20];
    e[4] = 5.0;
    assert!(analysis::key_frequencies(&e).freqs.is_empty());
    // Exact zeros outside the key set.
    assert_eq!(analysis::key_frequencies(&[0.0, 3.0, 0.0, 0.0]).freqs, [2]);
    // A custom rule: demanding a gap of 20 rejects a gap of 10.
    let strict = key_frequencies::KeyFrequencyRule {
        min_gap: 20.0,
        ..Default::default()
    };
    let e = [10.0, 1.0, 1.0, 1.0];
    assert_eq!(analysis::key_frequencies(&e).freqs, [1]);
    assert!(key_frequencies::key_frequencies_with(&e, &strict)
        .freqs
        .is_empty());
}

#[test]
fn combined_key_frequencies_average_the_shares() {
    let p = 31;
    let b = analysis::basis(p);
    let w_e = synthetic_embedding(p, 32, &[(3, 1.0), (7, 1.0), (11, 1.0)], 0.1, 7);
    // A W_L-like map with the same frequencies but 100 times the scale: the scale must not matter.
    let w_l = synthetic_embedding(p, 64, &[(3, 100.0), (7, 80.0), (11, 50.0)], 10.0, 8);
    let (e1, e2) = (energy(&w_e, &b), energy(&w_l, &b));
    let key = analysis::key_frequencies_combined(&[&e1, &e2]);
    assert_eq!(key.freqs, [3, 7, 11], "{}", key.rule);
    let s1 = analysis::key_frequencies(&e1).evidence;
    let s2 = analysis::key_frequencies(&e2).evidence;
    for k in 0..15 {
        assert!((key.evidence[k] - (s1[k] + s2[k]) / 2.0).abs() < 1e-15);
    }
    // Agreement matters: a noise map dilutes but does not move the choice.
    let noise_map = synthetic_embedding(p, 64, &[], 1.0, 9);
    let e3 = energy(&noise_map, &b);
    assert_eq!(
        analysis::key_frequencies_combined(&[&e1, &e3]).freqs,
        [3, 7, 11]
    );
}

// ---------------------------------------------------------------------------------------------
// Neurons
// ---------------------------------------------------------------------------------------------

#[test]
fn neuron_frequency_fractions_and_clusters() {
    let p = 31;
    let b = analysis::basis(p);
    let (w, v) = (5, 9);
    let cols: Vec<Box<dyn Fn(usize, usize) -> f64>> = vec![
        // 0: a pure product at w.
        Box::new(move |a, bb| (angle(w, a, p)).cos() * (angle(w, bb, p)).cos()),
        // 1: w in a alone plus w in b alone, with an offset: still all w.
        Box::new(move |a, bb| 2.0 + angle(w, a, p).cos() - 0.5 * angle(w, bb, p).sin()),
        // 2: half w, half v.
        Box::new(move |a, bb| {
            angle(w, a, p).cos() * angle(w, bb, p).cos()
                + angle(v, a, p).sin() * angle(v, bb, p).cos()
        }),
        // 3: a cross-frequency product belongs to no frequency.
        Box::new(move |a, bb| angle(w, a, p).cos() * angle(v, bb, p).cos()),
        // 4: constant (a dead neuron).
        Box::new(|_, _| 0.7),
        // 5: mostly v (90%), some w.
        Box::new(move |a, bb| {
            3.0 * angle(v, a + bb, p).cos() + angle(w, a, p).cos() * angle(w, bb, p).sin()
        }),
    ];
    let acts = DMatrix::from_fn(p * p, cols.len(), |i, m| cols[m](i / p, i % p));
    let f = analysis::frequency_fractions(&acts, &b);
    assert_eq!(f.shape(), (cols.len(), 15));
    let at = |m: usize, k: usize| f[(m, k - 1)];
    assert!((at(0, w) - 1.0).abs() < 1e-9, "{}", at(0, w));
    assert!((at(1, w) - 1.0).abs() < 1e-9, "{}", at(1, w));
    assert!((at(2, w) - 0.5).abs() < 1e-9 && (at(2, v) - 0.5).abs() < 1e-9);
    assert!(f.row(3).iter().all(|x| x.abs() < 1e-9));
    assert!(f.row(4).iter().all(|&x| x == 0.0));
    // In units of (p/2)^2: 3 cos(v (a + b)) = 3 (cos cos - sin sin) has 9 + 9, and
    // cos(w a) sin(w b) has 1, so v explains 18 / 19.
    assert!((at(5, v) - 18.0 / 19.0).abs() < 1e-9, "{}", at(5, v));
    for m in 0..cols.len() {
        assert!(f.row(m).sum() <= 1.0 + 1e-12);
    }

    let clusters = analysis::clusters(&f, 0.85);
    assert_eq!(clusters, [Some(w), Some(w), None, None, None, Some(v)]);
    let sizes = analysis::cluster_sizes(&clusters, 15);
    assert_eq!(sizes.iter().sum::<usize>(), 3);
    assert_eq!((sizes[w - 1], sizes[v - 1]), (2, 1));
    assert_eq!(neurons::unclustered(&clusters), 3);
    // At a threshold of 0.5 the half-and-half neuron joins the lower frequency.
    assert_eq!(analysis::clusters(&f, 0.5)[2], Some(w));
}

// ---------------------------------------------------------------------------------------------
// Progress measures
// ---------------------------------------------------------------------------------------------

/// `p^2 x p` logits `sum_k amp_k cos(w_k (a + b - c))` plus a per-class offset.
fn frequency_logits(p: usize, freqs: &[(usize, f64)]) -> DMatrix<f64> {
    DMatrix::from_fn(p * p, p, |i, c| {
        let s = (i / p + i % p + p - c) % p;
        0.1 * c as f64
            + freqs
                .iter()
                .map(|&(k, amp)| amp * angle(k, s, p).cos())
                .sum::<f64>()
    })
}

#[test]
fn restricted_loss_of_key_frequency_logits_is_the_full_loss() {
    for (p, key) in [(31, vec![3, 7, 11]), (10, vec![2, 5])] {
        let amps: Vec<(usize, f64)> = key.iter().map(|&k| (k, 2.0 + k as f64 / 5.0)).collect();
        let logits = frequency_logits(p, &amps);
        let labels = measures::pair_labels(p);
        let full = analysis::cross_entropy(&logits, &labels);
        let restricted = analysis::restricted_logits(&logits, p, &key);
        assert!((&restricted - &logits).abs().max() < 1e-9, "p {p}");
        let restricted_loss = analysis::cross_entropy(&restricted, &labels);
        assert!(
            (restricted_loss - full).abs() < 1e-12,
            "{restricted_loss} != {full}"
        );

        // Excluded logits are constant over (a, b) for every class: the per-class offset.
        let excluded = analysis::excluded_logits(&logits, p, &key);
        for c in 0..p {
            let col = excluded.column(c);
            assert!((col.max() - col.min()) < 1e-9, "p {p}, class {c}");
            assert!((col[0] - 0.1 * c as f64).abs() < 1e-9);
        }
        // Without the key frequencies the loss is ln p (constant in (a, b), the offsets aside).
        let excluded_loss = analysis::cross_entropy(&excluded, &labels);
        assert!(excluded_loss > full + 1.0, "{excluded_loss} vs {full}");
    }
}

#[test]
fn restricted_logits_drop_other_frequencies_and_non_sum_terms() {
    let p = 23;
    let key = [4, 9];
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let logits = DMatrix::from_fn(p * p, p, |_, _| noise(&mut rng, 1.0));
    let restricted = analysis::restricted_logits(&logits, p, &key);
    let excluded = analysis::excluded_logits(&logits, p, &key);
    // restricted + excluded = logits + the per-class mean.
    for c in 0..p {
        let mean = logits.column(c).mean();
        for i in 0..p * p {
            let err = restricted[(i, c)] + excluded[(i, c)] - logits[(i, c)] - mean;
            assert!(err.abs() < 1e-12);
        }
    }
    // Projection: idempotent, and orthogonal to the rest.
    let twice = analysis::restricted_logits(&restricted, p, &key);
    assert!((&twice - &restricted).abs().max() < 1e-12);
    let residual = &logits - &restricted;
    for c in 0..p {
        assert!(residual.column(c).dot(&restricted.column(c)).abs() < 1e-9);
    }
    // Repeating a key frequency changes nothing.
    let repeated = analysis::restricted_logits(&logits, p, &[9, 4, 9]);
    assert!((&repeated - &restricted).abs().max() < 1e-15);
    // A function of a alone (or a - b) is outside the span apart from its mean.
    let of_a = DMatrix::from_fn(p * p, p, |i, _| angle(4, i / p, p).cos() + 1.0);
    let r = analysis::restricted_logits(&of_a, p, &key);
    assert!(r.iter().all(|x| (x - 1.0).abs() < 1e-12));
}

#[test]
fn cross_entropy_matches_the_reference() {
    let p = 7;
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    let logits = DMatrix::from_fn(20, p, |_, _| noise(&mut rng, 3.0));
    let labels: Vec<usize> = (0..20).map(|i| (i * 3) % p).collect();
    let row_major: Vec<f64> = logits.transpose().iter().copied().collect();
    let want = reference::cross_entropy(&row_major, &labels, p);
    assert!((analysis::cross_entropy(&logits, &labels) - want).abs() < 1e-12);
    let uniform = DMatrix::from_element(4, p, 2.5);
    assert!((analysis::cross_entropy(&uniform, &[0, 1, 2, 3]) - (p as f64).ln()).abs() < 1e-12);
}

#[test]
fn gini_of_known_vectors() {
    for n in [1, 2, 5, 64] {
        let mut one_hot = vec![0.0; n];
        one_hot[n / 2] = 3.0;
        let g = analysis::gini(&one_hot);
        assert!((g - (n - 1) as f64 / n as f64).abs() < 1e-12, "n {n}: {g}");
        assert!(analysis::gini(&vec![0.4; n]).abs() < 1e-12);
    }
    // sum |x_i - x_j| = 20 over ordered pairs, / (2 * 4 * 10).
    assert!((analysis::gini(&[3.0, 1.0, 4.0, 2.0]) - 0.25).abs() < 1e-12);
    assert_eq!(analysis::gini(&[]), 0.0);
    assert_eq!(analysis::gini(&[0.0, 0.0]), 0.0);
}

#[test]
fn sum_squares_adds_every_parameter() {
    let config = tiny_config(LinearNorm::None, false, true);
    let mut params = Params::zeros(&config);
    params.get_mut(ParamId::WE)[3] = 2.0;
    params.get_mut(ParamId::WU)[0] = -1.0;
    // The final-norm gain, zero here, counts too.
    params.get_mut(ParamId::LnFinal)[1] = 0.5;
    assert!((analysis::sum_squares(&params) - 5.25).abs() < 1e-15);
}

// ---------------------------------------------------------------------------------------------
// Neuron-logit map and SVD
// ---------------------------------------------------------------------------------------------

#[test]
fn neuron_logit_map_is_w_out_times_w_u() {
    let config = tiny_config(LinearNorm::None, false, false);
    let params = Params::init(&config, 1);
    let w_l = analysis::neuron_logit_map(&params);
    let (m, d, p) = (config.d_mlp, config.d_model, config.p);
    assert_eq!(w_l.shape(), (m, p));
    let (w_out, w_u) = (params.get(ParamId::WOut), params.get(ParamId::WU));
    for i in 0..m {
        for c in 0..p {
            let want: f64 = (0..d).map(|j| w_out[i * d + j] * w_u[j * p + c]).sum();
            assert!((w_l[(i, c)] - want).abs() < 1e-12);
        }
    }
    // With a final norm the gain sits between them.
    let config = tiny_config(LinearNorm::None, false, true);
    let mut params = Params::init(&config, 1);
    params.get_mut(ParamId::LnFinal).fill(2.0);
    let scaled = analysis::neuron_logit_map(&params);
    let mut plain = params.clone();
    plain.get_mut(ParamId::LnFinal).fill(1.0);
    let plain = analysis::neuron_logit_map(&plain);
    assert!((scaled - plain * 2.0).abs().max() < 1e-12);
}

#[test]
fn neuron_logit_map_norms_are_along_the_output_axis() {
    let p = 13;
    let b = analysis::basis(p);
    // Every neuron writes cos(2 pi 4 c / p + phase) over the classes c.
    let w_l = DMatrix::from_fn(6, p, |i, c| (angle(4, c, p) + i as f64).cos());
    let norms = analysis::logit_map_frequency_norms(&w_l, &b);
    assert_eq!(norms.len(), 6);
    assert!(norms[3] > 1.0);
    assert!(norms
        .iter()
        .enumerate()
        .all(|(i, n)| i == 3 || n.abs() < 1e-9));
}

#[test]
fn singular_values_and_principal_components() {
    let m = DMatrix::from_row_slice(3, 3, &[0.0, 0.0, 1.0, 3.0, 0.0, 0.0, 0.0, -2.0, 0.0]);
    let s = analysis::singular_values(&m);
    assert_eq!(s.len(), 3);
    for (got, want) in s.iter().zip([3.0, 2.0, 1.0]) {
        assert!((got - want).abs() < 1e-12);
    }

    // Points on a line through (1, 1, 1) in direction (-1, 2, 0)/sqrt(5), plus a little noise.
    let mut rng = ChaCha8Rng::seed_from_u64(2);
    let ts: Vec<f64> = (0..50).map(|i| i as f64 / 10.0 - 2.5).collect();
    let dir = [-1.0 / 5f64.sqrt(), 2.0 / 5f64.sqrt(), 0.0];
    let pts = DMatrix::from_fn(50, 3, |i, j| 1.0 + ts[i] * dir[j] + noise(&mut rng, 1e-3));
    let pca = analysis::principal_components(&pts, 2);
    assert_eq!(pca.coords.shape(), (50, 2));
    assert_eq!(pca.components.shape(), (2, 3));
    assert!(pca.explained[0] > 0.9999, "{:?}", pca.explained);
    // The sign convention makes the largest entry (the 2) positive, so coords follow t.
    assert!(pca.components[(0, 1)] > 0.99 * dir[1]);
    let mean_t = ts.iter().sum::<f64>() / 50.0;
    for (i, t) in ts.iter().enumerate() {
        assert!((pca.coords[(i, 0)] - (t - mean_t)).abs() < 1e-2);
    }
    for (mean, dir) in pca.mean.iter().zip(dir) {
        assert!((mean - (1.0 + dir * mean_t)).abs() < 1e-3);
    }
    // k is capped by the shape.
    assert_eq!(analysis::principal_components(&pts, 10).coords.ncols(), 3);
}

#[test]
fn gaussian_control_matches_shape_and_scale_and_is_seeded() {
    let mut rng = ChaCha8Rng::seed_from_u64(4);
    let m = DMatrix::from_fn(100, 60, |_, _| 0.3 * noise(&mut rng, 1.0) + 0.2);
    let a = analysis::gaussian_control(&m, 11);
    assert_eq!(a.shape(), m.shape());
    assert_eq!(a, analysis::gaussian_control(&m, 11));
    assert_ne!(a, analysis::gaussian_control(&m, 12));
    let (got, want) = (svd::rms(&a), svd::rms(&m));
    assert!((got / want - 1.0).abs() < 0.03, "{got} vs {want}");
    // A random matrix's singular values stay below 2 sigma (sqrt rows + sqrt cols)-ish.
    let top = analysis::singular_values(&a)[0];
    assert!(top < 1.1 * want * (10.0 + 60f64.sqrt()), "{top}");
}

// ---------------------------------------------------------------------------------------------
// Clock and pizza
// ---------------------------------------------------------------------------------------------

#[test]
fn distance_irrelevance_of_a_clock_is_one_and_of_a_pizza_zero() {
    let p = 31;
    let mut rng = ChaCha8Rng::seed_from_u64(6);
    // Clock, exactly a function of a + b.
    let clock: Vec<f64> = (0..p * p)
        .map(|i| angle(5, i / p + i % p, p).sin() + 2.0)
        .collect();
    let d = analysis::distance_irrelevance(&clock, p);
    assert!((d - 1.0).abs() < 1e-12, "{d}");
    // Clock, noise only.
    let noisy: Vec<f64> = (0..p * p).map(|_| 3.0 + noise(&mut rng, 0.2)).collect();
    let d = analysis::distance_irrelevance(&noisy, p);
    assert!((d - 1.0).abs() < 0.1, "{d}");
    // A constant: an ideal clock.
    assert_eq!(analysis::distance_irrelevance(&vec![4.0; p * p], p), 1.0);

    // Pizza: the correct logit of |cos(w (a - b) / 2)| cos(w (a + b - c)) at c = a + b.
    let k = 7;
    let logits = DMatrix::from_fn(p * p, p, |i, c| {
        let (a, b) = (i / p, i % p);
        let half_diff = PI * k as f64 * (a as f64 - b as f64) / p as f64;
        half_diff.cos().abs() * angle(k, a + b + p - c, p).cos()
    });
    let q = analysis::correct_logits(&logits, p);
    for (i, &qi) in q.iter().enumerate() {
        let half_diff = PI * k as f64 * ((i / p) as f64 - (i % p) as f64) / p as f64;
        assert!((qi - half_diff.cos().abs()).abs() < 1e-12);
    }
    let d = analysis::distance_irrelevance(&q, p);
    assert!(d.abs() < 1e-12, "{d}");
    let noisy: Vec<f64> = q.iter().map(|x| x + noise(&mut rng, 0.01)).collect();
    let d = analysis::distance_irrelevance(&noisy, p);
    assert!(d < 0.1, "{d}");
}

#[test]
fn gradient_symmetricity_is_the_mean_cosine() {
    let pairs = vec![
        (vec![1.0, 2.0], vec![2.0, 4.0]),   // 1
        (vec![1.0, 0.0], vec![0.0, 3.0]),   // 0
        (vec![1.0, 1.0], vec![-1.0, -1.0]), // -1
        (vec![0.0, 0.0], vec![1.0, 0.0]),   // 0 by convention
    ];
    assert!((analysis::gradient_symmetricity(&pairs[..1]) - 1.0).abs() < 1e-15);
    assert!(analysis::gradient_symmetricity(&pairs).abs() < 1e-15);
    let half = analysis::gradient_symmetricity(&[(vec![1.0, 0.0], vec![1.0, 3f64.sqrt()])]);
    assert!((half - 0.5).abs() < 1e-12);
    assert_eq!(analysis::gradient_symmetricity(&[]), 0.0);
}

// ---------------------------------------------------------------------------------------------
// Input gradients of the correct logit (reference)
// ---------------------------------------------------------------------------------------------

fn tiny_config(linear_norm: LinearNorm, pos_embed: bool, final_norm: bool) -> ModelConfig {
    common::tiny_config(
        Weights::F32,
        ActQuant::None,
        linear_norm,
        pos_embed,
        true,
        final_norm,
    )
}

/// Seeded parameters whose last-position pre-activations keep clear of the ReLU kink.
fn kink_free_params(config: &ModelConfig, tokens: &[[usize; 3]]) -> Params {
    (0..100)
        .map(|seed| Params::init(config, seed))
        .find(|params| {
            let fwd = reference::forward(params, tokens);
            let mut last = fwd
                .mlp_pre
                .chunks(config.d_mlp)
                .skip(N_CTX - 1)
                .step_by(N_CTX);
            last.all(|row| row.iter().all(|x| x.abs() > 1e-4))
        })
        .expect("no seed below 100 keeps the pre-activations off the ReLU kink")
}

fn correct_logit(params: &Params, tokens: [usize; 3]) -> f64 {
    let p = params.config.p;
    reference::forward(params, &[tokens]).logits[(tokens[0] + tokens[1]) % p]
}

#[test]
fn correct_logit_input_gradients_match_finite_differences() {
    let h = 1e-6;
    for linear_norm in [LinearNorm::None, LinearNorm::Rms] {
        for pos_embed in [false, true] {
            for final_norm in [false, true] {
                let config = tiny_config(linear_norm, pos_embed, final_norm);
                let (p, d) = (config.p, config.d_model);
                let tokens = Examples::all(p).tokens(p);
                let params = kink_free_params(&config, &tokens);
                let grads = reference::correct_logit_input_gradients(&params, &tokens);
                assert_eq!(grads.len(), tokens.len());
                // d q / d W_E[tok][i], by central differences.
                let fd = |t: [usize; 3], tok: usize, i: usize| {
                    let shifted = |delta: f64| {
                        let mut params = params.clone();
                        params.get_mut(ParamId::WE)[tok * d + i] += delta;
                        correct_logit(&params, t)
                    };
                    (shifted(h) - shifted(-h)) / (2.0 * h)
                };
                for (t, (g_a, g_b)) in tokens.iter().zip(&grads) {
                    let [a, b, _] = *t;
                    assert_eq!((g_a.len(), g_b.len()), (d, d));
                    for i in 0..d {
                        // a != b: W_E[a] feeds only x_a, W_E[b] only x_b. a == b: both.
                        let checks = if a != b {
                            vec![(fd(*t, a, i), g_a[i]), (fd(*t, b, i), g_b[i])]
                        } else {
                            vec![(fd(*t, a, i), g_a[i] + g_b[i])]
                        };
                        for (want, got) in checks {
                            assert!(
                                (want - got).abs() <= 1e-6 * want.abs() + 1e-8,
                                "{config:?} {t:?} [{i}]: gradient {got:e}, finite differences {want:e}"
                            );
                        }
                    }
                }
                // The positions really differ (the gradients are not merged).
                assert!(grads.iter().any(|(g_a, g_b)| g_a != g_b));
            }
        }
    }
}

#[test]
fn correct_logit_input_gradients_exist_for_quantised_models() {
    // Straight-through: finite; and the symmetricity is a cosine.
    let mut config = tiny_config(LinearNorm::Rms, false, true);
    config.weights = Weights::Ternary;
    config.act_quant = ActQuant::Int8;
    let params = Params::init(&config, 3);
    let tokens = Examples::all(config.p).tokens(config.p);
    let grads = reference::correct_logit_input_gradients(&params, &tokens);
    assert!(grads
        .iter()
        .all(|(a, b)| a.iter().chain(b).all(|x| x.is_finite())));
    let s = clock_pizza::model_gradient_symmetricity(&params, &tokens);
    assert!((-1.0..=1.0).contains(&s), "{s}");
}
