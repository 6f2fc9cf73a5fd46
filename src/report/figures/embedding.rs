//! The embedding: its spectrum, principal components and Fourier components, and the key
//! frequencies.

use super::{
    dashed, freq_labels, key_indices, line_charts, logit_map_name, numbered, row_major, series,
    ticks, Analysis, Drawn, Figure, PANEL, WIDE,
};
use crate::plot::{self, BarChart, ColorScale, Heatmap, LineChart, Scatter};

/// W_E's spectrum against a Gaussian control.
pub(super) fn singular_values(an: &Analysis) -> Drawn {
    let fig = Figure::new(
        "embedding_singular_values.png",
        "Singular values of W_E against a Gaussian control",
        "A spectrum that drops after a few pairs of values (against the flat Gaussian control) means W_E lives in a low-dimensional subspace.",
    );
    let sv = |v: &[f64]| {
        v.iter()
            .enumerate()
            .map(|(i, &x)| (i as f64 + 1.0, x))
            .collect::<Vec<_>>()
    };
    line_charts(
        &fig.path(an),
        &[LineChart {
            title: "Singular values of W_E (numbers 0..p-1)".into(),
            x_label: "index".into(),
            y_label: "singular value".into(),
            log_y: false,
            series: vec![
                series("W_E", sv(&an.summary.embedding_singular_values)),
                dashed(
                    "Gaussian control",
                    sv(&an.summary.gaussian_control_singular_values),
                ),
            ],
            ..Default::default()
        }],
        1,
        PANEL,
    )?;
    Ok(Some(fig))
}

/// W_E's top principal components.
pub(super) fn principal_components(an: &Analysis) -> Drawn {
    let s = &an.snapshot;
    let p = s.config.p;
    let fig = Figure::new(
        "embedding_principal_components.png",
        "Top principal components of the embedding",
        "Tokens placed on a circle in a pair of principal components are a clock representation of the number.",
    );
    let pcs = &s.principal_components;
    let pc_panel = |i: usize, j: usize| Scatter {
        title: format!("W_E: PC {} vs PC {}", i + 1, j + 1),
        x_label: format!("PC {}", i + 1),
        y_label: format!("PC {}", j + 1),
        points: (0..p).map(|t| (pcs[(t, i)], pcs[(t, j)])).collect(),
        labels: (0..p).map(|t| t.to_string()).collect(),
        hollow: Vec::new(),
        ..Default::default()
    };
    let mut pc_panels = vec![pc_panel(0, 1)];
    if pcs.ncols() >= 4 {
        pc_panels.push(pc_panel(2, 3));
    }
    plot::scatters(&fig.path(an), &pc_panels, 2, PANEL)?;
    Ok(Some(fig))
}

/// The Fourier basis.
pub(super) fn fourier_basis(an: &Analysis) -> Drawn {
    let s = &an.snapshot;
    let p = s.config.p;
    let fig = Figure::new(
        "fourier_basis.png",
        "The Fourier basis",
        "The basis: the constant, then cos k and sin k for k = 1..⌊p/2⌋, each normalised (for even p the last frequency, p/2, has a cosine only).",
    );
    let basis_values = row_major(&s.basis.matrix);
    plot::heatmaps(
        &fig.path(an),
        &[Heatmap {
            title: "Fourier basis".into(),
            values: &basis_values,
            rows: p,
            cols: p,
            x_label: "input x".into(),
            y_label: "component".into(),
            x_ticks: numbered(p),
            y_ticks: ticks(&s.basis.labels),
            scale: ColorScale::Diverging,
        }],
        1,
        (700, 640),
    )?;
    Ok(Some(fig))
}

