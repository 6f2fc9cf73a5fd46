//! Which few frequencies a model uses ("key frequencies", Nanda et al. 2023), from the energy it
//! puts in each.
//!
//! # The rule
//!
//! Turn the energies `e_1..e_K` (one per frequency, e.g. the squared norms of `W_E`'s Fourier
//! components, [`super::fourier::frequency_norms`] squared) into shares `s_k = e_k / sum e`.
//! Sort the shares in descending order (equal shares: lower frequency first) and, for every cut
//! "keep the n largest" with `1 <= n <= max(1, floor(max_fraction K))` and `n < K`, measure the
//! gap `s_(n) / s_(n+1)` between the last share kept and the first dropped. Cut where that ratio
//! is largest (the smallest such n on a tie). Keep the cut only if
//!
//! * the gap is at least `min_gap` (the kept frequencies stand clearly above the rest), and
//! * the kept frequencies together hold at least `min_share` of the energy (a clear majority);
//!
//! otherwise there are no key frequencies. The defaults are `max_fraction = 0.5`,
//! `min_gap = 2` and `min_share = 0.5`.
//!
//! An embedding built from a few frequencies plus small noise gives exactly those frequencies
//! (the gap after the last one is huge). White noise gives the **empty set**: its shares are
//! nearly equal, so no consecutive ratio reaches 2 (each energy is a sum of `2 d_model` squares,
//! with relative spread `sqrt(1 / d_model)`; for `d_model >= 8` a false key set is rare, and
//! when a lone large ratio does appear its kept set rarely holds half the energy).
//!
//! A known limitation of any largest-gap rule: when one frequency dominates and a second group is
//! clearly above the noise but far below the first, the cut may fall after the first alone.
//!
//! With a single frequency (`K = 1`: p = 2 or 3) there is no gap to measure; it is key whenever
//! its energy is positive. All-zero energies give no key frequencies and zero shares.

/// The key frequencies of a model and why.
#[derive(Clone, Debug, PartialEq)]
pub struct KeyFrequencies {
    /// 1-based, ascending.
    pub freqs: Vec<usize>,
    /// The rule in words, with the numbers of this decision.
    pub rule: String,
    /// Per frequency `1..=K` (index 0 = frequency 1), its share of the total energy.
    pub evidence: Vec<f64>,
}

/// The parameters of the rule (see the module documentation).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct KeyFrequencyRule {
    /// The largest key set considered, as a fraction of the number of frequencies K.
    pub max_fraction: f64,
    /// The least ratio between the smallest kept share and the largest dropped one.
    pub min_gap: f64,
    /// The least share of the energy the kept frequencies must hold together.
    pub min_share: f64,
}

impl Default for KeyFrequencyRule {
    fn default() -> Self {
        KeyFrequencyRule {
            max_fraction: 0.5,
            min_gap: 2.0,
            min_share: 0.5,
        }
    }
}

/// Key frequencies of one energy vector (per frequency `1..=K`) under the default rule.
pub fn key_frequencies(energy: &[f64]) -> KeyFrequencies {
    key_frequencies_with(energy, &KeyFrequencyRule::default())
}

/// Key frequencies from several energy vectors of the same length (e.g. the squared Fourier norms
/// of `W_E` and of the neuron-logit map `W_L`): each is turned into shares, the shares are
/// averaged (so each vector weighs the same, whatever its scale; a vector of zeros counts as
/// zero shares), and the rule runs on the averaged shares, which are the evidence.
pub fn key_frequencies_combined(energies: &[&[f64]]) -> KeyFrequencies {
    key_frequencies_combined_with(energies, &KeyFrequencyRule::default())
}

