//! The mathematics of taking a trained model apart, after Nanda et al. 2023 ("Progress measures
//! for grokking via mechanistic interpretability") and Zhong et al. 2023 ("The Clock and the
//! Pizza"): pure, deterministic f64 functions on the host.
//!
//! Conventions: functions of the `p^2` pairs are a-major (pair `(a, b)` at index `a p + b`);
//! frequencies are 1-based, `k = 1..=K` with `K = p / 2` (`(p - 1) / 2` for odd p; for even p the
//! last is the Nyquist frequency, which has a cosine and no sine, see [`fourier`]); vectors "per
//! frequency" have frequency 1 at index 0.
//!
//! * [`fourier`]: the real Fourier basis, per-frequency norms, the 2-D transform;
//! * [`key_frequencies`]: the sparse set of frequencies a model uses, by a documented rule;
//! * [`neurons`]: each MLP neuron's variance per frequency, and frequency clusters;
//! * [`neuron_measures`]: each neuron's frequency profile as a distribution, clustered-fraction
//!   curves over the threshold, firing rates and importance;
//! * [`rectification_null`]: what the ReLU alone leaves of single-frequency neurons;
//! * [`logit_algorithm`]: the clock form of the logits, and frequency ablations;
//! * [`stats`]: location, spread and rank tests of samples;
//! * [`measures`]: cross-entropy, restricted and excluded logits, Gini, sum of squared weights;
//! * [`neuron_logit_map`]: `W_L = W_out W_U` and its Fourier norms;
//! * [`svd`]: singular values, principal components, a Gaussian control;
//! * [`clock_pizza`]: distance irrelevance and gradient symmetricity.

pub mod clock_pizza;
pub mod fourier;
pub mod key_frequencies;
pub mod logit_algorithm;
pub mod measures;
pub mod neuron_logit_map;
pub mod neuron_measures;
pub mod neurons;
pub mod rectification_null;
pub mod stats;
pub mod svd;

pub use clock_pizza::{
    correct_logits, distance_irrelevance, gradient_symmetricity, model_gradient_symmetricity,
};
pub use fourier::{basis, fourier_2d, frequency_norms, FourierBasis};
pub use key_frequencies::{
    key_frequencies, key_frequencies_combined, KeyFrequencies, KeyFrequencyRule,
};
pub use measures::{cross_entropy, excluded_logits, gini, restricted_logits, sum_squares};
pub use neuron_logit_map::{logit_map_frequency_norms, neuron_logit_map};
pub use neurons::{cluster_sizes, clusters, frequency_fractions};
pub use svd::{gaussian_control, principal_components, singular_values, PrincipalComponents};

use nalgebra::DMatrix;

use crate::model::{ParamId, Params};

/// `p x d_model`: the token embeddings `W_E` of the p numbers (the `=` row dropped), the matrix
/// whose columns [`FourierBasis::transform`] takes to frequencies.
pub fn number_embeddings(params: &Params) -> DMatrix<f64> {
    let c = &params.config;
    DMatrix::from_row_slice(c.p, c.d_model, &params.get(ParamId::WE)[..c.p * c.d_model])
}

/// Per frequency `1..=K` (index 0 = frequency 1), the energy of the number embeddings there: the
/// squared [`frequency_norms`] of `basis.matrix * W_E[..p]` (the input to [`key_frequencies`]).
pub fn embedding_energy(params: &Params, basis: &FourierBasis) -> Vec<f64> {
    frequency_norms(&basis.transform(&number_embeddings(params)))
        .into_iter()
        .map(|n| n * n)
        .collect()
}