/// W_E in the Fourier basis.
pub(super) fn embedding_fourier(an: &Analysis) -> Drawn {
    let s = &an.snapshot;
    let c = &s.config;
    let fig = Figure::new(
        "embedding_fourier.png",
        "W_E in the Fourier basis",
        "W_E in the Fourier basis: a sparse set of bright rows means the embedding uses a few frequencies.",
    );
    let ef = row_major(&s.embed_fourier);
    plot::heatmaps(
        &fig.path(an),
        &[Heatmap {
            title: "W_E in the Fourier basis".into(),
            values: &ef,
            rows: c.p,
            cols: c.d_model,
            x_label: "residual dimension".into(),
            y_label: "Fourier component".into(),
            x_ticks: numbered(c.d_model),
            y_ticks: ticks(&s.basis.labels),
            scale: ColorScale::Diverging,
        }],
        1,
        (760, 640),
    )?;
    Ok(Some(fig))
}

/// The norm of each frequency of W_E.
pub(super) fn embedding_fourier_norms(an: &Analysis) -> Drawn {
    let s = &an.snapshot;
    let k = s.basis.num_frequencies();
    let key_idx = key_indices(an);
    let fig = Figure::new(
        "embedding_fourier_norms.png",
        "Norm of each Fourier component of W_E (key frequencies highlighted)",
        format!(
            "Key frequencies (highlighted): {}.",
            crate::report::text::list(&an.summary.key_frequencies)
        ),
    );
    let norm_chart = |title: &str, norms: &[f64]| BarChart {
        title: title.into(),
        x_label: "frequency".into(),
        y_label: "norm".into(),
        labels: freq_labels(k),
        values: norms.to_vec(),
        highlight: key_idx.clone(),
        log_y: false,
    };
    plot::bar_charts(
        &fig.path(an),
        &[norm_chart(
            "Fourier component norms of W_E",
            &s.embedding_norms,
        )],
        1,
        WIDE,
    )?;
    Ok(Some(fig))
}

/// Dot products of the key-frequency components of W_E.
pub(super) fn key_frequency_dot_products(an: &Analysis) -> Drawn {
    let s = &an.snapshot;
    let keys = &an.summary.key_frequencies;
    if keys.is_empty() {
        return Ok(None);
    }
    let fig = Figure::new(
        "key_frequency_dot_products.png",
        "Dot products of the key-frequency components of W_E",
        "Dot products between the key-frequency directions of W_E: near-diagonal means the frequencies occupy separate subspaces.",
    );
    let rows: Vec<usize> = keys.iter().flat_map(|&f| s.basis.rows_of(f)).collect();
    let sub = s.embed_fourier.select_rows(rows.iter());
    let dots = row_major(&(&sub * sub.transpose()));
    let names: Vec<String> = rows.iter().map(|&r| s.basis.labels[r].clone()).collect();
    plot::heatmaps(
        &fig.path(an),
        &[Heatmap {
            title: "Key-frequency components of W_E: dot products".into(),
            values: &dots,
            rows: rows.len(),
            cols: rows.len(),
            x_label: "component".into(),
            y_label: "component".into(),
            x_ticks: ticks(&names),
            y_ticks: ticks(&names),
            scale: ColorScale::Diverging,
        }],
        1,
        PANEL,
    )?;
    Ok(Some(fig))
}

/// The key frequencies and their evidence.
pub(super) fn key_frequencies(an: &Analysis) -> Drawn {
    let s = &an.snapshot;
    let c = &s.config;
    let k = s.basis.num_frequencies();
    let key_idx = key_indices(an);
    let fig = Figure::new(
        "key_frequencies.png",
        "Key frequencies: energy share of W_E and of the neuron-logit map",
        format!("Rule: {}", an.summary.key_frequency_rule),
    );
    let share_chart = |title: &str, v: &[f64]| BarChart {
        title: title.into(),
        x_label: "frequency".into(),
        y_label: "share of energy".into(),
        labels: freq_labels(k),
        values: v.to_vec(),
        highlight: key_idx.clone(),
        log_y: false,
    };
    plot::bar_charts(
        &fig.path(an),
        &[
            share_chart(
                "W_E: share of Fourier energy",
                &an.summary.embedding_energy_share,
            ),
            share_chart(
                &format!("{}: share of Fourier energy", logit_map_name(c)),
                &an.summary.logit_map_energy_share,
            ),
        ],
        1,
        WIDE,
    )?;
    Ok(Some(fig))
}
