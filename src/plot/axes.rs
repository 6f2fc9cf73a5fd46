//! Axes shared by every chart kind: label areas sized to their text, tick choice and thinning,
//! number formatting, and the frame around the plot.

use std::ops::Range;

use anyhow::{ensure, Result};
use plotters::coord::ranged1d::{DefaultFormatting, KeyPointHint};
use plotters::prelude::*;

use super::colour::GRID;
use super::figure::{Area, Theme};

/// Most tick labels an axis shows, however much room there is.
const MAX_TICKS: usize = 20;

/// How an axis picks its tick positions and labels.
pub(super) enum Ticks {
    /// Round numbers (1, 2, 5 times a power of ten).
    Linear,
    /// Round whole numbers only, for counts.
    Whole,
    /// The axis holds log10 of the data: labels at powers of ten.
    Log10,
    /// Cells `0..n` centred at `i + 0.5`, labelled with their index at round steps.
    Index(usize),
    /// Given positions and labels, thinned to a regular subset when they do not fit.
    Fixed(Vec<(f64, String)>),
}

pub(super) struct Axis {
    /// Data value at the left (bottom) end; may exceed `hi` to flip the axis.
    pub lo: f64,
    pub hi: f64,
    pub ticks: Ticks,
    pub label: String,
}

impl Axis {
    /// A value axis: linear, or powers of ten when the data are stored as log10.
    pub(super) fn values(lo: f64, hi: f64, log: bool, label: &str) -> Axis {
        let ticks = if log { Ticks::Log10 } else { Ticks::Linear };
        Axis {
            lo,
            hi,
            ticks,
            label: label.to_string(),
        }
    }
}

pub(super) enum Grid {
    Off,
    Horizontal,
    Both,
}

pub(super) type Chart<'a, 'b> = ChartContext<'a, BitMapBackend<'b>, Cartesian2d<Ticked, Ticked>>;

/// A linear coordinate whose key points (tick marks, labels and grid lines) are exactly the
/// chosen ticks. plotters' own `WithKeyPoints` cannot take a label formatter for `f64` axes.
#[derive(Clone)]
pub(super) struct Ticked {
    lo: f64,
    hi: f64,
    ticks: Vec<f64>,
}

impl Ranged for Ticked {
    type FormatOption = DefaultFormatting;
    type ValueType = f64;

    fn map(&self, v: &f64, (start, end): (i32, i32)) -> i32 {
        let t = (v - self.lo) / (self.hi - self.lo);
        start + (t * f64::from(end - start)).round() as i32
    }

    fn key_points<H: KeyPointHint>(&self, hint: H) -> Vec<f64> {
        // Only bold points, so no secondary grid appears between the ticks.
        if hint.weight().allow_light_points() {
            Vec::new()
        } else {
            self.ticks.clone()
        }
    }

    fn range(&self) -> Range<f64> {
        self.lo..self.hi
    }
}

