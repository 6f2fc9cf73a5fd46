//! `bitgrok bench`: time training epochs of the seed configuration of each preset on the
//! chosen adapter.

use std::time::Instant;

use anyhow::Result;
use serde::Serialize;

use crate::cli::TrainArgs;
use crate::engine::device::Gpu;
use crate::engine::Engine;
use crate::model::{Params, Preset};
use crate::task::Split;

#[derive(Debug, Serialize)]
pub struct BenchResult {
    pub preset: Preset,
    pub p: usize,
    pub d_model: usize,
    pub d_mlp: usize,
    /// Milliseconds per epoch: train step and test evaluation, and the train step alone.
    pub ms_per_epoch: f64,
    pub ms_per_train_step: f64,
    pub dispatches_per_train_step: usize,
    pub dispatches_per_test_eval: usize,
}

/// Times `epochs` epochs (after one warm-up submission) of each preset at the given sizes.
pub fn bench(
    gpu: &Gpu,
    presets: &[Preset],
    p: usize,
    widths: Option<(usize, usize)>,
    epochs: usize,
) -> Result<Vec<BenchResult>> {
    let mut results = Vec::new();
    for &preset in presets {
        let mut args = TrainArgs::defaults(preset);
        args.p = p;
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
        let mut time = |eval: bool| -> Result<f64> {
            let start = Instant::now();
            engine.run_epochs(2, epochs, |_| eval)?;
            Ok(start.elapsed().as_secs_f64() * 1e3 / epochs as f64)
        };
        let ms_per_epoch = time(true)?;
        let ms_per_train_step = time(false)?;
        let (train, eval) = engine.dispatch_counts();
        results.push(BenchResult {
            preset,
            p,
            d_model: config.model.d_model,
            d_mlp: config.model.d_mlp,
            ms_per_epoch,
            ms_per_train_step,
            dispatches_per_train_step: train,
            dispatches_per_test_eval: eval,
        });
    }
    Ok(results)
}
