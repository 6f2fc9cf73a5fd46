//! Heatmaps: a matrix drawn like matplotlib's `imshow` (row 0 at the top), with a colour bar.

use std::ops::Range;

use anyhow::{ensure, Result};
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::axes::{axes, format_number, frame, Axis, Grid, Ticks};
use super::colour::{ColourMap, NEGATIVE, POSITIVE};
use super::figure::{Area, Panel, Theme};
use super::{ColorScale, Heatmap};

impl Panel for Heatmap<'_> {
    fn title(&self) -> &str {
        &self.title
    }

    fn check(&self) -> Result<()> {
        ensure!(
            self.rows > 0 && self.cols > 0,
            "a heatmap needs at least one cell, got {}x{}",
            self.rows,
            self.cols
        );
        ensure!(
            self.rows.checked_mul(self.cols) == Some(self.values.len()),
            "{} values do not fill {} rows x {} columns",
            self.values.len(),
            self.rows,
            self.cols
        );
        let out_of_range =
            |ticks: &[(usize, String)], n: usize| ticks.iter().find(|t| t.0 >= n).map(|t| t.0);
        if let Some(i) = out_of_range(&self.x_ticks, self.cols) {
            anyhow::bail!("x tick at column {i} but there are {} columns", self.cols);
        }
        if let Some(i) = out_of_range(&self.y_ticks, self.rows) {
            anyhow::bail!("y tick at row {i} but there are {} rows", self.rows);
        }
        Ok(())
    }

    fn draw(&self, area: &Area, theme: &Theme) -> Result<()> {
        let map = ColourMap::fit(self.scale, self.values);
        let labels = bar_labels(&map);
        let tick_font = Theme::font(theme.tick);
        let label_w = labels
            .iter()
            .map(|(_, l)| area.estimate_text_size(l, &tick_font).map_or(0, |s| s.0))
            .max()
            .unwrap_or(0);
        let stripe = (theme.tick * 1.2).round() as i32;
        let pad = theme.pad();
        let bar_w = 2 * pad + stripe + theme.px(3.0) + pad + label_w as i32 + pad;
        let (w, _) = area.dim_in_pixel();
        let (main, bar) = area.split_horizontally(w as i32 - bar_w);

        // Cell i spans [i, i + 1); the y axis runs from `rows` at the bottom to 0 at the top.
        let axis = |lo: usize, hi: usize, ticks: &[(usize, String)], n: usize, label: &str| Axis {
            lo: lo as f64,
            hi: hi as f64,
            ticks: if ticks.is_empty() {
                Ticks::Index(n)
            } else {
                Ticks::Fixed(
                    ticks
                        .iter()
                        .map(|(i, l)| (*i as f64 + 0.5, l.clone()))
                        .collect(),
                )
            },
            label: label.to_string(),
        };
        let x = axis(0, self.cols, &self.x_ticks, self.cols, &self.x_label);
        let y = axis(self.rows, 0, &self.y_ticks, self.rows, &self.y_label);
        let chart = axes(&main, x, y, Grid::Off, theme)?;
        let plot = chart.plotting_area().strip_coord_spec();
        self.paint(&plot, &map)?;
        frame(&main, &chart, theme)?;

        let (_, plot_y) = plot.get_pixel_range();
        let (_, bar_y) = bar.get_pixel_range();
        let top = plot_y.start - bar_y.start;
        colour_bar(
            &bar,
            &map,
            &labels,
            (2 * pad, top),
            (stripe, plot_y.end - plot_y.start),
            theme,
        )
    }
}

