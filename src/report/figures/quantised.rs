//! (Bit models) the codes of every quantised matrix, and their composed product.

use nalgebra::DMatrix;

use super::{row_major, Analysis, Drawn, Figure};
use crate::model::{name_of, ModelConfig, ParamId, Weights};
use crate::plot::{self, ColorScale, Heatmap};

/// W_Q/K/V are [H, D, Dh]; shown as D x (H Dh) so heads sit side by side.
fn heads_side_by_side(c: &ModelConfig, v: &[f64]) -> Vec<f64> {
    let (d, a, dh) = (c.d_model, c.d_attn(), c.d_head);
    let mut out = vec![0.0; d * a];
    for h in 0..c.n_heads {
        for i in 0..d {
            for e in 0..dh {
                out[i * a + h * dh + e] = v[(h * d + i) * dh + e];
            }
        }
    }
    out
}

/// The sign/ternary codes of every quantised matrix.
pub(super) fn patterns(an: &Analysis) -> Drawn {
    let s = &an.snapshot;
    let c = &s.config;
    if c.weights == Weights::F32 {
        return Ok(None);
    }
    let fig = Figure::new(
        "quantised_patterns.png",
        "Sign/ternary pattern of each quantised matrix",
        "The effective weights of every quantised matrix as codes (blue +1, white 0, red −1).",
    );
    let (d, a, m) = (c.d_model, c.d_attn(), c.d_mlp);
    let codes = |id: ParamId| -> Vec<f64> {
        let q = s.effective.get(id);
        let scale = q
            .iter()
            .fold(0.0f64, |acc, x| acc.max(x.abs()))
            .max(f64::MIN_POSITIVE);
        q.iter().map(|x| (x / scale).round()).collect()
    };
    let mats: Vec<(&str, Vec<f64>, usize, usize)> = [
        ("W_Q", ParamId::WQ, d, a),
        ("W_K", ParamId::WK, d, a),
        ("W_V", ParamId::WV, d, a),
        ("W_O", ParamId::WO, a, d),
        ("W_in", ParamId::WIn, d, m),
        ("W_out", ParamId::WOut, m, d),
    ]
    .into_iter()
    .filter(|&(_, id, _, _)| c.quantises(id))
    .map(|(name, id, rows, cols)| {
        let v = codes(id);
        let per_head = matches!(id, ParamId::WQ | ParamId::WK | ParamId::WV);
        let v = if per_head {
            heads_side_by_side(c, &v)
        } else {
            v
        };
        (name, v, rows, cols)
    })
    .collect();
    if mats.is_empty() {
        return Ok(None);
    }
    let panels: Vec<Heatmap> = mats
        .iter()
        .map(|(name, v, rows, cols)| Heatmap {
            title: format!("{name} ({} codes)", name_of(c.weights)),
            values: v,
            rows: *rows,
            cols: *cols,
            x_label: "column".into(),
            y_label: "row".into(),
            x_ticks: vec![],
            y_ticks: vec![],
            scale: ColorScale::Binary,
        })
        .collect();
    plot::heatmaps(&fig.path(an), &panels, 3, (480, 420))?;
    Ok(Some(fig))
}

/// The composed linear map through the quantised V, O and MLP-in matrices.
pub(super) fn composed(an: &Analysis) -> Drawn {
    let s = &an.snapshot;
    let c = &s.config;
    if !(c.quantises(ParamId::WV) && c.quantises(ParamId::WIn)) {
        return Ok(None);
    }
    let fig = Figure::new(
        "quantised_composed_v_o_in.png",
        "Composed product of the quantised W_V, W_O and W_in",
        "The composed linear map from the residual stream through the quantised V, O and MLP-in \
         matrices (ignoring the per-token norms).",
    );
    let (d, a, m) = (c.d_model, c.d_attn(), c.d_mlp);
    let w_v = DMatrix::from_row_slice(d, a, &heads_side_by_side(c, s.effective.get(ParamId::WV)));
    let w_o = DMatrix::from_row_slice(a, d, s.effective.get(ParamId::WO));
    let w_in = DMatrix::from_row_slice(d, m, s.effective.get(ParamId::WIn));
    let composed = row_major(&(w_v * w_o * w_in));
    plot::heatmaps(
        &fig.path(an),
        &[Heatmap {
            title: "Qw(W_V) Qw(W_O) Qw(W_in)".into(),
            values: &composed,
            rows: d,
            cols: m,
            x_label: "MLP neuron".into(),
            y_label: "residual dimension".into(),
            x_ticks: vec![],
            y_ticks: vec![],
            scale: ColorScale::Diverging,
        }],
        1,
        (900, 500),
    )?;
    Ok(Some(fig))
}