/// Lays out the axes in `area` and draws ticks, labels and grid; the plot itself is left empty.
/// Label areas are sized from the labels actually chosen, so nothing is clipped.
pub(super) fn axes<'a, 'b>(
    area: &'a Area<'b>,
    x: Axis,
    y: Axis,
    grid: Grid,
    theme: &Theme,
) -> Result<Chart<'a, 'b>> {
    let tick_font = Theme::font(theme.tick);
    let pad = theme.pad();
    let (w, h) = area.dim_in_pixel();
    let (w, h) = (w as i32, h as i32);
    let width = |s: &str| {
        area.estimate_text_size(s, &tick_font)
            .map_or(0, |(w, _)| w as i32)
    };
    let line = theme.tick.ceil() as i32;
    let desc = |label: &str| {
        if label.is_empty() {
            0
        } else {
            theme.label.ceil() as i32 + pad
        }
    };
    let tick_len = theme.px(4.0);

    // plotters puts tick labels two tick lengths away from the axis.
    let top = line / 2 + pad;
    let bottom = 2 * tick_len + line + desc(&x.label);
    let plot_h = h - top - bottom - pad;
    ensure!(
        plot_h >= theme.px(20.0),
        "the panel is too short for its axis labels"
    );
    let y_ticks = choose(&y, plot_h, |_| line, theme);
    let y_width = y_ticks.iter().map(|(_, l)| width(l)).max().unwrap_or(0);
    let left = 2 * tick_len + y_width + pad + desc(&y.label);

    // The last x label is centred on the right edge of the plot; widen the margin if it sticks out.
    // The left margin keeps the rotated y label, which ab_glyph draws a little outside its box,
    // inside the panel.
    let plot_w = |right: i32| w - pad - left - right;
    let mut right = 2 * pad;
    let mut x_ticks = choose(&x, plot_w(right), width, theme);
    if let Some((v, l)) = x_ticks.last() {
        let overhang = (at(&x, *v, f64::from(plot_w(right))) + f64::from(width(l)) / 2.0).ceil()
            as i32
            - plot_w(right);
        if overhang + pad > right {
            right = overhang + pad;
            x_ticks = choose(&x, plot_w(right), width, theme);
        }
    }
    ensure!(
        plot_w(right) >= theme.px(20.0),
        "the panel is too narrow for its axis labels"
    );

    let mut chart = ChartBuilder::on(area)
        .margin_top(top)
        .margin_right(right)
        .margin_left(pad)
        .margin_bottom(pad)
        .x_label_area_size(bottom)
        .y_label_area_size(left)
        .build_cartesian_2d(
            Ticked {
                lo: x.lo,
                hi: x.hi,
                ticks: x_ticks.iter().map(|t| t.0).collect(),
            },
            Ticked {
                lo: y.lo,
                hi: y.hi,
                ticks: y_ticks.iter().map(|t| t.0).collect(),
            },
        )?;
    let x_fmt = |v: &f64| lookup(&x_ticks, *v);
    let y_fmt = |v: &f64| lookup(&y_ticks, *v);
    let mut mesh = chart.configure_mesh();
    mesh.x_desc(&x.label)
        .y_desc(&y.label)
        .x_label_formatter(&x_fmt)
        .y_label_formatter(&y_fmt)
        .label_style(tick_font.clone())
        .axis_desc_style(Theme::font(theme.label))
        .set_all_tick_mark_size(tick_len)
        .axis_style(theme.stroke(BLACK, 1.0))
        .bold_line_style(theme.stroke(GRID, 1.0));
    match grid {
        Grid::Off => mesh.disable_mesh(),
        Grid::Horizontal => mesh.disable_x_mesh(),
        Grid::Both => &mut mesh,
    };
    mesh.draw()?;
    Ok(chart)
}

/// Closes the plot into a box with top and right edges mirroring the axes that plotters draws
/// just outside the plot; drawn last so that content does not cover it. `area` is the one the
/// chart was built on.
pub(super) fn frame(area: &Area, chart: &Chart, theme: &Theme) -> Result<()> {
    let (xs, ys) = chart.plotting_area().get_pixel_range();
    let (bx, by) = area.get_base_pixel();
    let (left, right, top, bottom) = (
        xs.start - bx - 1,
        xs.end - bx,
        ys.start - by - 1,
        ys.end - by,
    );
    area.draw(&PathElement::new(
        vec![(left, top), (right, top), (right, bottom)],
        theme.stroke(BLACK, 1.0),
    ))?;
    Ok(())
}

/// `lo..hi` widened by `frac` of its span on each side, or by a unit-ish amount when it is a
/// single value, so that every axis has a non-empty range.
pub(super) fn padded(lo: f64, hi: f64, frac: f64) -> (f64, f64) {
    let span = hi - lo;
    if span > 1e-12 * lo.abs().max(hi.abs()) {
        (lo - frac * span, hi + frac * span)
    } else {
        let d = if lo == 0.0 { 0.5 } else { 0.1 * lo.abs() };
        (lo - d, hi + d)
    }
}

/// `v` with about `sig` significant digits: plain notation for ordinary magnitudes, scientific
/// beyond, and no trailing zeros.
pub(super) fn format_number(v: f64, sig: usize) -> String {
    let exp = v.abs().log10().floor();
    format_as(v, sig, !(-3.0..6.0).contains(&exp))
}

fn format_as(v: f64, sig: usize, scientific: bool) -> String {
    if v == 0.0 || !v.is_finite() {
        return if v == 0.0 { "0".into() } else { v.to_string() };
    }
    let sig = sig.max(1);
    if scientific {
        let text = format!("{v:.*e}", sig - 1);
        let (mantissa, exponent) = text.split_once('e').unwrap_or((&text, "0"));
        format!("{}e{exponent}", trim_zeros(mantissa))
    } else {
        let exp = v.abs().log10().floor() as i32;
        let decimals = (sig as i32 - 1 - exp).max(0) as usize;
        trim_zeros(&format!("{v:.decimals$}"))
    }
}

