//! `bitgrok bench`: training epochs of each preset's seed configuration, at each weight
//! precision and number of models trained together, timed on the chosen adapter, with the work
//! they do and the memory they hold.

use std::time::Instant;

use anyhow::Result;
use serde::Serialize;

use crate::engine::device::Gpu;
use crate::engine::{DispatchInfo, Engine, Member, Program, MAX_EPOCHS_PER_SUBMIT};
use crate::model::{Params, Preset, Weights};
use crate::run::RunConfig;
use crate::task::Split;

#[derive(Debug, Serialize)]
pub struct BenchResult {
    pub preset: Preset,
    pub weights: Weights,
    /// Models trained together (one engine, one set of dispatches).
    pub models: usize,
    pub p: usize,
    pub d_model: usize,
    pub d_mlp: usize,
    /// How the adapter ran the products ([`Gpu::describe_products`]).
    pub products: String,
    /// Milliseconds per epoch of all models: train step and test evaluation, and the train
    /// step alone.
    pub ms_per_epoch: f64,
    pub ms_per_train_step: f64,
    pub epochs_per_second: f64,
    pub train_steps_per_second: f64,
    /// Epochs (with test evaluation) per second summed over the models.
    pub model_epochs_per_second: f64,
    /// Matrix-product FLOPs of the minimal-work epoch (see [`Engine::flop_counts`]).
    pub flops_per_train_step: u64,
    pub flops_per_test_eval: u64,
    /// Achieved rate over a whole epoch (train step and test evaluation).
    pub gflops_per_second: f64,
    /// GPU memory allocated through wgpu once the model is set up: its peak, since the engine
    /// allocates nothing afterwards (readbacks aside); None where the backend gives no report.
    pub gpu_memory_bytes: Option<u64>,
    pub dispatches_per_train_step: usize,
    pub dispatches_per_test_eval: usize,
}

/// What `bitgrok bench` was asked to measure.
pub struct Request {
    pub weights: Vec<Weights>,
    pub models: Vec<usize>,
    pub p: usize,
    /// d_model and d_mlp, when not the presets'.
    pub widths: Option<(usize, usize)>,
    pub epochs: usize,
    pub json: bool,
    /// Per-kernel profiles instead of whole epochs.
    pub kernels: bool,
}

impl Request {
    /// Checks the widths before any adapter is opened: bench uses 4 heads of d_model / 4.
    pub fn new(
        weights: Vec<Weights>,
        models: Vec<u64>,
        p: usize,
        d_model: Option<usize>,
        epochs: usize,
        json: bool,
        kernels: bool,
    ) -> Result<Request> {
        if let Some(d) = d_model.filter(|d| *d == 0 || d % 4 != 0) {
            crate::usage_bail!(
                "--d-model {d}: bench uses 4 heads of d_model / 4, so it must be a positive \
                 multiple of 4"
            );
        }
        Ok(Request {
            weights,
            models: models.into_iter().map(|k| k as usize).collect(),
            p,
            widths: d_model.map(|d| (d, 4 * d)),
            epochs: epochs.max(1),
            json,
            kernels,
        })
    }
}

/// Runs the request for both presets and prints the table (or JSON).
pub fn run(gpu: &Gpu, r: &Request) -> Result<()> {
    let presets = [Preset::Nanda, Preset::SeedBitnet];
    if r.kernels {
        let mut profiles = Vec::new();
        for preset in presets {
            for &w in &r.weights {
                for &k in &r.models {
                    let timings = profile(gpu, preset, w, k, r.p, r.widths, r.epochs)?;
                    profiles.push((preset, w, k, timings));
                }
            }
        }
        if r.json {
            println!("{}", serde_json::to_string_pretty(&profiles)?);
        } else {
            println!("adapter: {} ({})", gpu.describe(), gpu.describe_products());
            for (preset, w, k, timings) in &profiles {
                print_profile(*preset, *w, *k, timings);
            }
        }
    } else {
        let results = bench(
            gpu, &presets, &r.weights, &r.models, r.p, r.widths, r.epochs,
        )?;
        if r.json {
            println!("{}", serde_json::to_string_pretty(&results)?);
        } else {
            println!("adapter: {} ({})", gpu.describe(), gpu.describe_products());
            print_results(&results);
        }
    }
    Ok(())
}