/// [`key_frequencies_combined`] with a given rule.
pub fn key_frequencies_combined_with(
    energies: &[&[f64]],
    rule: &KeyFrequencyRule,
) -> KeyFrequencies {
    assert!(!energies.is_empty(), "no energy vectors to combine");
    let k = energies[0].len();
    let mut mean = vec![0.0; k];
    for energy in energies {
        assert_eq!(energy.len(), k, "energy vectors of different lengths");
        for (m, s) in mean.iter_mut().zip(shares(energy)) {
            *m += s / energies.len() as f64;
        }
    }
    let mut result = key_frequencies_with(&mean, rule);
    result.rule = format!(
        "the mean of the energy shares of {} vectors; then {}",
        energies.len(),
        result.rule
    );
    result
}

/// Key frequencies of one energy vector under the given rule.
pub fn key_frequencies_with(energy: &[f64], rule: &KeyFrequencyRule) -> KeyFrequencies {
    let evidence = shares(energy);
    let k = evidence.len();
    let statement = format!(
        "sort the frequencies by share of the energy; among the cuts after the n largest, \
         1 <= n <= {n_max} (max(1, floor({frac} K)), K = {k}), take the one with the largest ratio \
         between the last share kept and the next; keep it if that ratio is >= {gap} and the kept \
         frequencies hold >= {share} of the energy, else there are no key frequencies",
        n_max = max_cut(k, rule),
        frac = rule.max_fraction,
        gap = rule.min_gap,
        share = rule.min_share,
    );
    let total: f64 = evidence.iter().sum();
    let done = |freqs: Vec<usize>, outcome: String| KeyFrequencies {
        freqs,
        rule: format!("{statement}. Here: {outcome}"),
        evidence: evidence.clone(),
    };
    if total == 0.0 {
        return done(Vec::new(), "no energy at all, so none".into());
    }
    if k == 1 {
        return done(vec![1], "a single frequency, which is key".into());
    }

    let mut order: Vec<usize> = (0..k).collect();
    order.sort_by(|&i, &j| evidence[j].total_cmp(&evidence[i]).then(i.cmp(&j)));
    let sorted: Vec<f64> = order.iter().map(|&i| evidence[i]).collect();
    let (mut best_n, mut best_gap) = (0, f64::NEG_INFINITY);
    for n in 1..=max_cut(k, rule) {
        let gap = ratio(sorted[n - 1], sorted[n]);
        if gap > best_gap {
            (best_n, best_gap) = (n, gap);
        }
    }
    let kept_share: f64 = sorted[..best_n].iter().sum();
    let mut freqs: Vec<usize> = order[..best_n].iter().map(|&i| i + 1).collect();
    freqs.sort_unstable();
    let numbers =
        format!("the best cut keeps {freqs:?} (ratio {best_gap:.3}, share {kept_share:.3})");
    if best_gap < rule.min_gap {
        done(
            Vec::new(),
            format!("{numbers}, but the ratio is too small, so none"),
        )
    } else if kept_share < rule.min_share {
        done(
            Vec::new(),
            format!("{numbers}, but the share is too small, so none"),
        )
    } else {
        done(freqs, numbers)
    }
}

/// The largest cut the rule considers: `max(1, floor(max_fraction K))`, and below K.
fn max_cut(k: usize, rule: &KeyFrequencyRule) -> usize {
    ((rule.max_fraction * k as f64).floor() as usize)
        .max(1)
        .min(k.saturating_sub(1))
}

/// `kept / next`, infinite when only `next` is zero and 1 when both are.
fn ratio(kept: f64, next: f64) -> f64 {
    if next > 0.0 {
        kept / next
    } else if kept > 0.0 {
        f64::INFINITY
    } else {
        1.0
    }
}

/// Each energy's share of the total (all zeros when the total is zero).
fn shares(energy: &[f64]) -> Vec<f64> {
    assert!(
        energy.iter().all(|e| e.is_finite() && *e >= 0.0),
        "energies must be finite and non-negative: {energy:?}"
    );
    let total: f64 = energy.iter().sum();
    if total == 0.0 {
        return vec![0.0; energy.len()];
    }
    energy.iter().map(|e| e / total).collect()
}
