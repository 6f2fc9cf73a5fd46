//! Figures are checked by decoding the PNGs: size, colour content, where colours fall, that text
//! is drawn, and that bad input is an error that leaves no file behind.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use bitgrok::plot::{
    bar_charts, heatmaps, line_charts, scatters, BarChart, ColorScale, Heatmap, LineChart, Scatter,
    Series,
};
use image::RgbImage;

const PANEL: (u32, u32) = (320, 260);

fn load(path: &Path) -> RgbImage {
    image::open(path).expect("a decodable PNG").to_rgb8()
}

fn distinct_colours(img: &RgbImage) -> usize {
    img.pixels().map(|p| p.0).collect::<HashSet<_>>().len()
}

fn has_colour(img: &RgbImage, rgb: [u8; 3]) -> bool {
    img.pixels().any(|p| p.0 == rgb)
}

/// Clearly red, from RdBu's darkest end (103, 0, 31) to its pale pinks.
fn is_red(p: [u8; 3]) -> bool {
    let [r, g, b] = p.map(i32::from);
    r > g + 40 && r > b + 40
}

/// Clearly blue, from RdBu's darkest end (5, 48, 97) to its pale blues.
fn is_blue(p: [u8; 3]) -> bool {
    let [r, g, b] = p.map(i32::from);
    b > r + 40 && b > g + 20
}

/// Mean (x, y) of the pixels left of `max_x` that satisfy `pick`, and how many there were.
fn centroid(img: &RgbImage, max_x: u32, pick: fn([u8; 3]) -> bool) -> (f64, f64, usize) {
    let (mut sx, mut sy, mut n) = (0.0, 0.0, 0);
    for (x, y, p) in img.enumerate_pixels() {
        if x < max_x && pick(p.0) {
            sx += f64::from(x);
            sy += f64::from(y);
            n += 1;
        }
    }
    (sx / n.max(1) as f64, sy / n.max(1) as f64, n)
}

fn out(dir: &tempfile::TempDir, name: &str) -> PathBuf {
    dir.path().join(name)
}

fn files_in(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect()
}

fn heatmap<'a>(
    title: &str,
    values: &'a [f64],
    rows: usize,
    cols: usize,
    scale: ColorScale,
) -> Heatmap<'a> {
    Heatmap {
        title: title.into(),
        values,
        rows,
        cols,
        x_label: "b".into(),
        y_label: "a".into(),
        scale,
        ..Default::default()
    }
}

/// Rows x cols values: `top_left` in the upper-left quadrant, `rest` elsewhere.
fn quadrant(rows: usize, cols: usize, top_left: f64, rest: f64) -> Vec<f64> {
    (0..rows * cols)
        .map(|i| {
            if i / cols < rows / 2 && i % cols < cols / 2 {
                top_left
            } else {
                rest
            }
        })
        .collect()
}

fn curve(n: usize, f: impl Fn(f64) -> f64) -> Vec<(f64, f64)> {
    (0..n)
        .map(|i| (i as f64 * 10.0, f(i as f64 * 10.0)))
        .collect()
}

fn line_chart(title: &str) -> LineChart {
    LineChart {
        title: title.into(),
        x_label: "step".into(),
        y_label: "loss".into(),
        log_y: true,
        series: vec![
            // Zero and negative losses cannot sit on a log axis and are dropped, not an error.
            Series {
                label: "train".into(),
                points: curve(400, |x| (-x / 500.0).exp() - 1e-4),
                dashed: false,
                colour: None,
            },
            Series {
                label: "test".into(),
                points: curve(400, |x| 4.0 / (1.0 + (x / 800.0).powi(4))),
                dashed: true,
                colour: None,
            },
        ],
        vlines: vec![(900.0, "memorised".into()), (2500.0, "grokked".into())],
        spans: vec![
            (0.0, 900.0, "memorisation".into()),
            (900.0, 2500.0, "circuit formation".into()),
        ],
        y_range: None,
    }
}

