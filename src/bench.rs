//! `bitgrok bench`: training epochs of each preset's seed configuration, at each weight
//! precision, timed on the chosen adapter, with the work they do and the memory they hold.

use std::time::Instant;

use anyhow::Result;
use serde::Serialize;

use crate::cli::TrainArgs;
use crate::engine::device::Gpu;
use crate::engine::Engine;
use crate::model::{Params, Preset, Weights};
use crate::task::Split;

#[derive(Debug, Serialize)]
pub struct BenchResult {
    pub preset: Preset,
    pub weights: Weights,
    pub p: usize,
    pub d_model: usize,
    pub d_mlp: usize,
    /// Milliseconds per epoch: train step and test evaluation, and the train step alone.
    pub ms_per_epoch: f64,
    pub ms_per_train_step: f64,
    pub epochs_per_second: f64,
    pub train_steps_per_second: f64,
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

/// Times `epochs` epochs (after one warm-up submission) of each preset at each weight precision
/// and the given sizes.
pub fn bench(
    gpu: &Gpu,
    presets: &[Preset],
    weights: &[Weights],
    p: usize,
    widths: Option<(usize, usize)>,
    epochs: usize,
) -> Result<Vec<BenchResult>> {
    let mut results = Vec::new();
    for &preset in presets {
        for &w in weights {
            let mut args = TrainArgs::defaults(preset);
            args.p = p;
            args.weights = Some(w);
            if let Some((d_model, d_mlp)) = widths {
                args.d_model = d_model;
                args.d_head = d_model / args.n_heads;
                args.d_mlp = d_mlp;
            }
            let config = args.run_config()?;
            let split = Split::new(p, config.frac, config.data_seed);
            let params = Params::init(&config.model, config.seed);
            let mut engine = Engine::new(
                gpu,
                &params,
                &split.train_examples(),
                Some(&split.test_examples()),
                &config.adamw,
            )?;
            engine.run_epochs(1, 1, |_| true)?;
            let gpu_memory_bytes = gpu
                .device
                .generate_allocator_report()
                .map(|r| r.total_allocated_bytes);
            let mut time = |eval: bool| -> Result<f64> {
                let start = Instant::now();
                engine.run_epochs(2, epochs, |_| eval)?;
                Ok(start.elapsed().as_secs_f64() * 1e3 / epochs as f64)
            };
            let ms_per_epoch = time(true)?;
            let ms_per_train_step = time(false)?;
            let (train, eval) = engine.dispatch_counts();
            let (train_flops, eval_flops) = engine.flop_counts();
            results.push(BenchResult {
                preset,
                weights: w,
                p,
                d_model: config.model.d_model,
                d_mlp: config.model.d_mlp,
                ms_per_epoch,
                ms_per_train_step,
                epochs_per_second: 1e3 / ms_per_epoch,
                train_steps_per_second: 1e3 / ms_per_train_step,
                flops_per_train_step: train_flops,
                flops_per_test_eval: eval_flops,
                gflops_per_second: (train_flops + eval_flops) as f64 / (ms_per_epoch * 1e6),
                gpu_memory_bytes,
                dispatches_per_train_step: train,
                dispatches_per_test_eval: eval,
            });
        }
    }
    Ok(results)
}
