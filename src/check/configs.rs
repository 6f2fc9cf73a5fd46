//! The configurations the conformance checks run: every switch combination, odd widths, the
//! weight quantiser's switches and the model axis's.

use crate::model::{ActQuant, LinearNorm, ModelConfig, Weights};

/// Every combination of the five switches at a small size (p = 11, d_model 32, 2 heads × 16,
/// d_mlp 64), each with a seeded PyTorch-style initialisation. Biases and the `=` output (the
/// layout of imported models) are switched on in half the combinations each, so that each of
/// their settings meets every setting of every other switch.
pub fn switch_combinations() -> Vec<ModelConfig> {
    let mut out = Vec::new();
    for weights in [Weights::F32, Weights::Binary, Weights::Ternary] {
        for act_quant in [ActQuant::None, ActQuant::Int8] {
            for linear_norm in [LinearNorm::None, LinearNorm::Rms] {
                for bits in 0..8u32 {
                    let mut c = ModelConfig::preset(crate::model::Preset::SeedBitnet, 11);
                    c.d_model = 32;
                    c.n_heads = 2;
                    c.d_head = 16;
                    c.d_mlp = 64;
                    c.weights = weights;
                    c.act_quant = act_quant;
                    c.linear_norm = linear_norm;
                    c.pos_embed = bits & 1 != 0;
                    c.causal = bits & 2 != 0;
                    c.final_norm = bits & 4 != 0;
                    c.biases = c.pos_embed != c.causal;
                    c.eq_output = c.causal != c.final_norm;
                    out.push(c);
                }
            }
        }
    }
    out
}

/// One configuration per weight precision, activation quantisation and `Linear` norm of
/// [`switch_combinations`], at widths that are no multiple of a packed word (d_model 42 = 2 heads
/// × 21, d_mlp 70): the products' reads of packed rows and columns straddle words and end inside
/// one, which the combinations' widths (multiples of 16) never do.
pub fn odd_width_configs() -> Vec<ModelConfig> {
    let mut out: Vec<ModelConfig> = Vec::new();
    for mut c in switch_combinations() {
        let key = |c: &ModelConfig| (c.weights, c.act_quant, c.linear_norm);
        if out.iter().all(|o| key(o) != key(&c)) {
            (c.d_model, c.n_heads, c.d_head, c.d_mlp) = (42, 2, 21, 70);
            out.push(c);
        }
    }
    out
}

/// The weight quantiser's switches with each bit precision, at the odd widths of
/// [`odd_width_configs`]: each scope other than the default (every group alone, and all) with
/// each of the four quantisers (`--weight-scale absmean|none` × `--weight-centre none|mean`),
/// 2 × 5 × 4 = 40 configurations. They alternate between the `nanda` architecture (positional
/// embeddings, plain `Linear` inputs) and `seed-bitnet`'s (RMS norms, int8 activations, the final
/// norm, with biases and an `=` output), so that each scope and quantiser meets both, one per
/// precision; the other switches are covered by [`switch_combinations`].
pub fn quantiser_configs() -> Vec<ModelConfig> {
    use crate::model::{Preset, QuantGroup, QuantScope, WeightCentre, WeightScale};
    let scopes = QuantGroup::ALL
        .map(|g| QuantScope::of(&[g]))
        .into_iter()
        .chain([QuantScope::ALL]);
    let quantisers = [WeightScale::Absmean, WeightScale::None]
        .into_iter()
        .flat_map(|s| [WeightCentre::None, WeightCentre::Mean].map(|c| (s, c)));
    let mut out = Vec::new();
    for (w, weights) in [Weights::Binary, Weights::Ternary].into_iter().enumerate() {
        for (i, quantize) in scopes.clone().enumerate() {
            for (j, (weight_scale, weight_centre)) in quantisers.clone().enumerate() {
                let seed = (w + i + j) % 2 == 1;
                let preset = if seed {
                    Preset::SeedBitnet
                } else {
                    Preset::Nanda
                };
                out.push(ModelConfig {
                    d_model: 42,
                    n_heads: 2,
                    d_head: 21,
                    d_mlp: 70,
                    weights,
                    quantize,
                    weight_scale,
                    weight_centre,
                    biases: seed,
                    eq_output: seed,
                    ..ModelConfig::preset(preset, 11)
                });
            }
        }
    }
    out
}

/// Short name of a configuration's switches.
pub fn case_name(c: &ModelConfig) -> String {
    let default_quantiser = crate::model::WeightQuantiser::from(c.weights);
    let quantiser = if c.quantize == Default::default() && c.weight_quantiser() == default_quantiser
    {
        String::new()
    } else {
        format!(
            " q={} {:?}/{:?}",
            c.quantize, c.weight_scale, c.weight_centre
        )
    };
    format!(
        "p{} {:?}{quantiser}/{:?}/{:?}{}{}{}{}{}",
        c.p,
        c.weights,
        c.act_quant,
        c.linear_norm,
        if c.pos_embed { " pos" } else { "" },
        if c.causal { " causal" } else { "" },
        if c.final_norm { " final_norm" } else { "" },
        if c.biases { " biases" } else { "" },
        if c.eq_output { " eq_output" } else { "" },
    )
    .to_lowercase()
}

/// The configurations of the model-axis check: one per weight precision (int8 activations for
/// the bit models), with positional embeddings, the final norm, biases and the `=` output on;
/// and the ternary one again with every matrix quantised, unscaled and centred (the centred
/// gradients are one more per-model reduction).
pub fn stacked_configs() -> Vec<ModelConfig> {
    let wanted = [
        (Weights::F32, ActQuant::None, LinearNorm::Rms),
        (Weights::Binary, ActQuant::Int8, LinearNorm::Rms),
        (Weights::Ternary, ActQuant::Int8, LinearNorm::None),
    ];
    let mut out: Vec<ModelConfig> = switch_combinations()
        .into_iter()
        .filter(|c| {
            wanted.contains(&(c.weights, c.act_quant, c.linear_norm))
                && c.pos_embed
                && c.final_norm
                && c.biases
                && c.eq_output
        })
        .collect();
    let ternary = out.last().expect("a ternary configuration").clone();
    out.push(ModelConfig {
        quantize: crate::model::QuantScope::ALL,
        weight_scale: crate::model::WeightScale::None,
        weight_centre: crate::model::WeightCentre::Mean,
        ..ternary
    });
    out
}