/// An engine for `preset` at `weights` with the seed configuration at modulus `p` (and the
/// given d_model, d_mlp), training `models` models together (seeds 0, 1, ... as in a sweep),
/// after one warm-up epoch.
pub fn seed_engine<'g>(
    gpu: &'g Gpu,
    preset: Preset,
    weights: Weights,
    p: usize,
    widths: Option<(usize, usize)>,
    models: usize,
) -> Result<Engine<'g>> {
    let mut config = RunConfig::preset(preset);
    let m = &mut config.model;
    m.p = p;
    m.weights = weights;
    if let Some((d_model, d_mlp)) = widths {
        m.d_model = d_model;
        m.d_head = d_model / m.n_heads;
        m.d_mlp = d_mlp;
    }
    config.validate()?;
    let runs: Vec<_> = (0..models as u64)
        .map(|s| {
            let split = Split::new(p, config.frac, config.data_seed + s);
            let params = Params::init(&config.model, config.seed + s);
            (params, split.train_examples(), split.test_examples())
        })
        .collect();
    let members: Vec<Member> = runs
        .iter()
        .map(|(params, train, test)| Member {
            params,
            train,
            test: Some(test),
            adamw: &config.adamw,
        })
        .collect();
    let mut engine = Engine::stacked(gpu, &members)?;
    engine.run_epochs(1, 1, |_| true)?;
    Ok(engine)
}

/// Times `epochs` epochs (after one warm-up submission; at most [`MAX_EPOCHS_PER_SUBMIT`] per
/// submission, as in training) of each preset at each weight precision, for each number of
/// models trained together, at the given sizes.
pub fn bench(
    gpu: &Gpu,
    presets: &[Preset],
    weights: &[Weights],
    models: &[usize],
    p: usize,
    widths: Option<(usize, usize)>,
    epochs: usize,
) -> Result<Vec<BenchResult>> {
    let mut results = Vec::new();
    for &preset in presets {
        for &w in weights {
            for &k in models {
                let mut engine = seed_engine(gpu, preset, w, p, widths, k)?;
                let gpu_memory_bytes = gpu
                    .device
                    .generate_allocator_report()
                    .map(|r| r.total_allocated_bytes);
                let mut time = |eval: bool| -> Result<f64> {
                    let start = Instant::now();
                    let mut done = 0;
                    while done < epochs {
                        let chunk = (epochs - done).min(MAX_EPOCHS_PER_SUBMIT);
                        engine.run_epochs(2 + done, chunk, |_| eval)?;
                        done += chunk;
                    }
                    Ok(start.elapsed().as_secs_f64() * 1e3 / epochs as f64)
                };
                let ms_per_epoch = time(true)?;
                let ms_per_train_step = time(false)?;
                let (train, eval) = engine.dispatch_counts();
                let (train_flops, eval_flops) = engine.flop_counts();
                results.push(BenchResult {
                    preset,
                    weights: w,
                    models: k,
                    p,
                    d_model: engine.config.d_model,
                    d_mlp: engine.config.d_mlp,
                    products: gpu.describe_products(),
                    ms_per_epoch,
                    ms_per_train_step,
                    epochs_per_second: 1e3 / ms_per_epoch,
                    train_steps_per_second: 1e3 / ms_per_train_step,
                    model_epochs_per_second: k as f64 * 1e3 / ms_per_epoch,
                    flops_per_train_step: train_flops,
                    flops_per_test_eval: eval_flops,
                    gflops_per_second: (train_flops + eval_flops) as f64 / (ms_per_epoch * 1e6),
                    gpu_memory_bytes,
                    dispatches_per_train_step: train,
                    dispatches_per_test_eval: eval,
                });
            }
        }
    }
    Ok(results)
}

