//! The arithmetic of matrix products on f16 tiles with f32 accumulation (tensor cores): the
//! split's constants, which the f16 tile kernels take from here (engine/f16_tiles.rs), and the
//! products as the kernels compute them, for checking them.
//!
//! Integer operands (int8 activation codes, binary and ternary weight codes) are f16 values, and
//! so is every product of two of them, so their products are exact whatever the order of the
//! sum, while |sum| < 2^24. A float operand is split: scaled by a power of two `s` that puts its
//! largest magnitude in [2^14, 2^15) (the top of f16's range), `x s = hi + lo / 2^11` with `hi`
//! the nearest f16 and `lo` the nearest f16 to the rest, scaled up to stay clear of f16's
//! subnormals. `a b ≈ (hi_a hi_b + (hi_a lo_b + lo_a hi_b) / 2^11) / (s_a s_b)`: three f16
//! products instead of one, about 22 bits of each operand instead of f32's 24.

use half::f16;

/// The factor between a split's high part and its low part.
pub const LO_SCALE: f32 = 2048.0;

/// The largest scale: the largest power of two f32 holds. An operand below 2^-113 (far below
/// any parameter or gradient the models reach) stays under the top of f16's range.
const MAX_SCALE: f64 = 1.701_411_834_604_692_3e38;

/// The power of two that brings `max_abs` (an operand's largest magnitude) into [2^14, 2^15),
/// at most 2^127; 1 for an operand of zeros (or one that is not finite).
pub fn split_scale(max_abs: f32) -> f32 {
    if max_abs == 0.0 || !max_abs.is_finite() {
        return 1.0;
    }
    // max_abs = m 2^e with m in [1, 2); f64 holds 2^(14 - e) for every f32 e.
    let e = (max_abs as f64).log2().floor() as i32;
    let mut s = 2f64.powi(14 - e);
    // Correct log2's rounding at exact powers of two.
    while max_abs as f64 * s >= 32768.0 {
        s /= 2.0;
    }
    while (max_abs as f64 * s) < 16384.0 {
        s *= 2.0;
    }
    s.min(MAX_SCALE) as f32
}

/// `x` split for an operand of scale `scale`: the f16 nearest `x scale`, and the f16 nearest
/// the rest times [`LO_SCALE`].
pub fn split(x: f32, scale: f32) -> (f16, f16) {
    let scaled = x as f64 * scale as f64;
    let hi = f16::from_f64(scaled);
    let lo = f16::from_f64((scaled - hi.to_f64()) * LO_SCALE as f64);
    (hi, lo)
}

/// The value a split stands for.
pub fn join(hi: f16, lo: f16, scale: f32) -> f64 {
    (hi.to_f64() + lo.to_f64() / LO_SCALE as f64) / scale as f64
}

/// Largest magnitude of the finite values (0 for none).
pub fn max_abs(values: &[f32]) -> f32 {
    values
        .iter()
        .filter(|x| x.is_finite())
        .fold(0.0, |m, x| m.max(x.abs()))
}

