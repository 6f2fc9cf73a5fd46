//! Model definition: configuration, named parameters, initialisation and checkpoints.

pub mod config;
pub mod params;

pub use config::{
    ActQuant, Init, LinearNorm, ModelConfig, Preset, QuantGroup, QuantScope, WeightCentre,
    WeightQuantiser, WeightScale, Weights,
};
pub use params::{ParamId, Params};
