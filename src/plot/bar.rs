//! Bar charts over named categories (frequencies, neurons, heads).

use anyhow::{ensure, Result};
use plotters::prelude::*;

use super::axes::{axes, frame, padded, Axis, Grid, Ticks};
use super::colour::{ACCENT, BASE};
use super::figure::{Area, Panel, Theme};
use super::BarChart;

impl Panel for BarChart {
    fn title(&self) -> &str {
        &self.title
    }

    fn check(&self) -> Result<()> {
        ensure!(
            !self.values.is_empty(),
            "a bar chart needs at least one bar"
        );
        ensure!(
            self.labels.len() == self.values.len(),
            "{} labels for {} bars",
            self.labels.len(),
            self.values.len()
        );
        if let Some(i) = self.highlight.iter().find(|&&i| i >= self.values.len()) {
            anyhow::bail!(
                "highlighted bar {i} but there are {} bars",
                self.values.len()
            );
        }
        Ok(())
    }

    fn draw(&self, area: &Area, theme: &Theme) -> Result<()> {
        // Bars the axis cannot show (non-finite, or non-positive on a log axis) are left out.
        let heights: Vec<Option<f64>> = self
            .values
            .iter()
            .map(|&v| match (v.is_finite(), self.log_y) {
                (true, false) => Some(v),
                (true, true) if v > 0.0 => Some(v.log10()),
                _ => None,
            })
            .collect();
        let shown = || heights.iter().flatten().copied();
        ensure!(
            shown().next().is_some(),
            "no finite{} values to plot",
            if self.log_y { " positive" } else { "" }
        );
        let (lo, hi) = shown().fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
            (lo.min(v), hi.max(v))
        });
        // Linear bars grow from zero, which stays on the axis; log bars grow from the axis bottom.
        let (y_lo, y_hi) = if self.log_y {
            padded(lo - 0.1 * (hi - lo).max(1.0), hi, 0.05)
        } else {
            let (lo, hi) = (lo.min(0.0), hi.max(0.0));
            let (plo, phi) = padded(lo, hi, 0.05);
            // All zero: show the zero line at the bottom rather than an empty range.
            (
                if lo < 0.0 { plo } else { 0.0 },
                if hi > 0.0 || lo == 0.0 { phi } else { 0.0 },
            )
        };
        let base = if self.log_y { y_lo } else { 0.0 };

        let n = self.values.len();
        let ticks = self
            .labels
            .iter()
            .enumerate()
            .map(|(i, l)| (i as f64, l.clone()))
            .collect();
        let x = Axis {
            lo: -0.5,
            hi: n as f64 - 0.5,
            ticks: Ticks::Fixed(ticks),
            label: self.x_label.clone(),
        };
        let mut y = Axis::values(y_lo, y_hi, self.log_y, &self.y_label);
        // Counts get whole-number ticks: no "1.5 neurons".
        if !self.log_y
            && self
                .values
                .iter()
                .all(|v| !v.is_finite() || v.fract() == 0.0)
        {
            y.ticks = Ticks::Whole;
        }
        let chart = axes(area, x, y, Grid::Horizontal, theme)?;
        let plot = chart.plotting_area();
        // Bars keep a visible gap between neighbours until they become only a pixel or two wide.
        let half = if plot.dim_in_pixel().0 as f64 / n as f64 >= f64::from(theme.px(4.0)) {
            0.4
        } else {
            0.5
        };
        for (i, h) in heights.iter().enumerate() {
            if let Some(h) = h {
                let colour = if self.highlight.contains(&i) {
                    ACCENT
                } else {
                    BASE
                };
                let x = i as f64;
                plot.draw(&Rectangle::new(
                    [(x - half, base), (x + half, *h)],
                    colour.filled(),
                ))?;
            }
        }
        frame(area, &chart, theme)
    }
}