fn bar_chart(title: &str) -> BarChart {
    BarChart {
        title: title.into(),
        x_label: "frequency".into(),
        y_label: "norm".into(),
        labels: (1..=56).map(|k| k.to_string()).collect(),
        values: (1..=56)
            .map(|k| {
                if k % 14 == 0 {
                    5.0
                } else {
                    0.1 + 0.01 * k as f64
                }
            })
            .collect(),
        highlight: vec![13, 27, 41],
        log_y: false,
    }
}

fn scatter(title: &str) -> Scatter {
    let points: Vec<_> = (0..23)
        .map(|i| ((i as f64 * 0.273).cos(), (i as f64 * 0.273).sin()))
        .collect();
    Scatter {
        title: title.into(),
        x_label: "PC 1".into(),
        y_label: "PC 2".into(),
        labels: (0..points.len()).map(|i| i.to_string()).collect(),
        points,
        ..Default::default()
    }
}

#[test]
fn heatmaps_have_the_grid_size_and_diverging_hues_in_place() {
    let dir = tempfile::tempdir().unwrap();
    let path = out(&dir, "heatmaps.png");
    // Negative upper-left quadrant, positive elsewhere: red must sit up and left of blue, which
    // checks both the colour map's direction and that row 0 is drawn at the top.
    let signs = quadrant(20, 20, -1.0, 1.0);
    let gradient: Vec<f64> = (0..30 * 40).map(|i| (i % 40) as f64 - 10.0).collect();
    let panels = [
        heatmap("signs", &signs, 20, 20, ColorScale::Diverging),
        heatmap("gradient", &gradient, 30, 40, ColorScale::Sequential),
        heatmap("third", &signs, 20, 20, ColorScale::Diverging),
    ];
    heatmaps(&path, &panels, 2, PANEL).unwrap();
    let img = load(&path);
    assert_eq!(
        img.dimensions(),
        (2 * PANEL.0, 2 * PANEL.1),
        "2 columns x 2 rows of panels"
    );
    assert!(
        distinct_colours(&img) > 100,
        "only {} colours",
        distinct_colours(&img)
    );

    // The first panel only, and left of its colour bar.
    let first = image::imageops::crop_imm(&img, 0, 0, PANEL.0, PANEL.1).to_image();
    let plot_right = PANEL.0 * 3 / 4;
    let (rx, ry, reds) = centroid(&first, plot_right, is_red);
    let (bx, by, blues) = centroid(&first, plot_right, is_blue);
    assert!(
        reds > 1000 && blues > 1000,
        "{reds} red and {blues} blue pixels"
    );
    assert!(
        rx + 20.0 < bx,
        "negative cells (x {rx:.0}) should be left of positive ones (x {bx:.0})"
    );
    assert!(
        ry + 20.0 < by,
        "negative cells (y {ry:.0}) should be above positive ones (y {by:.0})"
    );
    // The empty fourth grid cell stays white.
    let empty = image::imageops::crop_imm(&img, PANEL.0, PANEL.1, PANEL.0, PANEL.1).to_image();
    assert!(empty.pixels().all(|p| p.0 == [255, 255, 255]));
}

#[test]
fn all_positive_values_on_a_diverging_map_have_no_red() {
    let dir = tempfile::tempdir().unwrap();
    let path = out(&dir, "positive.png");
    let values: Vec<f64> = (0..100).map(|i| 0.5 + i as f64).collect();
    heatmaps(
        &path,
        &[heatmap("positive", &values, 10, 10, ColorScale::Diverging)],
        1,
        PANEL,
    )
    .unwrap();
    let img = load(&path);
    let plot = image::imageops::crop_imm(&img, 0, 0, PANEL.0 * 3 / 4, PANEL.1).to_image();
    assert_eq!(
        centroid(&plot, u32::MAX, is_red).2,
        0,
        "positive values drawn red"
    );
    assert!(centroid(&plot, u32::MAX, is_blue).2 > 1000);
}

