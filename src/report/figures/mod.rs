//! The figures of one analysis, as PNG files beside `analysis.json`: one function per figure,
//! each returning the figure with the caption its numbers give it (`None` when it does not
//! apply to the run).

mod algorithm;
mod attention;
mod captions;
mod embedding;
mod neurons;
mod quantised;
mod training;

use std::path::PathBuf;

use anyhow::Result;
use nalgebra::DMatrix;

use super::Analysis;
use crate::plot::{self, ColorScale, Heatmap, LineChart, Series};

/// A written figure, what it shows and what its numbers say.
pub struct Figure {
    pub file: String,
    pub title: String,
    pub caption: String,
}

impl Figure {
    fn new(file: &str, title: &str, caption: impl Into<String>) -> Figure {
        Figure {
            file: file.into(),
            title: title.into(),
            caption: caption.into(),
        }
    }

    fn path(&self, an: &Analysis) -> PathBuf {
        an.out_dir.join(&self.file)
    }
}

/// What a figure function returns.
type Drawn = Result<Option<Figure>>;

/// Every figure of the analysis, in the report's order.
pub fn write_all(an: &Analysis) -> Result<Vec<Figure>> {
    let figures: [fn(&Analysis) -> Drawn; 21] = [
        training::training_curves,
        attention::attention_mean,
        attention::attention_grid,
        neurons::activations,
        embedding::singular_values,
        embedding::principal_components,
        embedding::fourier_basis,
        embedding::embedding_fourier,
        embedding::embedding_fourier_norms,
        embedding::key_frequency_dot_products,
        embedding::key_frequencies,
        neurons::fourier_2d,
        neurons::frequency_fractions,
        neurons::max_fraction,
        neurons::clusters,
        neurons::clustered_vs_threshold,
        algorithm::frequency_ablations,
        quantised::patterns,
        quantised::composed,
        training::progress_measures,
        algorithm::clock_pizza,
    ];
    figures
        .iter()
        .filter_map(|draw| draw(an).transpose())
        .collect()
}

const PANEL: (u32, u32) = (560, 440);
const WIDE: (u32, u32) = (900, 440);

fn ticks(labels: &[String]) -> Vec<(usize, String)> {
    labels.iter().cloned().enumerate().collect()
}

fn numbered(n: usize) -> Vec<(usize, String)> {
    (0..n).map(|i| (i, i.to_string())).collect()
}

fn freq_labels(k: usize) -> Vec<String> {
    (1..=k).map(|f| f.to_string()).collect()
}

/// The bar indices (0-based) of the key frequencies.
fn key_indices(an: &Analysis) -> Vec<usize> {
    an.summary.key_frequencies.iter().map(|f| f - 1).collect()
}

fn series(label: &str, points: Vec<(f64, f64)>) -> Series {
    Series {
        label: label.into(),
        points,
        dashed: false,
        colour: None,
    }
}

fn dashed(label: &str, points: Vec<(f64, f64)>) -> Series {
    Series {
        label: label.into(),
        points,
        dashed: true,
        colour: None,
    }
}

/// Row-major values of a matrix.
fn row_major(m: &DMatrix<f64>) -> Vec<f64> {
    m.transpose().iter().copied().collect()
}

/// Line charts without the series that have no points (e.g. the transpose split of runs that
/// predate it).
pub(super) fn line_charts(
    path: &std::path::Path,
    panels: &[LineChart],
    columns: usize,
    size: (u32, u32),
) -> Result<()> {
    let mut panels = panels.to_vec();
    for panel in &mut panels {
        panel.series.retain(|s| !s.points.is_empty());
    }
    plot::line_charts(path, &panels, columns, size)
}

fn grid_panel(title: String, values: &[f64], p: usize, scale: ColorScale) -> Heatmap<'_> {
    Heatmap {
        title,
        values,
        rows: p,
        cols: p,
        x_label: "b".into(),
        y_label: "a".into(),
        x_ticks: numbered(p),
        y_ticks: numbered(p),
        scale,
    }
}

/// viridis between the `tail` and `1 − tail` quantiles of the finite values, so that one outlier
/// does not wash out the rest.
fn percentile_scale(values: &[f64], tail: f64) -> ColorScale {
    let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return ColorScale::Sequential;
    }
    v.sort_by(f64::total_cmp);
    let at = |q: f64| v[((v.len() - 1) as f64 * q).round() as usize];
    ColorScale::Fixed {
        lo: at(tail),
        hi: at(1.0 - tail),
        mark: None,
    }
}

/// What the neuron-logit map is for this model, as its figures title it.
pub(super) fn logit_map_name(c: &crate::model::ModelConfig) -> &'static str {
    match (c.weights == crate::model::Weights::F32, c.final_norm) {
        (true, false) => "W_L = W_out W_U",
        (true, true) => "W_L = W_out diag(g) W_U",
        (false, false) => "W_L = Qw(W_out) W_U",
        (false, true) => "W_L = Qw(W_out) diag(g) W_U",
    }
}
