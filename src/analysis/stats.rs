//! The statistics a sweep report needs: location and spread of a sample, and a rank test for
//! whether two samples differ.

use statrs::distribution::{ContinuousCDF, Normal};

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
}
