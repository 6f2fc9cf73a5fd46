//! Paper-style PNG figures, rendered headless: heatmaps, line charts, bar charts and scatter
//! plots, each laid out as a facet grid of equally sized panels.
//!
//! Every function takes the output path, the panels, the number of grid columns and the size of
//! one panel in pixels; the image is `columns * panel_w` by `ceil(panels / columns) * panel_h`
//! pixels, with unused grid cells left white. Text uses the embedded DejaVu Sans, so no system
//! fonts are needed. The PNG is rendered to a temporary file beside `path` and renamed over it,
//! so a crash never leaves a half-written figure. Inconsistent input is an error, not a panic.

mod axes;
mod bar;
mod colour;
mod figure;
mod heatmap;
mod legend;
mod line;
mod scatter;

use std::path::Path;

use anyhow::Result;

/// How heatmap values map to colours.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub enum ColorScale {
    /// matplotlib's RdBu centred on zero, limits ±max|v|: negative red, zero white, positive blue.
    Diverging,
    /// viridis from the smallest to the largest value.
    #[default]
    Sequential,
    /// Sign patterns of binary and ternary weights: negative red, zero white, positive blue.
    Binary,
    /// viridis between fixed limits (values beyond them take the end colours), so that panels
    /// of several runs share one scale; `mark` is a value labelled on the colour bar (a
    /// threshold).
    Fixed { lo: f64, hi: f64, mark: Option<f64> },
}

/// One matrix, drawn like `imshow`: row 0 at the top, column 0 at the left.
#[derive(Clone, Debug, Default)]
pub struct Heatmap<'a> {
    pub title: String,
    /// Row-major, `rows * cols` values; NaN (or infinite) cells are drawn grey.
    pub values: &'a [f64],
    pub rows: usize,
    pub cols: usize,
    pub x_label: String,
    pub y_label: String,
    /// Column index -> label (e.g. "cos 14"). Empty: column indices at round steps.
    pub x_ticks: Vec<(usize, String)>,
    /// Row index -> label. Empty: row indices at round steps.
    pub y_ticks: Vec<(usize, String)>,
    pub scale: ColorScale,
}

/// One line of a line chart.
#[derive(Clone, Debug, Default)]
pub struct Series {
    pub label: String,
    /// (x, y) in drawing order; non-finite points are skipped.
    pub points: Vec<(f64, f64)>,
    pub dashed: bool,
    /// Palette index; `None` takes the series' position. Lets related series share a colour.
    pub colour: Option<usize>,
}

#[derive(Clone, Debug, Default)]
pub struct LineChart {
    pub title: String,
    pub x_label: String,
    pub y_label: String,
    /// Log10 y axis; non-positive values are dropped.
    pub log_y: bool,
    /// Coloured from a fixed palette in order; a legend appears with more than one series (or
    /// with spans, which it also lists).
    pub series: Vec<Series>,
    /// Dashed vertical markers at x, labelled along the line (e.g. "memorised", "grokked").
    pub vlines: Vec<(f64, String)>,
    /// Shaded x ranges named in the legend (e.g. the phases of grokking).
    pub spans: Vec<(f64, f64, String)>,
    /// Fixed y limits in data units; otherwise the data range plus a margin.
    pub y_range: Option<(f64, f64)>,
}

#[derive(Clone, Debug, Default)]
pub struct BarChart {
    pub title: String,
    pub x_label: String,
    pub y_label: String,
    /// One per bar, shown under it (thinned when they do not fit).
    pub labels: Vec<String>,
    /// Non-finite values (and non-positive ones on a log axis) leave their slot empty.
    pub values: Vec<f64>,
    /// Indices of bars drawn in the accent colour.
    pub highlight: Vec<usize>,
    pub log_y: bool,
}

#[derive(Clone, Debug, Default)]
pub struct Scatter {
    pub title: String,
    pub x_label: String,
    pub y_label: String,
    /// Non-finite points are skipped.
    pub points: Vec<(f64, f64)>,
    /// Empty, or one text per point drawn beside it.
    pub labels: Vec<String>,
    /// Empty (every point filled), or per point whether it is drawn hollow (e.g. a run that
    /// did not generalise beside those that did).
    pub hollow: Vec<bool>,
    /// Categorical x axis: labels at these positions (e.g. a strip plot's groups at 0, 1, ...);
    /// empty: round numbers.
    pub x_ticks: Vec<(f64, String)>,
    /// Fixed y limits, widened to the data if it falls outside; otherwise the data range plus
    /// a margin.
    pub y_range: Option<(f64, f64)>,
}

/// Heatmaps in a grid, each with its own colour bar labelled with its limits.
pub fn heatmaps(
    path: &Path,
    panels: &[Heatmap],
    columns: usize,
    panel_size: (u32, u32),
) -> Result<()> {
    figure::render(path, panels, columns, panel_size)
}

pub fn line_charts(
    path: &Path,
    panels: &[LineChart],
    columns: usize,
    panel_size: (u32, u32),
) -> Result<()> {
    figure::render(path, panels, columns, panel_size)
}

pub fn bar_charts(
    path: &Path,
    panels: &[BarChart],
    columns: usize,
    panel_size: (u32, u32),
) -> Result<()> {
    figure::render(path, panels, columns, panel_size)
}

pub fn scatters(
    path: &Path,
    panels: &[Scatter],
    columns: usize,
    panel_size: (u32, u32),
) -> Result<()> {
    figure::render(path, panels, columns, panel_size)
}
