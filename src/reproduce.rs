//! `bitgrok reproduce`: the study end to end — full-precision, ternary and binary models,
//! their analyses, and the comparison.

use std::path::{Path, PathBuf};

use anyhow::Result;

use crate::engine::device::Gpu;
use crate::model::{Preset, Weights};
use crate::report;
use crate::run::RunConfig;
use crate::train;

/// One model of the study.
struct Variant {
    name: &'static str,
    preset: Preset,
    weights: Option<Weights>,
}

const VARIANTS: [Variant; 3] = [
    Variant {
        name: "full-precision",
        preset: Preset::Nanda,
        weights: None,
    },
    Variant {
        name: "ternary",
        preset: Preset::SeedBitnet,
        weights: None,
    },
    Variant {
        name: "binary",
        preset: Preset::SeedBitnet,
        weights: Some(Weights::Binary),
    },
];

/// The configuration of one variant: the study's, or the reduced one for CPU adapters: p = 23
/// with 70% of pairs for training; the full-precision model at d_model 64 (4 heads × 16,
/// d_mlp 256), the bit models at d_model 32 (4 heads × 8, d_mlp 128). Measured on lavapipe
/// (2 cores): at those widths the three grok at epochs ~900, ~1,600 and ~1,300, a few minutes in
/// all; the full-precision model did not grok within 4,000 epochs at width 32, nor the ternary
/// one at width 64.
fn config(v: &Variant, full: bool) -> Result<RunConfig> {
    let mut config = RunConfig::preset(v.preset);
    if let Some(weights) = v.weights {
        config.model.weights = weights;
    }
    if full {
        config.stop_after_grok = Some(2000);
    } else {
        let m = &mut config.model;
        m.p = 23;
        m.d_model = if v.preset == Preset::Nanda { 64 } else { 32 };
        m.d_head = m.d_model / m.n_heads;
        m.d_mlp = 4 * m.d_model;
        config.frac = 0.7;
        config.epochs = 4000;
        config.checkpoint_every = 50;
        config.stop_after_grok = Some(200);
    }
    config.validate()?;
    Ok(config)
}

pub fn reproduce(gpu: &Gpu, out: &Path, full: bool, force: bool) -> Result<PathBuf> {
    let cpu = gpu.info.device_type == wgpu::DeviceType::Cpu;
    let reduced = cpu && !full;
    if reduced {
        println!(
            "{} is a CPU adapter: the study's configuration (p = 113, up to 25,000 epochs at \
             0.6 to 1 s each on lavapipe with 2 cores, 4 to 7 hours) is meant for GPUs, so this runs \
             the reduced configuration (p = 23, frac 0.7, d_model 64 full precision / 32 binary and \
             ternary). Pass --full for the study's.",
            gpu.describe()
        );
    }
    let mut runs = Vec::new();
    for v in &VARIANTS {
        let config = config(v, !reduced)?;
        let dir = out.join(v.name);
        println!(
            "training the {} model (`{}`, {} weights) into {}",
            v.name,
            crate::model::name_of(v.preset),
            crate::model::name_of(config.model.weights),
            dir.display()
        );
        let control = train::Control {
            progress: true,
            stop: None,
        };
        let s = train::train(gpu, &config, &dir, force, control)?;
        println!(
            "  {} epochs, memorised at {}, grokked at {}",
            s.epochs,
            s.memorised_at.map_or("-".into(), |e| e.to_string()),
            s.grokked_at.map_or("-".into(), |e| e.to_string())
        );
        println!("analysing {}", dir.display());
        report::analyze(gpu, &dir, None, true)?;
        runs.push(dir);
    }
    let path = report::compare::compare(gpu, &runs, &out.join("compare"))?;
    println!(
        "report: {} (per-run reports in */analysis/report.md)",
        path.display()
    );
    Ok(path)
}
