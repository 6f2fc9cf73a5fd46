//! `bitgrok eval`: the loss and accuracy of one checkpoint on its run's train and test split.

use std::path::Path;

use anyhow::Result;

use crate::engine::device::Gpu;
use crate::engine::Engine;
use crate::metrics::EpochMetrics;
use crate::model::Params;
use crate::run::{RunConfig, RunDir};
use crate::task::Split;

/// A run's checkpoint, read and checked before any adapter is opened.
pub struct Checkpoint {
    pub epoch: usize,
    config: RunConfig,
    params: Params,
}

impl Checkpoint {
    /// The checkpoint of `epoch` of the run in `run`, or its newest.
    pub fn load(run: &Path, epoch: Option<usize>) -> Result<Checkpoint> {
        let dir = RunDir::open(run)?;
        let config = dir.read_config()?;
        let (epoch, params) = dir.load_checkpoint(&config.model, epoch)?;
        Ok(Checkpoint {
            epoch,
            config,
            params,
        })
    }

    /// Its metrics on the run's train and test pairs.
    pub fn evaluate(&self, gpu: &Gpu) -> Result<EpochMetrics> {
        let c = &self.config;
        let split = Split::new(c.model.p, c.frac, c.data_seed);
        let mut engine = Engine::new(
            gpu,
            &self.params,
            &split.train_examples(),
            Some(&split.test_examples()),
            &c.adamw,
        )?;
        Ok(engine.evaluate()?[0])
    }
}