/// `a` (m×k) times `b` (k×n), both row-major, as the split kernels compute it: the three f16
/// products summed in f32 over k in order, then combined and unscaled in f32.
pub fn split_product(a: &[f32], b: &[f32], m: usize, k: usize, n: usize) -> Vec<f32> {
    let (sa, sb) = (split_scale(max_abs(a)), split_scale(max_abs(b)));
    let a: Vec<(f16, f16)> = a.iter().map(|&x| split(x, sa)).collect();
    let b: Vec<(f16, f16)> = b.iter().map(|&x| split(x, sb)).collect();
    let mut c = vec![0.0f32; m * n];
    for i in 0..m {
        for j in 0..n {
            let (mut high, mut cross) = (0.0f32, 0.0f32);
            for l in 0..k {
                let ((ah, al), (bh, bl)) = (a[i * k + l], b[l * n + j]);
                high += ah.to_f32() * bh.to_f32();
                cross += ah.to_f32() * bl.to_f32() + al.to_f32() * bh.to_f32();
            }
            c[i * n + j] = (high + cross / LO_SCALE) / (sa * sb);
        }
    }
    c
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Relative error of a split round trip, for values within 2^-10 of the operand's largest.
    fn round_trip_error(x: f32, max: f32) -> f64 {
        let s = split_scale(max);
        let (hi, lo) = split(x, s);
        ((join(hi, lo, s) - x as f64) / x as f64).abs()
    }

    #[test]
    fn the_scale_puts_the_largest_magnitude_at_the_top_of_f16() {
        for max in [
            1.0f32,
            0.75,
            3.0e-7,
            6.5e4,
            1.0e30,
            1.0e-30,
            f32::MAX,
            2.0f32.powi(-113),
        ] {
            let s = split_scale(max);
            let scaled = max as f64 * s as f64;
            assert!((16384.0..32768.0).contains(&scaled), "{max}: {scaled}");
            assert_eq!(s.log2().fract(), 0.0, "{max}: a power of two");
        }
        // Below 2^-113 (f32's subnormals too) the scale stops at f32's largest power of two.
        for max in [1.0e-36f32, 1.0e-40, 2.0f32.powi(-149)] {
            assert_eq!(split_scale(max), 2.0f32.powi(127), "{max}");
        }
        assert_eq!(split_scale(0.0), 1.0);
        assert_eq!(split_scale(f32::NAN), 1.0);
    }

    #[test]
    fn a_split_keeps_22_bits_across_magnitudes() {
        // Values of the operand's own scale keep 2^-22 of relative error (hi rounds to 2^-11,
        // lo to 2^-11 of that), across f32's whole range, subnormals included.
        for &max in &[1.0f32, 3.7e-3, 1.0e30, 1.0e-30, 1.0e-40] {
            for i in 0..1000 {
                let x = max
                    * (0.001 + 0.999 * (i as f32 / 999.0))
                    * if i % 2 == 0 { 1.0 } else { -1.0 };
                if x == 0.0 {
                    continue;
                }
                let e = round_trip_error(x, max);
                // Once x s lies far below the top of f16's range, lo reaches f16's subnormals
                // and precision falls off.
                let scaled = (x as f64 * split_scale(max) as f64).abs();
                let bound = if scaled >= 16.0 {
                    2f64.powi(-21)
                } else {
                    2f64.powi(-12)
                };
                assert!(e <= bound, "x {x} of max {max}: relative error {e:e}");
            }
        }
        // Zeros stay zero, and the sign of a split follows x.
        assert_eq!(split(0.0, 4.0), (f16::ZERO, f16::ZERO));
        let (hi, _) = split(-1.5, 1.0);
        assert!(hi.is_sign_negative());
    }

    #[test]
    fn integer_operands_multiply_exactly() {
        // Int8 codes times ternary codes: every factor and product is an f16 value, so a sum of
        // 16,384 of them in f32 is exact in any order.
        let k = 16_384;
        let a: Vec<i32> = (0..k).map(|i| (i * 37 % 255) as i32 - 127).collect();
        let b: Vec<i32> = (0..k).map(|i| (i * 7 % 3) as i32 - 1).collect();
        let exact: i64 = a.iter().zip(&b).map(|(x, y)| (x * y) as i64).sum();
        let mut forward = 0.0f32;
        let mut backward = 0.0f32;
        for i in 0..k {
            forward += f16::from_f32(a[i] as f32).to_f32() * f16::from_f32(b[i] as f32).to_f32();
            let j = k - 1 - i;
            backward += f16::from_f32(a[j] as f32).to_f32() * f16::from_f32(b[j] as f32).to_f32();
        }
        assert_eq!(forward as i64, exact);
        assert_eq!(backward as i64, exact);
        // The largest such sum stays below 2^24.
        assert!((k as i64) * 127 < 1 << 24);
    }

    #[test]
    fn split_products_hold_f32_tolerances() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
        let (m, k, n) = (5, 300, 7);
        for magnitude in [1.0f32, 1e-20, 1e20] {
            let a: Vec<f32> = (0..m * k)
                .map(|_| magnitude * rng.random_range(-1.0..1.0))
                .collect();
            let b: Vec<f32> = (0..k * n).map(|_| rng.random_range(-1.0f32..1.0)).collect();
            let c = split_product(&a, &b, m, k, n);
            for i in 0..m {
                for j in 0..n {
                    let (exact, scale): (f64, f64) = (0..k)
                        .map(|l| {
                            (
                                a[i * k + l] as f64 * b[l * n + j] as f64,
                                (a[i * k + l] as f64 * b[l * n + j] as f64).abs(),
                            )
                        })
                        .fold((0.0, 0.0), |(s, t), (x, y)| (s + x, t + y));
                    let err = (c[i * n + j] as f64 - exact).abs();
                    // f32 accumulation over k terms, 2^-21 per split operand.
                    let bound = scale * (k as f64 * 2f64.powi(-24) + 2f64.powi(-19));
                    assert!(
                        err <= bound,
                        "{magnitude}: ({i}, {j}) error {err:e} > {bound:e}"
                    );
                }
            }
        }
    }
}
