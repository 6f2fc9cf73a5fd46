//! The statistics a sweep report needs: location and spread of a sample, a rank test for
//! whether two samples differ, and an exact test for whether two success rates do.

use statrs::distribution::{ContinuousCDF, Discrete, Hypergeometric, Normal};

/// Mean, sample standard deviation and median of the finite values; NaN for an empty sample
/// (and a standard deviation of 0 for one value).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Spread {
    pub n: usize,
    pub mean: f64,
    pub sd: f64,
    pub median: f64,
}

pub fn spread(values: &[f64]) -> Spread {
    let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
    let n = v.len();
    if n == 0 {
        return Spread {
            n,
            mean: f64::NAN,
            sd: f64::NAN,
            median: f64::NAN,
        };
    }
    v.sort_by(f64::total_cmp);
    let mean = v.iter().sum::<f64>() / n as f64;
    let var = if n > 1 {
        v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1) as f64
    } else {
        0.0
    };
    let median = if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    };
    Spread {
        n,
        mean,
        sd: var.sqrt(),
        median,
    }
}

/// Two-sided p-value of the Mann-Whitney U test that `a` and `b` come from the same
/// distribution, from the normal approximation with the tie correction (fine from about five
/// values per sample; NaN when either sample is empty or every value is tied).
pub fn mann_whitney_p(a: &[f64], b: &[f64]) -> f64 {
    let (n1, n2) = (a.len() as f64, b.len() as f64);
    if a.is_empty() || b.is_empty() {
        return f64::NAN;
    }
    let mut all: Vec<(f64, bool)> = a
        .iter()
        .map(|&x| (x, true))
        .chain(b.iter().map(|&x| (x, false)))
        .collect();
    all.sort_by(|x, y| x.0.total_cmp(&y.0));
    // Average ranks over ties; the sum of t^3 - t over tie groups corrects the variance.
    let (mut rank_sum_a, mut ties) = (0.0, 0.0);
    let mut i = 0;
    while i < all.len() {
        let mut j = i;
        while j < all.len() && all[j].0 == all[i].0 {
            j += 1;
        }
        let t = (j - i) as f64;
        let rank = (i + j + 1) as f64 / 2.0;
        rank_sum_a += rank * all[i..j].iter().filter(|x| x.1).count() as f64;
        ties += t * t * t - t;
        i = j;
    }
    let u = rank_sum_a - n1 * (n1 + 1.0) / 2.0;
    let n = n1 + n2;
    let variance = n1 * n2 / 12.0 * ((n + 1.0) - ties / (n * (n - 1.0)));
    if variance <= 0.0 {
        return f64::NAN;
    }
    let z = (u - n1 * n2 / 2.0).abs() / variance.sqrt();
    let normal = Normal::standard();
    (2.0 * (1.0 - normal.cdf(z))).min(1.0)
}

/// A percentile bootstrap 95% confidence interval of `median(a) − median(b)`: `draws`
/// resamples of each sample with replacement (seeded), the 2.5th and 97.5th percentiles of the
/// differences. NaN when either sample is empty.
pub fn bootstrap_median_difference(a: &[f64], b: &[f64], draws: usize, seed: u64) -> (f64, f64) {
    use rand::{Rng, SeedableRng};
    if a.is_empty() || b.is_empty() || draws == 0 {
        return (f64::NAN, f64::NAN);
    }
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let mut resample = |v: &[f64]| -> f64 {
        let r: Vec<f64> = (0..v.len())
            .map(|_| v[rng.random_range(0..v.len())])
            .collect();
        spread(&r).median
    };
    let mut diffs: Vec<f64> = (0..draws).map(|_| resample(a) - resample(b)).collect();
    diffs.sort_by(f64::total_cmp);
    let at = |q: f64| diffs[((draws - 1) as f64 * q).round() as usize];
    (at(0.025), at(0.975))
}

/// Two-sided p-value of Fisher's exact test that `a_hits` of `a_n` and `b_hits` of `b_n` are
/// draws of one success rate: the probability, given the margins, of every table no more
/// likely than the one observed. NaN when either sample is empty.
pub fn fisher_exact_p(a_hits: usize, a_n: usize, b_hits: usize, b_n: usize) -> f64 {
    if a_n == 0 || b_n == 0 || a_hits > a_n || b_hits > b_n {
        return f64::NAN;
    }
    let hits = a_hits + b_hits;
    let tables =
        Hypergeometric::new((a_n + b_n) as u64, hits as u64, a_n as u64).expect("valid margins");
    let observed = tables.pmf(a_hits as u64);
    let lowest = hits.saturating_sub(b_n);
    let p: f64 = (lowest..=hits.min(a_n))
        .map(|x| tables.pmf(x as u64))
        // Relative slack, so that tables as likely as the observed one count despite rounding.
        .filter(|&q| q <= observed * (1.0 + 1e-7))
        .sum();
    p.min(1.0)
}