fn trim_zeros(s: &str) -> String {
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s.to_string()
    }
}

/// Pixel offset of `v` from the axis start along `px` pixels.
fn at(axis: &Axis, v: f64, px: f64) -> f64 {
    (v - axis.lo) / (axis.hi - axis.lo) * px
}

fn lookup(ticks: &[(f64, String)], v: f64) -> String {
    ticks
        .iter()
        .find(|t| t.0 == v)
        .map(|t| t.1.clone())
        .unwrap_or_default()
}

/// The densest candidate tick set whose labels neither overlap nor exceed `MAX_TICKS`, or the
/// sparsest one if none fits. `extent` is a label's size along the axis.
fn choose(axis: &Axis, px: i32, extent: impl Fn(&str) -> i32, theme: &Theme) -> Vec<(f64, String)> {
    let px = f64::from(px.max(1));
    let gap = f64::from(theme.px(6.0));
    let fits = |ticks: &[(f64, String)]| {
        ticks.len() <= MAX_TICKS
            && ticks.windows(2).all(|p| {
                let room = (at(axis, p[1].0, px) - at(axis, p[0].0, px)).abs();
                room >= f64::from(extent(&p[0].1) + extent(&p[1].1)) / 2.0 + gap
            })
    };
    let mut chosen = Vec::new();
    // Round-number ticks much closer than this look cluttered even when they fit.
    let most = ((px / f64::from(theme.px(45.0))) as usize).clamp(2, 10);
    for candidate in candidates(axis, most) {
        let done = fits(&candidate);
        chosen = candidate;
        if done {
            break;
        }
    }
    chosen
}

/// Tick sets for `axis`, densest first, with at most `most` round-number ticks.
fn candidates(axis: &Axis, most: usize) -> Box<dyn Iterator<Item = Vec<(f64, String)>> + '_> {
    let (lo, hi) = (axis.lo.min(axis.hi), axis.lo.max(axis.hi));
    match &axis.ticks {
        Ticks::Linear => Box::new((2..=most).rev().map(move |n| round_ticks(lo, hi, n))),
        Ticks::Whole => Box::new((2..=most).rev().map(move |n| {
            round_ticks(lo, hi, n)
                .into_iter()
                .filter(|t| t.0.fract() == 0.0)
                .collect()
        })),
        Ticks::Log10 => {
            let decades: Vec<i32> =
                ((lo - 1e-9).ceil() as i32..=(hi + 1e-9).floor() as i32).collect();
            if decades.len() >= 2 {
                Box::new((1..=decades.len()).map(move |stride| {
                    decades
                        .iter()
                        .step_by(stride)
                        .map(|&k| (f64::from(k), power_of_ten(k)))
                        .collect()
                }))
            } else {
                // Less than two decades: 1, 2 and 5 times powers of ten if that gives a few
                // ticks, else round numbers of the data, placed on the log axis.
                let mantissas = one_two_five(lo, hi);
                let (a, b) = (10f64.powf(lo), 10f64.powf(hi));
                let round = (2..=most.min(6)).rev().map(move |n| {
                    round_ticks(a, b, n)
                        .into_iter()
                        .filter(|t| t.0 > 0.0)
                        .map(|(v, l)| (v.log10(), l))
                        .collect()
                });
                Box::new(
                    std::iter::once(mantissas)
                        .filter(|m| m.len() >= 3)
                        .chain(round),
                )
            }
        }
        Ticks::Index(n) => {
            let n = *n;
            Box::new(
                round_steps()
                    .take_while(move |&s| s == 1 || s < n)
                    .map(move |step| {
                        (0..n)
                            .step_by(step)
                            .map(|i| (i as f64 + 0.5, i.to_string()))
                            .collect()
                    }),
            )
        }
        Ticks::Fixed(ticks) => {
            let inside: Vec<_> = ticks
                .iter()
                .filter(|t| (lo..=hi).contains(&t.0))
                .cloned()
                .collect();
            let first = inside.len().div_ceil(MAX_TICKS).max(1);
            Box::new(
                (first..=inside.len().max(1))
                    .map(move |stride| inside.iter().step_by(stride).cloned().collect()),
            )
        }
    }
}

