//! A legend box placed, like matplotlib's `loc="best"`, in the plot corner that hides the fewest
//! data pixels.

use anyhow::Result;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::figure::{Area, Theme};

/// How an entry is drawn next to its label.
pub(super) enum Swatch {
    Line { colour: RGBColor, dashed: bool },
    Fill(RGBAColor),
}

/// Draws `entries` inside `plot` (a plotting area without coordinates), avoiding the pixels in
/// `occupied` as far as matplotlib's nine candidate places allow.
pub(super) fn legend(
    plot: &Area,
    entries: &[(String, Swatch)],
    occupied: &[(i32, i32)],
    theme: &Theme,
) -> Result<()> {
    let font = Theme::font(theme.tick);
    let pad = theme.pad();
    let row = (theme.tick * 1.5).round() as i32;
    let swatch = (theme.tick * 2.2).round() as i32;
    let text_w = entries
        .iter()
        .map(|(l, _)| plot.estimate_text_size(l, &font).map_or(0, |s| s.0 as i32))
        .max()
        .unwrap_or(0);
    let (bw, bh) = (
        3 * pad + swatch + text_w + pad,
        row * entries.len() as i32 + pad,
    );
    let (w, h) = plot.dim_in_pixel();
    let (w, h) = (w as i32, h as i32);

    // matplotlib's `loc="best"` candidates, in its order of preference among equally good
    // places: the corners, then the middles of the edges, then the centre.
    let (cx, cy) = ((w - bw) / 2, (h - bh) / 2);
    let corners = [
        (w - bw - pad, pad),
        (pad, pad),
        (pad, h - bh - pad),
        (w - bw - pad, h - bh - pad),
        (w - bw - pad, cy),
        (pad, cy),
        (cx, h - bh - pad),
        (cx, pad),
        (cx, cy),
    ];
    let hidden = |&(x, y): &(i32, i32)| {
        occupied
            .iter()
            .filter(|p| (x..x + bw).contains(&p.0) && (y..y + bh).contains(&p.1))
            .count()
    };
    let (x, y) = corners
        .iter()
        .copied()
        .min_by_key(hidden)
        .unwrap_or((pad, pad));

    plot.draw(&Rectangle::new(
        [(x, y), (x + bw, y + bh)],
        WHITE.mix(0.85).filled(),
    ))?;
    plot.draw(&Rectangle::new(
        [(x, y), (x + bw, y + bh)],
        theme.stroke(RGBColor(160, 160, 160), 1.0),
    ))?;
    let style = font.pos(Pos::new(HPos::Left, VPos::Center));
    for (i, (label, kind)) in entries.iter().enumerate() {
        let cy = y + pad / 2 + row * i as i32 + row / 2;
        let (x0, x1) = (x + pad, x + pad + swatch);
        match kind {
            Swatch::Line {
                colour,
                dashed: false,
            } => {
                plot.draw(&PathElement::new(
                    vec![(x0, cy), (x1, cy)],
                    theme.stroke(colour, 2.0),
                ))?;
            }
            Swatch::Line {
                colour,
                dashed: true,
            } => {
                let dash = (swatch / 5).max(2);
                for start in (x0..x1).step_by(2 * dash as usize) {
                    let end = (start + dash).min(x1);
                    plot.draw(&PathElement::new(
                        vec![(start, cy), (end, cy)],
                        theme.stroke(colour, 2.0),
                    ))?;
                }
            }
            Swatch::Fill(colour) => {
                let half = row / 3;
                plot.draw(&Rectangle::new(
                    [(x0, cy - half), (x1, cy + half)],
                    colour.filled(),
                ))?;
            }
        }
        plot.draw_text(label, &style, (x1 + pad, cy))?;
    }
    Ok(())
}

/// Pixels along a polyline, about every other pixel, so that sparse series still count as
/// occupying the space between their points.
pub(super) fn trace(points: &[(i32, i32)]) -> Vec<(i32, i32)> {
    let mut out = points.first().copied().into_iter().collect::<Vec<_>>();
    for pair in points.windows(2) {
        let ((x0, y0), (x1, y1)) = (pair[0], pair[1]);
        let steps = ((x1 - x0).abs().max((y1 - y0).abs()) / 2).max(1);
        out.extend((1..=steps).map(|s| (x0 + (x1 - x0) * s / steps, y0 + (y1 - y0) * s / steps)));
    }
    out
}
