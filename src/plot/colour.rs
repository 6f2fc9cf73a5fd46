//! Colour maps and palettes. Values follow matplotlib so figures read like the papers they are
//! compared with.

use plotters::style::RGBColor;

use super::ColorScale;

/// ColorBrewer RdBu (matplotlib's `RdBu`): red for low values, blue for high ones.
const RDBU: [(u8, u8, u8); 11] = [
    (103, 0, 31),
    (178, 24, 43),
    (214, 96, 77),
    (244, 165, 130),
    (253, 219, 199),
    (247, 247, 247),
    (209, 229, 240),
    (146, 197, 222),
    (67, 147, 195),
    (33, 102, 172),
    (5, 48, 97),
];

/// matplotlib's viridis sampled at nine evenly spaced points; linear interpolation between them is
/// visually indistinguishable from the full 256-entry table.
const VIRIDIS: [(u8, u8, u8); 9] = [
    (68, 1, 84),
    (71, 45, 123),
    (59, 82, 139),
    (44, 114, 142),
    (33, 145, 140),
    (40, 174, 128),
    (94, 201, 98),
    (173, 220, 48),
    (253, 231, 37),
];

/// matplotlib's tab10 cycle, for line series.
const TAB10: [(u8, u8, u8); 10] = [
    (31, 119, 180),
    (255, 127, 14),
    (44, 160, 44),
    (214, 39, 40),
    (148, 103, 189),
    (140, 86, 75),
    (227, 119, 194),
    (127, 127, 127),
    (188, 189, 34),
    (23, 190, 207),
];

/// Cells that hold no number (NaN or infinite).
pub(super) const MISSING: RGBColor = RGBColor(190, 190, 190);
pub(super) const NEGATIVE: RGBColor = RGBColor(178, 24, 43);
pub(super) const POSITIVE: RGBColor = RGBColor(33, 102, 172);
pub(super) const BASE: RGBColor = RGBColor(31, 119, 180);
pub(super) const ACCENT: RGBColor = RGBColor(255, 127, 14);
pub(super) const GRID: RGBColor = RGBColor(225, 225, 225);
pub(super) const MARKER: RGBColor = RGBColor(60, 60, 60);

/// The i-th colour of the series cycle.
pub(super) fn palette(i: usize) -> RGBColor {
    let (r, g, b) = TAB10[i % TAB10.len()];
    RGBColor(r, g, b)
}

/// Maps the values of one heatmap to colours. The limits are fixed once per panel so that the
/// colour bar and the cells agree.
#[derive(Clone, Copy, Debug)]
pub(super) struct ColourMap {
    pub scale: ColorScale,
    pub lo: f64,
    pub hi: f64,
}

impl ColourMap {
    /// Diverging and binary maps are symmetric about zero so that white always means zero;
    /// sequential maps span the data.
    pub fn fit(scale: ColorScale, values: &[f64]) -> Self {
        let finite = values.iter().copied().filter(|v| v.is_finite());
        let (lo, hi) = match scale {
            ColorScale::Sequential => finite
                .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
                    (lo.min(v), hi.max(v))
                }),
            ColorScale::Diverging | ColorScale::Binary => {
                let m = finite.fold(0.0_f64, |m, v| m.max(v.abs()));
                (-m, m)
            }
            ColorScale::Fixed { lo, hi, .. } => (lo, hi),
        };
        // All cells missing: any finite limits will do, every cell is grey anyway.
        let (lo, hi) = if lo <= hi { (lo, hi) } else { (0.0, 0.0) };
        Self { scale, lo, hi }
    }

    pub fn colour(&self, v: f64) -> RGBColor {
        if !v.is_finite() {
            return MISSING;
        }
        match self.scale {
            ColorScale::Binary => match v.partial_cmp(&0.0) {
                Some(std::cmp::Ordering::Less) => NEGATIVE,
                Some(std::cmp::Ordering::Greater) => POSITIVE,
                _ => RGBColor(255, 255, 255),
            },
            ColorScale::Diverging => interpolate(&RDBU, self.position(v)),
            ColorScale::Sequential | ColorScale::Fixed { .. } => {
                interpolate(&VIRIDIS, self.position(v))
            }
        }
    }

    /// Where `v` sits between the limits, in 0..=1; the middle when the limits coincide.
    pub fn position(&self, v: f64) -> f64 {
        if self.hi > self.lo {
            ((v - self.lo) / (self.hi - self.lo)).clamp(0.0, 1.0)
        } else {
            0.5
        }
    }
}

fn interpolate(stops: &[(u8, u8, u8)], t: f64) -> RGBColor {
    let x = t.clamp(0.0, 1.0) * (stops.len() - 1) as f64;
    let i = (x.floor() as usize).min(stops.len() - 2);
    let f = x - i as f64;
    let mix = |a: u8, b: u8| (f64::from(a) + (f64::from(b) - f64::from(a)) * f).round() as u8;
    let (a, b) = (stops[i], stops[i + 1]);
    RGBColor(mix(a.0, b.0), mix(a.1, b.1), mix(a.2, b.2))
}