#[test]
fn binary_scale_and_missing_cells_use_their_fixed_colours() {
    let dir = tempfile::tempdir().unwrap();
    let path = out(&dir, "binary.png");
    let mut values: Vec<f64> = (0..64).map(|i| f64::from(i % 3) - 1.0).collect();
    values[..8].fill(f64::NAN);
    heatmaps(
        &path,
        &[heatmap("ternary", &values, 8, 8, ColorScale::Binary)],
        1,
        PANEL,
    )
    .unwrap();
    let img = load(&path);
    for (name, rgb) in [
        ("negative", [178, 24, 43]),
        ("positive", [33, 102, 172]),
        ("missing", [190, 190, 190]),
    ] {
        assert!(has_colour(&img, rgb), "no {name} colour {rgb:?}");
    }
}

#[test]
fn large_heatmaps_render_at_the_requested_size() {
    let dir = tempfile::tempdir().unwrap();
    for (rows, cols) in [(113, 113), (512, 56)] {
        let values: Vec<f64> = (0..rows * cols)
            .map(|i| ((i * 7919) % 1000) as f64 / 500.0 - 1.0)
            .collect();
        let mut panel = heatmap("big", &values, rows, cols, ColorScale::Diverging);
        panel.x_ticks = (0..cols).map(|c| (c, format!("cos {c}"))).collect();
        let path = out(&dir, &format!("{rows}x{cols}.png"));
        heatmaps(&path, &[panel], 1, (600, 600)).unwrap();
        assert_eq!(load(&path).dimensions(), (600, 600));
    }
}

#[test]
fn line_charts_draw_every_series_in_its_palette_colour() {
    let dir = tempfile::tempdir().unwrap();
    let path = out(&dir, "lines.png");
    let mut linear = line_chart("linear");
    linear.log_y = false;
    linear.y_range = Some((0.0, 5.0));
    line_charts(
        &path,
        &[line_chart("log"), linear, line_chart("third")],
        2,
        PANEL,
    )
    .unwrap();
    let img = load(&path);
    assert_eq!(img.dimensions(), (2 * PANEL.0, 2 * PANEL.1));
    assert!(
        distinct_colours(&img) > 50,
        "only {} colours",
        distinct_colours(&img)
    );
    assert!(
        has_colour(&img, [31, 119, 180]),
        "first series (tab:blue) missing"
    );
    assert!(
        has_colour(&img, [255, 127, 14]),
        "second series (tab:orange) missing"
    );
}

#[test]
fn bar_charts_highlight_bars_in_the_accent_colour() {
    let dir = tempfile::tempdir().unwrap();
    let path = out(&dir, "bars.png");
    let mut log = bar_chart("log");
    log.log_y = true;
    log.values[0] = 0.0; // dropped on a log axis
    bar_charts(&path, &[bar_chart("linear"), log], 2, PANEL).unwrap();
    let img = load(&path);
    assert_eq!(img.dimensions(), (2 * PANEL.0, PANEL.1));
    assert!(has_colour(&img, [31, 119, 180]), "plain bars missing");
    assert!(has_colour(&img, [255, 127, 14]), "highlighted bars missing");
    let accent = img.pixels().filter(|p| p.0 == [255, 127, 14]).count();
    let base = img.pixels().filter(|p| p.0 == [31, 119, 180]).count();
    assert!(
        accent > base / 10,
        "the tall highlighted bars should be prominent ({accent} vs {base} px)"
    );
}

#[test]
fn scatters_render_points_and_labels() {
    let dir = tempfile::tempdir().unwrap();
    let path = out(&dir, "scatter.png");
    let mut unlabelled = scatter("embedding");
    unlabelled.labels.clear();
    scatters(&path, &[scatter("embedding"), unlabelled], 1, PANEL).unwrap();
    let img = load(&path);
    assert_eq!(img.dimensions(), (PANEL.0, 2 * PANEL.1));
    // The panels differ only by the labels.
    let changed = (0..PANEL.1)
        .flat_map(|y| (0..PANEL.0).map(move |x| (x, y)))
        .filter(|&(x, y)| img.get_pixel(x, y) != img.get_pixel(x, y + PANEL.1))
        .count();
    assert!(changed > 500, "point labels changed only {changed} pixels");
}

