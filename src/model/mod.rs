//! Model definition: configuration, named parameters, initialisation and checkpoints.

pub mod config;
pub mod params;

pub use config::{
    ActQuant, Init, LinearNorm, ModelConfig, Preset, QuantGroup, QuantScope, WeightCentre,
    WeightQuantiser, WeightScale, Weights,
};
pub use params::{ParamId, Params};

/// A setting as the command line and config.json spell it (`seed-bitnet`, `ternary`, `int8`).
pub fn name_of(v: impl clap::ValueEnum) -> String {
    v.to_possible_value()
        .map_or_else(String::new, |p| p.get_name().to_string())
}