impl Heatmap<'_> {
    /// Paints every pixel of the plot with the mean colour of the cells whose centres fall in it
    /// (or the one cell under it when cells are larger than pixels): nothing disappears when a
    /// 512-row matrix is squeezed into 300 pixels, and no gaps or seams appear between cells.
    fn paint(&self, plot: &Area, map: &ColourMap) -> Result<()> {
        let colours: Vec<RGBColor> = self.values.iter().map(|&v| map.colour(v)).collect();
        let (w, h) = plot.dim_in_pixel();
        let cols = pixel_cells(self.cols, w as usize);
        for (py, rows) in pixel_cells(self.rows, h as usize).into_iter().enumerate() {
            for (px, cs) in cols.iter().enumerate() {
                let mut sum = [0u32; 3];
                for r in rows.clone() {
                    for c in &colours[r * self.cols + cs.start..r * self.cols + cs.end] {
                        sum[0] += u32::from(c.0);
                        sum[1] += u32::from(c.1);
                        sum[2] += u32::from(c.2);
                    }
                }
                let n = (rows.len() * cs.len()) as u32;
                let mean = |s: u32| ((s + n / 2) / n) as u8;
                plot.draw_pixel(
                    (px as i32, py as i32),
                    &RGBColor(mean(sum[0]), mean(sum[1]), mean(sum[2])),
                )?;
            }
        }
        Ok(())
    }
}

/// For each of `pixels` pixels along an axis of `cells` cells, the cells it shows: those whose
/// centres it contains, or else the one under its centre.
fn pixel_cells(cells: usize, pixels: usize) -> Vec<Range<usize>> {
    let scale = cells as f64 / pixels as f64;
    (0..pixels)
        .map(|p| {
            let first = (p as f64 * scale - 0.5).ceil().max(0.0) as usize;
            let end = (((p + 1) as f64 * scale - 0.5).ceil().max(0.0) as usize).min(cells);
            if first < end {
                first..end
            } else {
                let nearest = (((p as f64 + 0.5) * scale) as usize).min(cells - 1);
                nearest..nearest + 1
            }
        })
        .collect()
}

/// Labels of the colour bar as (position from the bottom in 0..=1, text): its numeric ends, and
/// zero in the middle of maps centred on zero.
fn bar_labels(map: &ColourMap) -> Vec<(f64, String)> {
    let mut labels = vec![
        (0.0, format_number(map.lo, 3)),
        (1.0, format_number(map.hi, 3)),
    ];
    match map.scale {
        ColorScale::Diverging | ColorScale::Binary if map.hi > 0.0 => {
            labels.push((0.5, "0".to_string()))
        }
        ColorScale::Fixed { mark: Some(m), .. } if map.hi > map.lo => {
            labels.push((map.position(m), format_number(m, 3)))
        }
        _ => {}
    }
    labels
}

fn colour_bar(
    area: &Area,
    map: &ColourMap,
    labels: &[(f64, String)],
    (x0, y0): (i32, i32),
    (w, h): (i32, i32),
    theme: &Theme,
) -> Result<()> {
    let fraction = |row: i32| 1.0 - f64::from(row) / f64::from((h - 1).max(1));
    for row in 0..h {
        let t = fraction(row);
        let colour = match map.scale {
            // Three discrete blocks, like the values they stand for.
            ColorScale::Binary if t < 1.0 / 3.0 => NEGATIVE,
            ColorScale::Binary if t > 2.0 / 3.0 => POSITIVE,
            ColorScale::Binary => WHITE,
            _ => map.colour(map.lo + t * (map.hi - map.lo)),
        };
        area.draw(&PathElement::new(
            vec![(x0, y0 + row), (x0 + w - 1, y0 + row)],
            colour,
        ))?;
    }
    let line = theme.stroke(BLACK, 1.0);
    area.draw(&Rectangle::new([(x0, y0), (x0 + w - 1, y0 + h - 1)], line))?;
    let style = Theme::font(theme.tick).pos(Pos::new(HPos::Left, VPos::Center));
    let tick = theme.px(3.0);
    for (t, text) in labels {
        let y = y0 + ((1.0 - t) * f64::from(h - 1)).round() as i32;
        area.draw(&PathElement::new(
            vec![(x0 + w - 1, y), (x0 + w + tick, y)],
            line,
        ))?;
        area.draw_text(text, &style, (x0 + w + tick + theme.pad(), y))?;
    }
    Ok(())
}