#[test]
fn titles_are_drawn_as_text() {
    let dir = tempfile::tempdir().unwrap();
    let values = quadrant(6, 6, -1.0, 1.0);
    let render = |title: &str| {
        let path = out(&dir, "title.png");
        heatmaps(
            &path,
            &[heatmap(title, &values, 6, 6, ColorScale::Diverging)],
            1,
            PANEL,
        )
        .unwrap();
        load(&path)
    };
    let (none, some, other) = (render(""), render("Attention"), render("Logits"));
    let differing: Vec<u32> = none
        .enumerate_pixels()
        .filter(|(x, y, p)| some.get_pixel(*x, *y) != *p)
        .map(|(_, y, _)| y)
        .collect();
    assert!(
        differing.len() > 100,
        "a title changed only {} pixels",
        differing.len()
    );
    // The title band is reserved either way, so only the text itself differs.
    assert!(
        differing.iter().all(|&y| y < 40),
        "a title moved the plot (row {:?})",
        differing.iter().max()
    );
    assert_ne!(some, other, "different titles rendered identically");
}

/// Degenerate but valid input renders instead of failing or panicking.
#[test]
fn degenerate_input_still_renders() {
    let dir = tempfile::tempdir().unwrap();
    let path = out(&dir, "edge.png");
    let one = [f64::NAN];
    let constant = [2.0; 6];
    let huge: Vec<f64> = (0..6).map(|i| i as f64 * 1e12 - 2e12).collect();
    heatmaps(
        &path,
        &[
            heatmap("one missing cell", &one, 1, 1, ColorScale::Diverging),
            heatmap("constant", &constant, 2, 3, ColorScale::Sequential),
            heatmap("huge", &huge, 6, 1, ColorScale::Diverging),
            heatmap("zeros", &[0.0; 4], 2, 2, ColorScale::Binary),
        ],
        2,
        PANEL,
    )
    .unwrap();

    let series = |points: Vec<(f64, f64)>| Series {
        label: "s".into(),
        points,
        dashed: false,
        colour: None,
    };
    let single = LineChart {
        series: vec![series(vec![(3.0, 1e-9)])],
        log_y: true,
        ..Default::default()
    };
    let flat = LineChart {
        series: vec![series(vec![(0.0, 1.0), (1.0, 1.0)])],
        ..Default::default()
    };
    let vertical = LineChart {
        series: vec![series(vec![(5.0, 0.0), (5.0, 1.0)])],
        vlines: vec![(5.0, "here".into())],
        ..Default::default()
    };
    let tiny = LineChart {
        series: vec![series(curve(50, |x| 1e-7 * x))],
        ..Default::default()
    };
    let mut long_title =
        line_chart("A title far too long to fit into the panel at its natural size, so it shrinks");
    long_title.series.push(series(vec![(0.0, f64::INFINITY)]));
    line_charts(&path, &[single, flat, vertical, tiny, long_title], 3, PANEL).unwrap();

    let bars = |values: Vec<f64>, log_y| BarChart {
        labels: vec!["x".into(); values.len()],
        values,
        log_y,
        ..Default::default()
    };
    bar_charts(
        &path,
        &[
            bars(vec![0.0], false),
            bars(vec![-3.0, f64::NAN], false),
            bars(vec![7.0, 7.0], true),
        ],
        3,
        PANEL,
    )
    .unwrap();

    let points = |p: Vec<(f64, f64)>| Scatter {
        points: p,
        ..Default::default()
    };
    scatters(
        &path,
        &[
            points(vec![(1.0, 1.0)]),
            points(vec![(0.0, 0.0), (f64::NAN, 1.0)]),
        ],
        2,
        PANEL,
    )
    .unwrap();
    assert_eq!(files_in(dir.path()), ["edge.png"]);
}