/// Holm's step-down adjustment of p-values for multiple comparisons (NaN stays NaN and does
/// not count as a test): the adjusted p-values, in the input's order.
pub fn holm(p: &[f64]) -> Vec<f64> {
    let mut order: Vec<usize> = (0..p.len()).filter(|&i| !p[i].is_nan()).collect();
    order.sort_by(|&i, &j| p[i].total_cmp(&p[j]));
    let m = order.len();
    let mut adjusted = vec![f64::NAN; p.len()];
    let mut running = 0.0f64;
    for (rank, &i) in order.iter().enumerate() {
        running = running.max(((m - rank) as f64 * p[i]).min(1.0));
        adjusted[i] = running;
    }
    adjusted
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spread_of_a_small_sample() {
        let s = spread(&[1.0, 2.0, 3.0, 4.0, f64::NAN]);
        assert_eq!((s.n, s.mean, s.median), (4, 2.5, 2.5));
        assert!((s.sd - 1.290_994_448_735_805_6).abs() < 1e-12);
        assert!(spread(&[]).mean.is_nan());
    }

    #[test]
    fn mann_whitney_matches_the_formula() {
        // By hand: ranks of a 1, 2, 3, 4.5, 6.5, 8.5 (three pairs tied), U = 4.5, tie-corrected
        // variance 3.5 (14 - 18 / 156), z = 2.3669 (scipy.stats.mannwhitneyu with
        // method="asymptotic", use_continuity=False computes the same).
        let a = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0];
        let b = [4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0];
        let p = mann_whitney_p(&a, &b);
        assert!((p - 0.017_937_0).abs() < 1e-6, "{p}");
        // Identical samples: no evidence of a difference.
        assert!((mann_whitney_p(&a, &a) - 1.0).abs() < 1e-12);
        assert!(mann_whitney_p(&[1.0], &[1.0]).is_nan());
    }

    #[test]
    fn fisher_matches_known_tables() {
        // scipy.stats.fisher_exact([[1, 3], [4, 0]]) -> p = 0.142857 (= 8/56);
        // [[3, 1], [1, 3]] -> 0.485714; [[16, 0], [0, 16]] -> 2 / C(32, 16) = 3.327e-9.
        assert!((fisher_exact_p(1, 4, 4, 4) - 8.0 / 56.0).abs() < 1e-9);
        assert!((fisher_exact_p(3, 4, 1, 4) - 0.485_714_285_7).abs() < 1e-9);
        let p = fisher_exact_p(16, 16, 0, 16);
        assert!((p / 3.327_341_955e-9 - 1.0).abs() < 1e-8, "{p}");
        assert!((fisher_exact_p(2, 4, 2, 4) - 1.0).abs() < 1e-12);
        assert!(fisher_exact_p(0, 0, 1, 2).is_nan());
    }

    #[test]
    fn holm_adjusts_step_down() {
        // By hand: sorted 0.01, 0.02, 0.04 times 3, 2, 1, made monotone.
        let adj = holm(&[0.04, 0.01, f64::NAN, 0.02]);
        assert!((adj[1] - 0.03).abs() < 1e-12 && (adj[3] - 0.04).abs() < 1e-12);
        assert!((adj[0] - 0.04).abs() < 1e-12 && adj[2].is_nan());
        assert_eq!(holm(&[0.9, 0.8]), vec![1.0, 1.0]);
        assert_eq!(holm(&[0.2, 0.6]), vec![0.4, 0.6]);
    }

    #[test]
    fn bootstrap_interval_covers_a_clear_shift_and_is_seeded() {
        let a: Vec<f64> = (0..16).map(|i| 10.0 + (i % 5) as f64).collect();
        let b: Vec<f64> = (0..16).map(|i| (i % 5) as f64).collect();
        let (lo, hi) = bootstrap_median_difference(&a, &b, 2000, 1);
        assert!(lo <= 10.0 && 10.0 <= hi && lo > 5.0, "{lo} {hi}");
        assert_eq!((lo, hi), bootstrap_median_difference(&a, &b, 2000, 1));
        assert!(bootstrap_median_difference(&a, &[], 10, 1).0.is_nan());
    }
}
