//! Line charts: training curves with phase shading and event markers.

use anyhow::{ensure, Result};
use plotters::element::DashedPathElement;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use plotters::style::FontTransform;

use super::axes::{axes, frame, padded, Axis, Chart, Grid};
use super::colour::{palette, MARKER};
use super::figure::{Area, Panel, Theme};
use super::legend::{legend, trace, Swatch};
use super::LineChart;

/// Pastel fills for phase spans, distinct from the series colours drawn over them.
const SPAN_FILLS: [(u8, u8, u8); 4] = [
    (255, 187, 120),
    (174, 199, 232),
    (152, 223, 138),
    (197, 176, 213),
];

impl Panel for LineChart {
    fn title(&self) -> &str {
        &self.title
    }

    fn check(&self) -> Result<()> {
        ensure!(
            !self.series.is_empty(),
            "a line chart needs at least one series"
        );
        for s in &self.series {
            ensure!(!s.points.is_empty(), "series {:?} has no points", s.label);
        }
        if let Some((lo, hi)) = self.y_range {
            ensure!(
                lo.is_finite() && hi.is_finite() && lo < hi,
                "y_range {lo}..{hi} is not an increasing finite range"
            );
            ensure!(
                !self.log_y || lo > 0.0,
                "y_range {lo}..{hi} must be positive on a log axis"
            );
        }
        for (x, label) in &self.vlines {
            ensure!(x.is_finite(), "marker {label:?} is at {x}");
        }
        for (a, b, label) in &self.spans {
            ensure!(
                a.is_finite() && b.is_finite() && a <= b,
                "span {label:?} from {a} to {b} is not a finite range"
            );
        }
        Ok(())
    }

    fn draw(&self, area: &Area, theme: &Theme) -> Result<()> {
        let curves = self.curves();
        let all = || curves.iter().flatten();
        ensure!(
            all().next().is_some(),
            "no finite{} points to plot",
            if self.log_y { " positive" } else { "" }
        );
        let xs = all()
            .map(|p| p.0)
            .chain(self.vlines.iter().map(|v| v.0))
            .chain(self.spans.iter().flat_map(|s| [s.0, s.1]));
        let (x_lo, x_hi) = xs.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), x| {
            (lo.min(x), hi.max(x))
        });
        let (x_lo, x_hi) = padded(x_lo, x_hi, 0.0);
        let (y_lo, y_hi) = match self.y_range {
            Some((lo, hi)) => (self.to_axis(lo), self.to_axis(hi)),
            None => {
                let (lo, hi) = all().fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), p| {
                    (lo.min(p.1), hi.max(p.1))
                });
                padded(lo, hi, 0.05)
            }
        };
        let x = Axis::values(x_lo, x_hi, false, &self.x_label);
        let y = Axis::values(y_lo, y_hi, self.log_y, &self.y_label);
        let chart = axes(area, x, y, Grid::Both, theme)?;
        let plot = chart.plotting_area();

        let mut spans = Vec::new();
        for (i, (start, end, label)) in self.spans.iter().enumerate() {
            let (r, g, b) = SPAN_FILLS[i % SPAN_FILLS.len()];
            let fill = RGBColor(r, g, b).mix(0.35);
            plot.draw(&Rectangle::new(
                [(*start, y_lo), (*end, y_hi)],
                fill.filled(),
            ))?;
            spans.push((label.clone(), Swatch::Fill(fill)));
        }
        let mut entries = Vec::new();
        let mut occupied = Vec::new();
        for (i, (series, points)) in self.series.iter().zip(&curves).enumerate() {
            let colour = palette(series.colour.unwrap_or(i));
            let style = theme.stroke(colour, 2.0);
            if let [point] = points[..] {
                // A line through one point draws nothing.
                plot.draw(&Circle::new(point, theme.px(3.0), colour.filled()))?;
            } else if series.dashed {
                plot.draw(&DashedPathElement::new(
                    points.iter().copied(),
                    theme.px(8.0),
                    theme.px(5.0),
                    style,
                ))?;
            } else {
                // One element per segment: plotters' outline of a thick polyline pinches where
                // many short steep segments meet.
                for pair in points.windows(2) {
                    plot.draw(&PathElement::new(pair.to_vec(), style))?;
                }
            }
            entries.push((
                series.label.clone(),
                Swatch::Line {
                    colour,
                    dashed: series.dashed,
                },
            ));
            occupied.extend(self.footprint(&chart, points));
        }
        // Marker labels over the curves, and the legend kept off them.
        occupied.extend(self.markers(&chart, (y_lo, y_hi), theme)?);
        entries.extend(spans);
        if self.series.len() > 1 || !self.spans.is_empty() {
            legend(&plot.strip_coord_spec(), &entries, &occupied, theme)?;
        }
        frame(area, &chart, theme)
    }
}