/// One dispatch of an epoch, timed alone.
#[derive(Debug, Serialize)]
pub struct KernelTiming {
    pub program: &'static str,
    pub index: usize,
    pub kernel: String,
    pub workgroups: [u32; 3],
    pub flops: u64,
    pub ms: f64,
}

/// Per-dispatch times of the train step and the test evaluation of `preset` at `weights`, with
/// `models` models trained together: each dispatch replayed `repeats` times in one submission
/// (after one warm-up replay).
pub fn profile(
    gpu: &Gpu,
    preset: Preset,
    weights: Weights,
    models: usize,
    p: usize,
    widths: Option<(usize, usize)>,
    repeats: usize,
) -> Result<Vec<KernelTiming>> {
    let mut engine = seed_engine(gpu, preset, weights, p, widths, models)?;
    let mut out = Vec::new();
    for (program, name) in [
        (Program::TrainStep, "train step"),
        (Program::TestEval, "test eval"),
    ] {
        for (
            index,
            DispatchInfo {
                name: kernel,
                workgroups,
                flops,
                ..
            },
        ) in engine.dispatches(program).into_iter().enumerate()
        {
            engine.replay_dispatch(program, index, 1)?;
            let start = Instant::now();
            engine.replay_dispatch(program, index, repeats)?;
            out.push(KernelTiming {
                program: name,
                index,
                kernel,
                workgroups,
                flops,
                ms: start.elapsed().as_secs_f64() * 1e3 / repeats as f64,
            });
        }
    }
    Ok(out)
}

pub fn print_results(results: &[BenchResult]) {
    println!("preset       weights  models  ms/epoch  ms/train step  model-epochs/s  GFLOP/epoch  GFLOP/s  GPU MiB  dispatches");
    for r in results {
        let flops = (r.flops_per_train_step + r.flops_per_test_eval) as f64;
        println!(
            "{:<12} {:<8} {:>6} {:>9.1} {:>14.1} {:>15.2} {:>12.3} {:>8.2} {:>8} {:>6} + {}",
            crate::model::name_of(r.preset),
            crate::model::name_of(r.weights),
            r.models,
            r.ms_per_epoch,
            r.ms_per_train_step,
            r.model_epochs_per_second,
            flops / 1e9,
            r.gflops_per_second,
            r.gpu_memory_bytes.map_or("-".into(), |b| format!(
                "{:.1}",
                b as f64 / (1 << 20) as f64
            )),
            r.dispatches_per_train_step,
            r.dispatches_per_test_eval
        );
    }
    if let Some(r) = results.first() {
        println!(
            "(p = {}; times, FLOPs and dispatches are per epoch of all models together; FLOPs: the \
             matrix products of the minimal-work epoch, train step + test evaluation)",
            r.p
        );
    }
}

pub fn print_profile(preset: Preset, weights: Weights, models: usize, timings: &[KernelTiming]) {
    let total: f64 = timings.iter().map(|t| t.ms).sum();
    println!(
        "\n{preset:?}, {weights:?} weights, {models} model(s): {total:.1} ms in all dispatches"
    );
    println!("program     #  kernel                            workgroups     GFLOP       ms  GFLOP/s  share");
    for t in timings {
        let [x, y, z] = t.workgroups;
        let gflop = t.flops as f64 / 1e9;
        println!(
            "{:<10} {:>2}  {:<32} {:>12} {:>8.3} {:>8.2} {:>8} {:>5.1}%",
            t.program,
            t.index,
            t.kernel,
            format!("{x}x{y}x{z}"),
            gflop,
            t.ms,
            if t.flops > 0 {
                format!("{:.2}", gflop / (t.ms / 1e3))
            } else {
                "-".into()
            },
            100.0 * t.ms / total
        );
    }
}
