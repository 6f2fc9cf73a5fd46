//! What every figure shares: the embedded font, text sizes, the facet grid with one title band per
//! panel, and the atomic PNG write.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

use anyhow::{ensure, Context, Result};
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use plotters::style::FontStyle;

pub(super) type Area<'b> = DrawingArea<BitMapBackend<'b>, Shift>;

/// DejaVu Sans ships with the crate so that figures render the same on headless machines without
/// system fonts: plotters' ab_glyph backend only knows fonts registered with it.
static FONT: &[u8] = include_bytes!("../../assets/DejaVuSans.ttf");
const FAMILY: &str = "sans-serif";

/// Below this a panel has no room for a title, tick labels and a plot.
const MIN_PANEL: (u32, u32) = (160, 120);
/// Keeps a typo in `columns` or `panel_size` from asking for gigabytes of memory.
const MAX_PIXELS: u64 = 16 << 20;
/// Figures are drawn this many times larger and averaged down: plotters' bitmap backend draws
/// lines and shapes without antialiasing, and supersampling smooths them.
const SUPERSAMPLE: u32 = 2;

/// One panel of a facet grid.
pub(super) trait Panel {
    fn title(&self) -> &str;
    /// Rejects inconsistent input before any file is touched.
    fn check(&self) -> Result<()>;
    /// Draws into the panel's area below its title band.
    fn draw(&self, area: &Area, theme: &Theme) -> Result<()>;
}

/// Sizes for drawing, shared by all panels of a figure. Everything is in drawing pixels, which
/// are `SUPERSAMPLE` times smaller than the pixels of the PNG: text sizes are already scaled,
/// other lengths go through `px`.
#[derive(Clone, Copy, Debug)]
pub(super) struct Theme {
    pub title: f64,
    pub label: f64,
    pub tick: f64,
    scale: f64,
}

impl Theme {
    fn for_panel((w, h): (u32, u32), scale: u32) -> Self {
        // Text grows with the square root of the panel so that small panels stay legible and
        // large ones do not shout.
        let scale = f64::from(scale);
        let s = (f64::from(w.min(h)) / 360.0).sqrt().clamp(0.85, 1.8) * scale;
        Self {
            title: 17.0 * s,
            label: 14.0 * s,
            tick: 12.0 * s,
            scale,
        }
    }

    pub fn font(size: f64) -> TextStyle<'static> {
        (FAMILY, size).into_font().color(&BLACK)
    }

    #[cfg(test)]
    pub fn for_tests() -> Self {
        Self::for_panel((360, 360), 1)
    }

    /// A length of `n` output pixels in drawing pixels.
    pub fn px(&self, n: f64) -> i32 {
        (n * self.scale).round() as i32
    }

    /// A line `width` output pixels wide.
    pub fn stroke<C: Color>(&self, colour: C, width: f64) -> ShapeStyle {
        colour.stroke_width(self.px(width).max(1) as u32)
    }

    /// The gap between neighbouring pieces of text and lines.
    pub fn pad(&self) -> i32 {
        (self.tick * 0.5).round() as i32
    }
}

/// Draws `panels` into a `columns`-wide grid of `panel_size` cells and writes it to `path` as a
/// PNG, all or nothing.
pub(super) fn render<P: Panel>(
    path: &Path,
    panels: &[P],
    columns: usize,
    panel_size: (u32, u32),
) -> Result<()> {
    ensure!(!panels.is_empty(), "no panels to plot");
    ensure!(columns > 0, "a figure needs at least one column");
    ensure!(
        panel_size.0 >= MIN_PANEL.0 && panel_size.1 >= MIN_PANEL.1,
        "panels of {}x{} px are too small, the minimum is {}x{}",
        panel_size.0,
        panel_size.1,
        MIN_PANEL.0,
        MIN_PANEL.1
    );
    let rows = panels.len().div_ceil(columns);
    let size = figure_size((columns, rows), panel_size)?;
    for (i, panel) in panels.iter().enumerate() {
        panel.check().with_context(|| describe(i, panel))?;
    }
    register_font()?;

    let tmp = temp_path(path)?;
    let pixels = draw_grid(
        size,
        (rows, columns),
        panels,
        &Theme::for_panel(panel_size, SUPERSAMPLE),
    )?;
    let written = write_png(&tmp, size, &pixels).and_then(|()| {
        fs::rename(&tmp, path)
            .with_context(|| format!("cannot move the figure to {}", path.display()))
    });
    if written.is_err() {
        // Best effort: the temp file may not even exist yet.
        let _ = fs::remove_file(&tmp);
    }
    written
}