impl LineChart {
    fn to_axis(&self, y: f64) -> f64 {
        if self.log_y {
            y.log10()
        } else {
            y
        }
    }

    /// Each series in axis coordinates, without the points the axis cannot show.
    fn curves(&self) -> Vec<Vec<(f64, f64)>> {
        self.series
            .iter()
            .map(|s| {
                s.points
                    .iter()
                    .filter(|p| p.0.is_finite() && p.1.is_finite() && (!self.log_y || p.1 > 0.0))
                    .map(|&(x, y)| (x, self.to_axis(y)))
                    .collect()
            })
            .collect()
    }

    /// Dashed vertical lines, each labelled on a light backing beside the line (left of it when
    /// the line is at the right edge), reading upwards from the top. Returns the pixels of the
    /// labels, densely, for the legend to avoid.
    fn markers(
        &self,
        chart: &Chart,
        (y_lo, y_hi): (f64, f64),
        theme: &Theme,
    ) -> Result<Vec<(i32, i32)>> {
        let mut covered = Vec::new();
        let plot = chart.plotting_area();
        let base = plot.get_base_pixel();
        let pixels = plot.strip_coord_spec();
        let (plot_w, _) = pixels.dim_in_pixel();
        let font = Theme::font(theme.tick).color(&MARKER);
        let style = font
            .transform(FontTransform::Rotate270)
            .pos(Pos::new(HPos::Right, VPos::Top));
        let (pad, text_h) = (theme.pad(), theme.tick.ceil() as i32);
        // ab_glyph draws glyphs about a quarter em above their layout box, which the rotation
        // turns into a shift to the left.
        let rise = (theme.tick * 0.25).round() as i32;
        for (x, label) in &self.vlines {
            let dashes = DashedPathElement::new(
                [(*x, y_lo), (*x, y_hi)],
                theme.px(6.0),
                theme.px(4.0),
                theme.stroke(MARKER, 1.0),
            );
            plot.draw(&dashes)?;
            let line_x = chart.backend_coord(&(*x, y_hi)).0 - base.0;
            let gap = theme.px(3.0);
            let left = if line_x + gap + text_h < plot_w as i32 {
                line_x + gap
            } else {
                line_x - gap - text_h
            };
            let (length, _) = pixels.estimate_text_size(label, &font)?;
            let backing = [
                (left, pad - gap),
                (left + text_h, pad + length as i32 + gap),
            ];
            pixels.draw(&Rectangle::new(backing, WHITE.mix(0.75).filled()))?;
            pixels.draw_text(label, &style, (left + rise, pad))?;
            for x in (backing[0].0..=backing[1].0).step_by(2) {
                for y in (backing[0].1..=backing[1].1).step_by(2) {
                    covered.push((x, y));
                }
            }
        }
        Ok(covered)
    }

    /// Where a curve lies in the plot's pixels, clamped to the plot, for legend placement.
    fn footprint(&self, chart: &Chart, points: &[(f64, f64)]) -> Vec<(i32, i32)> {
        let base = chart.plotting_area().get_base_pixel();
        let (w, h) = chart.plotting_area().dim_in_pixel();
        let pixels: Vec<_> = points
            .iter()
            .map(|p| {
                let (x, y) = chart.backend_coord(p);
                (
                    (x - base.0).clamp(-1, w as i32),
                    (y - base.1).clamp(-1, h as i32),
                )
            })
            .collect();
        trace(&pixels)
    }
}
