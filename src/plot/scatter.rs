//! Scatter plots, optionally with a text label per point (tokens in embedding space).

use anyhow::{ensure, Result};
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::axes::{axes, frame, padded, Axis, Grid, Ticks};
use super::colour::BASE;
use super::figure::{Area, Panel, Theme};
use super::Scatter;

impl Panel for Scatter {
    fn title(&self) -> &str {
        &self.title
    }

    fn check(&self) -> Result<()> {
        ensure!(
            !self.points.is_empty(),
            "a scatter plot needs at least one point"
        );
        ensure!(
            self.labels.is_empty() || self.labels.len() == self.points.len(),
            "{} labels for {} points",
            self.labels.len(),
            self.points.len()
        );
        ensure!(
            self.hollow.is_empty() || self.hollow.len() == self.points.len(),
            "{} hollow marks for {} points",
            self.hollow.len(),
            self.points.len()
        );
        Ok(())
    }

    fn draw(&self, area: &Area, theme: &Theme) -> Result<()> {
        let finite = |p: &&(f64, f64)| p.0.is_finite() && p.1.is_finite();
        let shown = || self.points.iter().filter(finite);
        ensure!(shown().next().is_some(), "no finite points to plot");
        let range = |f: fn(&(f64, f64)) -> f64| {
            let (lo, hi) = shown()
                .map(f)
                .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
                    (lo.min(v), hi.max(v))
                });
            padded(lo, hi, 0.06)
        };
        let ((mut x_lo, mut x_hi), (mut y_lo, mut y_hi)) = (range(|p| p.0), range(|p| p.1));
        if let Some((lo, hi)) = self.y_range {
            let data = shown().map(|p| p.1);
            (y_lo, y_hi) = padded(
                data.clone().fold(lo, f64::min),
                data.fold(hi, f64::max),
                0.04,
            );
        }
        let ticks = if self.x_ticks.is_empty() {
            Ticks::Linear
        } else {
            // Every category keeps its slot, with or without points.
            for (x, _) in &self.x_ticks {
                (x_lo, x_hi) = (x_lo.min(x - 0.5), x_hi.max(x + 0.5));
            }
            Ticks::Fixed(self.x_ticks.clone())
        };
        let x = Axis {
            lo: x_lo,
            hi: x_hi,
            ticks,
            label: self.x_label.clone(),
        };
        let y = Axis {
            lo: y_lo,
            hi: y_hi,
            ticks: Ticks::Linear,
            label: self.y_label.clone(),
        };
        let chart = axes(area, x, y, Grid::Both, theme)?;
        let plot = chart.plotting_area();

        let radius = (theme.tick / 4.0).round().max(2.0) as i32;
        for (i, &p) in self.points.iter().enumerate() {
            if !finite(&&p) {
                continue;
            }
            let style = if self.hollow.get(i).copied().unwrap_or(false) {
                BASE.mix(0.8).stroke_width(1)
            } else {
                BASE.mix(0.8).filled()
            };
            plot.draw(&Circle::new(p, radius, style))?;
        }
        if !self.labels.is_empty() {
            let style = Theme::font(theme.tick * 0.8).pos(Pos::new(HPos::Left, VPos::Bottom));
            let (pixels, base) = (plot.strip_coord_spec(), plot.get_base_pixel());
            for (p, label) in self
                .points
                .iter()
                .zip(&self.labels)
                .filter(|(p, _)| finite(p))
            {
                let (x, y) = chart.backend_coord(p);
                pixels.draw_text(label, &style, (x + radius - base.0, y - radius - base.1))?;
            }
        }
        frame(area, &chart, theme)
    }
}
