//! Model definition: configuration, named parameters, initialisation and checkpoints.

pub mod config;
pub mod params;

pub use config::{
    ActQuant, Init, LinearNorm, ModelConfig, Preset, QuantGroup, QuantScope, WeightCentre,
    WeightQuantiser, WeightScale, Weights,
};
pub use params::{ParamId, Params};

/// The input of one `Linear` (the attention's Q, K and V share theirs): where the model
/// normalises and quantises activations, named alike by the engine and its CPU reference.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Site {
    /// `x0`, feeding `W_Q`, `W_K` and `W_V`.
    Qkv,
    /// `z`, the concatenated heads feeding `W_O`.
    AttnOut,
    /// `x1`, feeding `W_in`.
    MlpIn,
    /// The post-ReLU activations feeding `W_out`.
    MlpOut,
}

/// A setting as the command line and config.json spell it (`seed-bitnet`, `ternary`, `int8`).
pub fn name_of(v: impl clap::ValueEnum) -> String {
    v.to_possible_value()
        .map_or_else(String::new, |p| p.get_name().to_string())
}