/// 1, 2, 5, 10, 20, 50, ...
fn round_steps() -> impl Iterator<Item = usize> {
    (0..).flat_map(|e: u32| [1, 2, 5].map(|m| m * 10usize.pow(e)))
}

/// Multiples of a round step inside `lo..=hi`, about `n` of them, labelled with just enough digits.
fn round_ticks(lo: f64, hi: f64, n: usize) -> Vec<(f64, String)> {
    let raw = (hi - lo) / n as f64;
    let magnitude = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .map(|m| m * magnitude)
        .find(|&s| s >= raw * (1.0 - 1e-9))
        .unwrap_or(10.0 * magnitude);
    let first = (lo / step - 1e-9).ceil() as i64;
    let last = (hi / step + 1e-9).floor() as i64;
    // One notation for the whole axis, so that 0, 500000 and 1e6 do not sit side by side.
    let scientific = lo.abs().max(hi.abs()) >= 1e6 || step < 1e-3;
    (first..=last)
        .map(|k| {
            let v = k as f64 * step;
            let sig = if k == 0 {
                1
            } else {
                (v.abs().log10().floor() - step.log10().floor()) as usize + 1
            };
            (v, format_as(v, sig, scientific))
        })
        .collect()
}

/// 1, 2 and 5 times powers of ten between the log10 values `lo` and `hi`.
fn one_two_five(lo: f64, hi: f64) -> Vec<(f64, String)> {
    (lo.floor() as i32..=hi.ceil() as i32)
        .flat_map(|k| [1.0, 2.0, 5.0].map(|m: f64| (m.log10() + f64::from(k), m * 10f64.powi(k))))
        .filter(|&(v, _)| (lo..=hi).contains(&v))
        .map(|(v, x)| (v, format_number(x, 1)))
        .collect()
}

/// "10⁻³" and the like.
fn power_of_ten(k: i32) -> String {
    const SUPERSCRIPT: [char; 10] = ['⁰', '¹', '²', '³', '⁴', '⁵', '⁶', '⁷', '⁸', '⁹'];
    let digits = k
        .to_string()
        .chars()
        .map(|c| c.to_digit(10).map_or('⁻', |d| SUPERSCRIPT[d as usize]))
        .collect::<String>();
    format!("10{digits}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(ticks: &[(f64, String)]) -> Vec<&str> {
        ticks.iter().map(|t| t.1.as_str()).collect()
    }

    #[test]
    fn numbers_are_short_and_exact_enough() {
        assert_eq!(format_number(0.30000000000000004, 3), "0.3");
        assert_eq!(format_number(-8.5912, 3), "-8.59");
        assert_eq!(format_number(1234.4, 3), "1234");
        assert_eq!(format_number(2.5e-5, 3), "2.5e-5");
        assert_eq!(format_number(3.0e7, 3), "3e7");
        assert_eq!(
            labels(&round_ticks(0.0, 1.0, 5)),
            ["0", "0.2", "0.4", "0.6", "0.8", "1"]
        );
        assert_eq!(labels(&round_ticks(0.0, 1.2e6, 3)), ["0", "5e5", "1e6"]);
        assert_eq!(power_of_ten(-12), "10⁻¹²");
    }

    #[test]
    fn crowded_labels_are_thinned_and_few_are_kept() {
        let axis = |n: usize| Axis {
            lo: 0.0,
            hi: n as f64,
            ticks: Ticks::Fixed(
                (0..n)
                    .map(|i| (i as f64 + 0.5, format!("cos {i}")))
                    .collect(),
            ),
            label: String::new(),
        };
        let theme = Theme::for_tests();
        let wide = |s: &str| 7 * s.len() as i32;
        assert_eq!(
            choose(&axis(5), 400, wide, &theme).len(),
            5,
            "few labels are all shown"
        );
        let thinned = choose(&axis(113), 400, wide, &theme);
        assert!(
            (2..=MAX_TICKS).contains(&thinned.len()),
            "{} labels",
            thinned.len()
        );
        let gaps: Vec<f64> = thinned.windows(2).map(|p| p[1].0 - p[0].0).collect();
        assert!(
            gaps.iter().all(|&g| g == gaps[0]),
            "thinning keeps a regular stride"
        );
        assert!(gaps[0] * 400.0 / 113.0 >= 7.0 * 6.0, "labels overlap");
    }
}