#[test]
fn bad_input_is_an_error_and_leaves_no_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = out(&dir, "bad.png");
    let values = vec![0.0; 12];
    let expect_err = |result: anyhow::Result<()>, what: &str| {
        let err = result.expect_err(what);
        assert!(!err.to_string().is_empty());
        assert!(
            files_in(dir.path()).is_empty(),
            "{what}: left {:?}",
            files_in(dir.path())
        );
    };

    expect_err(
        heatmaps(
            &path,
            &[heatmap("", &values, 3, 5, ColorScale::Diverging)],
            1,
            PANEL,
        ),
        "size mismatch",
    );
    expect_err(
        heatmaps(
            &path,
            &[heatmap("", &[], 0, 4, ColorScale::Diverging)],
            1,
            PANEL,
        ),
        "no rows",
    );
    let mut ticks = heatmap("", &values, 3, 4, ColorScale::Diverging);
    ticks.x_ticks = vec![(4, "out".into())];
    expect_err(heatmaps(&path, &[ticks], 1, PANEL), "tick out of range");
    expect_err(heatmaps(&path, &[], 1, PANEL), "no panels");
    expect_err(
        heatmaps(
            &path,
            &[heatmap("", &values, 3, 4, ColorScale::Diverging)],
            0,
            PANEL,
        ),
        "zero columns",
    );
    expect_err(
        heatmaps(
            &path,
            &[heatmap("", &values, 3, 4, ColorScale::Diverging)],
            1,
            (10, 10),
        ),
        "tiny panel",
    );

    let mut empty_series = line_chart("");
    empty_series.series[1].points.clear();
    expect_err(
        line_charts(&path, &[empty_series], 1, PANEL),
        "empty series",
    );
    let mut no_series = line_chart("");
    no_series.series.clear();
    expect_err(line_charts(&path, &[no_series], 1, PANEL), "no series");
    let mut nothing_positive = line_chart("");
    for s in &mut nothing_positive.series {
        s.points = vec![(0.0, 0.0), (1.0, -1.0), (2.0, f64::NAN)];
    }
    expect_err(
        line_charts(&path, &[nothing_positive], 1, PANEL),
        "nothing to show on a log axis",
    );
    let mut bad_range = line_chart("");
    bad_range.y_range = Some((1.0, 0.5));
    expect_err(
        line_charts(&path, &[bad_range], 1, PANEL),
        "decreasing y_range",
    );

    let mut short_labels = bar_chart("");
    short_labels.labels.pop();
    expect_err(bar_charts(&path, &[short_labels], 1, PANEL), "label count");
    let mut bad_highlight = bar_chart("");
    bad_highlight.highlight = vec![56];
    expect_err(
        bar_charts(&path, &[bad_highlight], 1, PANEL),
        "highlight out of range",
    );
    expect_err(
        bar_charts(&path, &[BarChart::default()], 1, PANEL),
        "no bars",
    );

    let mut bad_labels = scatter("");
    bad_labels.labels.pop();
    expect_err(scatters(&path, &[bad_labels], 1, PANEL), "label count");
    expect_err(
        scatters(&path, &[Scatter::default()], 1, PANEL),
        "no points",
    );

    let missing_dir = dir.path().join("missing").join("fig.png");
    expect_err(
        scatters(&missing_dir, &[scatter("")], 1, PANEL),
        "missing directory",
    );
}

#[test]
fn writes_replace_the_file_and_leave_no_temporaries() {
    let dir = tempfile::tempdir().unwrap();
    let path = out(&dir, "fig.png");
    std::fs::write(&path, b"not a png").unwrap();
    scatters(&path, &[scatter("first")], 1, PANEL).unwrap();
    scatters(&path, &[scatter("second"), scatter("third")], 2, PANEL).unwrap();
    assert_eq!(files_in(dir.path()), ["fig.png"]);
    assert_eq!(load(&path).dimensions(), (2 * PANEL.0, PANEL.1));
}