/// The figure's RGB pixels at `size`, drawn supersampled.
fn draw_grid<P: Panel>(
    size: (u32, u32),
    grid: (usize, usize),
    panels: &[P],
    theme: &Theme,
) -> Result<Vec<u8>> {
    let (w, h) = (size.0 * SUPERSAMPLE, size.1 * SUPERSAMPLE);
    let mut big = vec![0; w as usize * h as usize * 3];
    {
        let root = BitMapBackend::with_buffer(&mut big, (w, h)).into_drawing_area();
        root.fill(&WHITE)?;
        for (i, (cell, panel)) in root.split_evenly(grid).iter().zip(panels).enumerate() {
            let body = title_band(cell, panel.title(), theme)?;
            panel
                .draw(&body, theme)
                .with_context(|| describe(i, panel))?;
        }
        root.present()?;
    }
    Ok(downsample(&big, size))
}

/// Averages each `SUPERSAMPLE` x `SUPERSAMPLE` block of `big` into one pixel of `size`.
fn downsample(big: &[u8], (w, h): (u32, u32)) -> Vec<u8> {
    let (w, h, s) = (w as usize, h as usize, SUPERSAMPLE as usize);
    let n = (s * s) as u32;
    let mut out = vec![0; w * h * 3];
    for y in 0..h {
        for x in 0..w {
            for c in 0..3 {
                let sum: u32 = (0..s)
                    .flat_map(|dy| {
                        (0..s).map(move |dx| ((y * s + dy) * w * s + x * s + dx) * 3 + c)
                    })
                    .map(|i| u32::from(big[i]))
                    .sum();
                out[(y * w + x) * 3 + c] = ((sum + n / 2) / n) as u8;
            }
        }
    }
    out
}

fn write_png(tmp: &Path, size: (u32, u32), pixels: &[u8]) -> Result<()> {
    let mut backend = BitMapBackend::new(tmp, size);
    backend.blit_bitmap((0, 0), size, pixels)?;
    backend
        .present()
        .with_context(|| format!("cannot write {}", tmp.display()))?;
    Ok(())
}

/// Draws the title and returns the area below it. The band is reserved even for an empty title
/// so that panels of a grid line up.
fn title_band<'b>(cell: &Area<'b>, title: &str, theme: &Theme) -> Result<Area<'b>> {
    let band = (theme.title * 1.6).round() as u32;
    let (top, body) = cell.split_vertically(band);
    let (w, h) = top.dim_in_pixel();
    // Long titles shrink to fit the panel rather than run into their neighbours.
    let room = f64::from(w) - 4.0 * f64::from(theme.pad());
    let natural = top.estimate_text_size(title, &Theme::font(theme.title))?.0;
    let size = theme.title * (room / f64::from(natural.max(1))).min(1.0);
    let style = Theme::font(size).pos(Pos::new(HPos::Center, VPos::Center));
    top.draw_text(
        title,
        &style,
        (w as i32 / 2, h as i32 / 2 + theme.pad() / 2),
    )?;
    Ok(body)
}

fn register_font() -> Result<()> {
    static REGISTERED: OnceLock<bool> = OnceLock::new();
    let ok = *REGISTERED
        .get_or_init(|| plotters::style::register_font(FAMILY, FontStyle::Normal, FONT).is_ok());
    ensure!(ok, "the embedded DejaVuSans.ttf could not be parsed");
    Ok(())
}

fn figure_size((columns, rows): (usize, usize), (w, h): (u32, u32)) -> Result<(u32, u32)> {
    let side = |n: usize, px: u32| u32::try_from(n).ok().and_then(|n| n.checked_mul(px));
    let size = side(columns, w).zip(side(rows, h));
    size.filter(|&(w, h)| u64::from(w) * u64::from(h) <= MAX_PIXELS)
        .with_context(|| {
            format!(
                "{columns}x{rows} panels of {w}x{h} px exceed {} megapixels",
                MAX_PIXELS >> 20
            )
        })
}

/// A sibling of `path`, so the final rename stays on one file system and is atomic. It ends in
/// `.png` because the encoder picks the format from the extension.
fn temp_path(path: &Path) -> Result<PathBuf> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let name = path
        .file_name()
        .with_context(|| format!("{} is not a file path", path.display()))?;
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    Ok(path.with_file_name(format!(
        ".{}.{}-{n}.tmp.png",
        name.to_string_lossy(),
        std::process::id()
    )))
}

fn describe<P: Panel>(index: usize, panel: &P) -> String {
    format!("panel {index} ({:?})", panel.title())
}