/// Renders figures shaped like the analysis's to `$PLOT_EXAMPLES` (default /tmp/plot-examples)
/// for looking at: `cargo test --release --test plot -- --ignored`.
#[test]
#[ignore]
fn render_examples() {
    let dir = PathBuf::from(
        std::env::var("PLOT_EXAMPLES").unwrap_or_else(|_| "/tmp/plot-examples".into()),
    );
    std::fs::create_dir_all(&dir).unwrap();
    let p: usize = 113;
    let tau = std::f64::consts::TAU;

    // Logits over (a, b) for a single output, a Fourier basis, neuron activations.
    let logits: Vec<f64> = (0..p * p)
        .map(|i| {
            (tau * 14.0 * ((i / p + i % p) as f64) / p as f64).cos() * 8.0
                + ((i * 31) % 7) as f64 * 0.1
        })
        .collect();
    let basis: Vec<f64> = (0..p * p)
        .map(|i| {
            let (row, x) = (i / p, (i % p) as f64);
            let k = row.div_ceil(2) as f64;
            if row == 0 {
                1.0
            } else if row % 2 == 1 {
                (tau * k * x / p as f64).cos()
            } else {
                (tau * k * x / p as f64).sin()
            }
        })
        .collect();
    let basis_names: Vec<(usize, String)> = (0..p)
        .map(|r: usize| {
            (
                r,
                if r == 0 {
                    "const".into()
                } else {
                    format!(
                        "{} {}",
                        if r % 2 == 1 { "cos" } else { "sin" },
                        r.div_ceil(2)
                    )
                },
            )
        })
        .collect();
    let neurons: Vec<f64> = (0..512 * 56)
        .map(|i| {
            if i % 56 == 13 || i % 56 == 34 {
                ((i / 56) as f64 * 0.37).sin() * 3.0
            } else {
                ((i * 7919) % 100) as f64 / 200.0 - 0.25
            }
        })
        .collect();
    let ternary: Vec<f64> = (0..32 * 48)
        .map(|i| f64::from(((i * 2654435761_usize) >> 7) as u32 % 3) - 1.0)
        .collect();
    let mut with_missing = logits[..20 * 20].to_vec();
    with_missing[..45].fill(f64::NAN);
    heatmaps(
        &dir.join("heatmaps.png"),
        &[
            Heatmap {
                title: "Logits for c = 0".into(),
                values: &logits,
                rows: p,
                cols: p,
                x_label: "b".into(),
                y_label: "a".into(),
                scale: ColorScale::Diverging,
                ..Default::default()
            },
            Heatmap {
                title: "Fourier basis".into(),
                values: &basis,
                rows: p,
                cols: p,
                x_label: "input x".into(),
                y_label: "component".into(),
                y_ticks: basis_names,
                scale: ColorScale::Diverging,
                ..Default::default()
            },
            Heatmap {
                title: "Neuron norms by frequency".into(),
                values: &neurons,
                rows: 512,
                cols: 56,
                x_label: "frequency".into(),
                y_label: "neuron".into(),
                x_ticks: (0..56).map(|k| (k, (k + 1).to_string())).collect(),
                scale: ColorScale::Sequential,
                ..Default::default()
            },
            Heatmap {
                title: "Ternary W_in (signs)".into(),
                values: &ternary,
                rows: 32,
                cols: 48,
                x_label: "d_model".into(),
                y_label: "neuron".into(),
                scale: ColorScale::Binary,
                ..Default::default()
            },
            Heatmap {
                title: "Missing cells are grey".into(),
                values: &with_missing,
                rows: 20,
                cols: 20,
                scale: ColorScale::Sequential,
                ..Default::default()
            },
        ],
        3,
        (480, 420),
    )
    .unwrap();

    let steps = |f: &dyn Fn(f64) -> f64| {
        (0..=400)
            .map(|i| (i as f64 * 100.0, f(i as f64 * 100.0)))
            .collect::<Vec<_>>()
    };
    let phases = vec![
        (0.0, 1400.0, "memorisation".into()),
        (1400.0, 9400.0, "circuit formation".into()),
        (9400.0, 13000.0, "cleanup".into()),
    ];
    line_charts(
        &dir.join("lines.png"),
        &[
            LineChart {
                title: "Loss".into(),
                x_label: "step".into(),
                y_label: "cross-entropy".into(),
                log_y: true,
                series: vec![
                    Series {
                        label: "train".into(),
                        points: steps(&|x| {
                            4.7 * (-x / 300.0).exp() + 1e-7 + 1e-3 * (-x / 5000.0).exp()
                        }),
                        dashed: false,
                        colour: None,
                    },
                    Series {
                        label: "test".into(),
                        points: steps(&|x| 9.0 / (1.0 + (x / 9000.0).powi(8)) + 1e-6),
                        dashed: true,
                        colour: None,
                    },
                ],
                vlines: vec![(1400.0, "memorised".into()), (13000.0, "grokked".into())],
                spans: phases.clone(),
                y_range: None,
            },
            LineChart {
                title: "Excluded loss and restricted loss".into(),
                x_label: "step".into(),
                y_label: "loss".into(),
                log_y: false,
                series: vec![
                    Series {
                        label: "excluded".into(),
                        points: steps(&|x| 2.0 * x / 40000.0 + (x / 3000.0).sin().abs() * 0.2),
                        dashed: false,
                        colour: None,
                    },
                    Series {
                        label: "restricted".into(),
                        points: steps(&|x| 3.0 * (-x / 6000.0).exp()),
                        dashed: false,
                        colour: None,
                    },
                    Series {
                        label: "train".into(),
                        points: steps(&|x| 4.7 * (-x / 300.0).exp()),
                        dashed: true,
                        colour: None,
                    },
                ],
                vlines: vec![],
                spans: phases,
                y_range: Some((0.0, 5.0)),
            },
            LineChart {
                title: "Weight norm".into(),
                x_label: "step".into(),
                y_label: "sum of squared weights".into(),
                series: vec![Series {
                    label: "norm".into(),
                    points: steps(&|x| 1200.0 - 700.0 * (1.0 - (-x / 12000.0).exp())),
                    dashed: false,
                    colour: None,
                }],
                ..Default::default()
            },
        ],
        3,
        (480, 360),
    )
    .unwrap();

    let freqs: Vec<String> = (1..=56).map(|k| k.to_string()).collect();
    let norms: Vec<f64> = (1..=56)
        .map(|k| {
            if [14, 35, 41, 52].contains(&k) {
                1.0 + k as f64 / 100.0
            } else {
                0.02 + (k % 5) as f64 * 0.004
            }
        })
        .collect();
    bar_charts(
        &dir.join("bars.png"),
        &[
            BarChart {
                title: "Embedding norm per frequency".into(),
                x_label: "frequency k".into(),
                y_label: "norm".into(),
                labels: freqs.clone(),
                values: norms.clone(),
                highlight: vec![13, 34, 40, 51],
                log_y: false,
            },
            BarChart {
                title: "Same, log scale".into(),
                x_label: "frequency k".into(),
                y_label: "norm".into(),
                labels: freqs,
                values: norms,
                highlight: vec![13, 34, 40, 51],
                log_y: true,
            },
            BarChart {
                title: "Heads".into(),
                x_label: "head".into(),
                y_label: "change".into(),
                labels: ["head 0", "head 1", "head 2", "head 3"]
                    .map(String::from)
                    .to_vec(),
                values: vec![0.4, -0.2, 1.3, 0.05],
                highlight: vec![2],
                log_y: false,
            },
        ],
        3,
        (480, 360),
    )
    .unwrap();

    let embed: Vec<(f64, f64)> = (0..p)
        .map(|t| {
            let a = tau * 14.0 * t as f64 / p as f64;
            (a.cos() * 3.0 + (t % 5) as f64 * 0.05, a.sin() * 3.0)
        })
        .collect();
    scatters(
        &dir.join("scatter.png"),
        &[
            Scatter {
                title: "Embedding, principal components 1 and 2".into(),
                x_label: "PC 1".into(),
                y_label: "PC 2".into(),
                labels: (0..p).map(|t| t.to_string()).collect(),
                points: embed.clone(),
                ..Default::default()
            },
            Scatter {
                title: "Strip plot: categories on x".into(),
                x_label: "variant".into(),
                y_label: "PC 2".into(),
                points: embed
                    .iter()
                    .map(|&(x, y)| ((x > 0.0) as u8 as f64, y))
                    .collect(),
                labels: vec![],
                // Hollow markers, as a sweep's runs that did not generalise.
                hollow: embed.iter().map(|&(_, y)| y < 0.0).collect(),
                x_ticks: vec![
                    (0.0, "left".into()),
                    (1.0, "right".into()),
                    (2.0, "empty".into()),
                ],
                y_range: Some((-1.5, 1.5)),
            },
        ],
        2,
        (520, 480),
    )
    .unwrap();
}
