//! Model architecture: one layer, its switches, two presets (see README).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::params::ParamId;

/// How `Linear` quantises its weight matrix (`Qw`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Weights {
    /// Identity.
    F32,
    /// `sign(W - mean W) * mean|W|` (BitNet).
    Binary,
    /// `clamp(round(W / g), -1, 1) * g`, `g = max(mean|W|, 1e-5)` (BitNet b1.58).
    Ternary,
}

/// The scale of a quantised weight matrix (`--weight-scale`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum WeightScale {
    /// The codes times the matrix's mean absolute value (binary) or gamma (ternary).
    #[default]
    Absmean,
    /// The codes themselves: exactly -1, (0,) +1 (the binary model of Li 2024).
    None,
}

/// What the weight quantiser sees (`--weight-centre`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum WeightCentre {
    /// `W` itself (binary codes are the signs of `W - mean W` either way).
    #[default]
    None,
    /// `W - mean W`, differentiated through the mean: the latent gradient is `g - mean g`
    /// (Li 2024, `bitnet/bitlinear.py`).
    Mean,
}

/// `Qw` of a quantised weight matrix: precision, scale and centring.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WeightQuantiser {
    pub weights: Weights,
    pub scale: WeightScale,
    pub centre: WeightCentre,
}

impl From<Weights> for WeightQuantiser {
    /// BitNet's quantiser of that precision (the defaults of `--weight-scale`, `--weight-centre`).
    fn from(weights: Weights) -> Self {
        WeightQuantiser {
            weights,
            scale: WeightScale::Absmean,
            centre: WeightCentre::None,
        }
    }
}

/// The weight matrices `--quantize` names: `attn` (W_Q, W_K, W_V, W_O), `mlp` (W_in, W_out),
/// `embed` (W_E, W_pos), `unembed` (W_U).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum QuantGroup {
    Attn,
    Mlp,
    Embed,
    Unembed,
}

impl QuantGroup {
    pub const ALL: [QuantGroup; 4] = [
        QuantGroup::Attn,
        QuantGroup::Mlp,
        QuantGroup::Embed,
        QuantGroup::Unembed,
    ];

    pub fn name(self) -> &'static str {
        match self {
            QuantGroup::Attn => "attn",
            QuantGroup::Mlp => "mlp",
            QuantGroup::Embed => "embed",
            QuantGroup::Unembed => "unembed",
        }
    }

    fn bit(self) -> u8 {
        1 << self as u8
    }
}

/// Which weight matrices a binary or ternary model quantises (`--quantize`): a non-empty set
/// of [`QuantGroup`]s, written `attn+mlp` (or `attn,mlp`) and `all`. Default `attn+mlp`: the
/// `Linear`s of the block, as BitNet.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct QuantScope(u8);

impl QuantScope {
    pub const ALL: QuantScope = QuantScope(0b1111);

    pub fn of(groups: &[QuantGroup]) -> Self {
        QuantScope(groups.iter().fold(0, |bits, g| bits | g.bit()))
    }

    pub fn contains(self, group: QuantGroup) -> bool {
        self.0 & group.bit() != 0
    }

    pub fn without(self, group: QuantGroup) -> Self {
        QuantScope(self.0 & !group.bit())
    }
}

impl Default for QuantScope {
    fn default() -> Self {
        QuantScope::of(&[QuantGroup::Attn, QuantGroup::Mlp])
    }
}

impl FromStr for QuantScope {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let mut scope = QuantScope(0);
        for part in s.split([',', '+']).map(str::trim) {
            scope.0 |= match part {
                "all" => QuantScope::ALL.0,
                _ => QuantGroup::ALL
                    .into_iter()
                    .find(|g| g.name() == part)
                    .ok_or_else(|| {
                        format!("`{part}` is not attn, mlp, embed, unembed or all (join them with + or ,)")
                    })?
                    .bit(),
            };
        }
        Ok(scope)
    }
}

impl fmt::Display for QuantScope {
    /// `all`, or the groups in a fixed order joined by `+`.
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        if *self == QuantScope::ALL {
            return f.write_str("all");
        }
        let names: Vec<&str> = QuantGroup::ALL
            .into_iter()
            .filter(|&g| self.contains(g))
            .map(QuantGroup::name)
            .collect();
        f.write_str(&names.join("+"))
    }
}

impl Serialize for QuantScope {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for QuantScope {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?
            .parse()
            .map_err(|e| serde::de::Error::custom(format!("quantize: {e}")))
    }
}

/// How `Linear` quantises its input activations (`Qa`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum ActQuant {
    None,
    /// Per-token absmax fake-quantisation to int8.
    Int8,
}

/// Normalisation applied to a `Linear` input before quantisation (`N`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LinearNorm {
    None,
    /// Per-token `x / sqrt(mean(x^2) + 1e-5)`, no gain.
    Rms,
}

/// Parameter initialisation scheme.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Init {
    /// Every weight matrix N(0, (0.8/sqrt(d_model))^2), as TransformerLens (the `nanda`
    /// preset's; `--init nanda`).
    #[value(name = "nanda")]
    TransformerLens,
    /// Embeddings N(0, 1); every other matrix U(+-1/sqrt(fan_in)), as PyTorch modules.
    Pytorch,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Preset {
    /// Full-precision model of Nanda et al. (TransformerLens grokking demo).
    Nanda,
    /// Ternary BitNet b1.58 model of the study bitgrok reproduces.
    SeedBitnet,
}

/// Epsilon of every RMS normalisation.
pub const NORM_EPS: f64 = 1e-5;
/// Floor of the absmax in int8 activation quantisation and of the ternary scale.
pub const QUANT_EPS: f64 = 1e-5;
/// Largest modulus: its p² pairs must stay a modest host allocation.
pub const MAX_P: usize = 4096;
/// Largest d_model, d_head, d_mlp and head count.
pub const MAX_WIDTH: usize = 16384;
/// Sequence length: `[a, b, =]`.
pub const N_CTX: usize = 3;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ModelConfig {
    pub p: usize,
    pub d_model: usize,
    pub n_heads: usize,
    pub d_head: usize,
    pub d_mlp: usize,
    pub weights: Weights,
    /// The matrices binary and ternary weights quantise; absent from older configs, which
    /// quantised `attn+mlp`.
    #[serde(default)]
    pub quantize: QuantScope,
    #[serde(default)]
    pub weight_scale: WeightScale,
    #[serde(default)]
    pub weight_centre: WeightCentre,
    pub act_quant: ActQuant,
    pub linear_norm: LinearNorm,
    pub pos_embed: bool,
    pub causal: bool,
    pub final_norm: bool,
    /// Biases in every `Linear` and the unembedding (b_Q, b_K, b_V, b_O, b_in, b_out, b_U), as in
    /// TransformerLens and the original grokking code; bitgrok's presets have none.
    #[serde(default)]
    pub biases: bool,
    /// The unembedding also has an output for `=` (d_vocab_out = p + 1), never a label, as in
    /// the original grokking code.
    #[serde(default)]
    pub eq_output: bool,
    /// Not part of the architecture; absent from test-vector configs.
    #[serde(default = "default_init")]
    pub init: Init,
}

fn default_init() -> Init {
    Init::TransformerLens
}

/// The widths of Nanda et al.'s model, every preset's default.
pub const DEFAULT_D_MODEL: usize = 128;
pub const DEFAULT_N_HEADS: usize = 4;
pub const DEFAULT_D_HEAD: usize = 32;
pub const DEFAULT_D_MLP: usize = 512;

impl ModelConfig {
    pub fn preset(preset: Preset, p: usize) -> Self {
        let base = ModelConfig {
            p,
            d_model: DEFAULT_D_MODEL,
            n_heads: DEFAULT_N_HEADS,
            d_head: DEFAULT_D_HEAD,
            d_mlp: DEFAULT_D_MLP,
            weights: Weights::F32,
            quantize: QuantScope::default(),
            weight_scale: WeightScale::Absmean,
            weight_centre: WeightCentre::None,
            act_quant: ActQuant::None,
            linear_norm: LinearNorm::None,
            pos_embed: true,
            causal: true,
            final_norm: false,
            biases: false,
            eq_output: false,
            init: Init::TransformerLens,
        };
        match preset {
            Preset::Nanda => base,
            Preset::SeedBitnet => ModelConfig {
                weights: Weights::Ternary,
                act_quant: ActQuant::Int8,
                linear_norm: LinearNorm::Rms,
                pos_embed: false,
                causal: false,
                final_norm: true,
                init: Init::Pytorch,
                ..base
            },
        }
    }

    /// Vocabulary: the p numbers and `=`.
    pub fn d_vocab(&self) -> usize {
        self.p + 1
    }

    /// Outputs of the unembedding: the p labels (and `=` with `eq_output`).
    pub fn d_vocab_out(&self) -> usize {
        self.p + self.eq_output as usize
    }

    /// Width of the concatenated heads.
    pub fn d_attn(&self) -> usize {
        self.n_heads * self.d_head
    }

    /// `Linear`s read their inputs as they are: no norm, no activation quantisation.
    pub fn plain_linear_inputs(&self) -> bool {
        self.linear_norm == LinearNorm::None && self.act_quant == ActQuant::None
    }

    /// Whether `Qw` quantises the weight matrix `id` (binary or ternary weights, in scope).
    pub fn quantises(&self, id: ParamId) -> bool {
        id.quant_group().is_some_and(|g| self.quantises_group(g))
    }

    /// Whether `Qw` quantises the matrices of `group`.
    pub fn quantises_group(&self, group: QuantGroup) -> bool {
        self.weights != Weights::F32 && self.quantize.contains(group)
    }

    /// The `Linear`s of `group` (attn or mlp) take int8 codes: their weights are quantised and
    /// their products are integer sums, scaled once.
    pub fn integer_inputs(&self, group: QuantGroup) -> bool {
        self.act_quant == ActQuant::Int8 && self.quantises_group(group)
    }

    /// The weight quantiser `Qw` of the matrices it quantises.
    pub fn weight_quantiser(&self) -> WeightQuantiser {
        WeightQuantiser {
            weights: self.weights,
            scale: self.weight_scale,
            centre: self.weight_centre,
        }
    }

    /// Token id of `=`.
    pub fn eq_token(&self) -> usize {
        self.p
    }

    /// Checks the sizes make a model; returns the first problem, naming the option. The upper
    /// bounds keep hostile configs from asking for unbounded host memory; what the adapter can
    /// hold is checked against its limits when the engine is built.
    pub fn validate(&self) -> Result<(), String> {
        let ranges = [
            ("p", self.p, 2, MAX_P),
            ("d-model", self.d_model, 1, MAX_WIDTH),
            ("n-heads", self.n_heads, 1, MAX_WIDTH),
            ("d-head", self.d_head, 1, MAX_WIDTH),
            ("d-mlp", self.d_mlp, 1, MAX_WIDTH),
        ];
        for (name, value, min, max) in ranges {
            if !(min..=max).contains(&value) {
                return Err(format!("--{name} {value}: must be between {min} and {max}"));
            }
        }
        if self.weights == Weights::F32 {
            let default = ModelConfig::preset(Preset::Nanda, self.p);
            for (name, set, shown) in [
                (
                    "quantize",
                    self.quantize != default.quantize,
                    self.quantize.to_string(),
                ),
                (
                    "weight-scale",
                    self.weight_scale != default.weight_scale,
                    super::name_of(self.weight_scale),
                ),
                (
                    "weight-centre",
                    self.weight_centre != default.weight_centre,
                    super::name_of(self.weight_centre),
                ),
            ] {
                if set {
                    return Err(format!(
                        "--{name} {shown}: only binary and ternary weights are quantised (--weights f32 given)"
                    ));
                }
            }
        }
        if self.n_heads * self.d_head != self.d_model {
            return Err(format!(
                "--d-head {}: n-heads × d-head must equal d-model ({} × {} ≠ {})",
                self.d_head, self.n_heads, self.d_head, self.d_model
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantize_scopes_parse_and_print() {
        let scope = |s: &str| s.parse::<QuantScope>();
        assert_eq!(scope("attn,mlp"), Ok(QuantScope::default()));
        assert_eq!(scope("mlp+attn"), Ok(QuantScope::default()));
        assert_eq!(scope("attn+mlp+embed+unembed"), Ok(QuantScope::ALL));
        assert_eq!(scope("all").unwrap().to_string(), "all");
        assert_eq!(scope("unembed,embed").unwrap().to_string(), "embed+unembed");
        assert!(!scope("embed").unwrap().contains(QuantGroup::Unembed));
        for bad in ["", "attn,", "attention", "none"] {
            assert!(scope(bad).is_err(), "{bad:?} parsed");
        }
    }

    /// Configs written before the quantiser switches existed load as the quantiser they ran:
    /// BitNet's, on the `Linear`s of the block.
    #[test]
    fn old_configs_keep_their_quantiser() {
        let mut json = serde_json::to_value(ModelConfig::preset(Preset::SeedBitnet, 7)).unwrap();
        let fields = json.as_object_mut().unwrap();
        for field in ["quantize", "weight_scale", "weight_centre"] {
            assert!(fields.remove(field).is_some(), "{field} is written");
        }
        let old: ModelConfig = serde_json::from_value(json).unwrap();
        assert_eq!(old, ModelConfig::preset(Preset::SeedBitnet, 7));
        assert_eq!(
            old.weight_quantiser(),
            WeightQuantiser::from(Weights::Ternary)
        );
        let quantised: Vec<ParamId> = ParamId::ALL
            .into_iter()
            .filter(|&id| old.quantises(id))
            .collect();
        use ParamId::*;
        assert_eq!(quantised, [WQ, WK, WV, WO, WIn, WOut]);
    }

    #[test]
    fn scopes_round_trip_through_json() {
        let mut c = ModelConfig::preset(Preset::Nanda, 7);
        c.weights = Weights::Binary;
        c.quantize = "mlp+unembed".parse().unwrap();
        c.weight_scale = WeightScale::None;
        c.weight_centre = WeightCentre::Mean;
        let json = serde_json::to_string(&c).unwrap();
        assert!(json.contains(r#""quantize":"mlp+unembed""#), "{json}");
        assert_eq!(serde_json::from_str::<ModelConfig>(&json).unwrap(), c);
        let bad = json.replace("mlp+unembed", "mlp+bias");
        let err = serde_json::from_str::<ModelConfig>(&bad)
            .unwrap_err()
            .to_string();
        assert!(err.contains("quantize: `bias`"), "{err}");
    }

    #[test]
    fn init_takes_the_preset_names() {
        use clap::ValueEnum;
        assert_eq!(Init::from_str("nanda", false), Ok(Init::TransformerLens));
        assert_eq!(Init::from_str("pytorch", false), Ok(Init::Pytorch));
    }

    #[test]
    fn full_precision_refuses_quantiser_switches() {
        let f32_model = ModelConfig::preset(Preset::Nanda, 7);
        assert_eq!(f32_model.validate(), Ok(()));
        let mut c = f32_model.clone();
        c.quantize = QuantScope::ALL;
        assert!(c.validate().unwrap_err().starts_with("--quantize all:"));
        let mut c = f32_model.clone();
        c.weight_centre = WeightCentre::Mean;
        assert!(c
            .validate()
            .unwrap_err()
            .starts_with("--weight-centre mean:"));
        let mut c = f32_model;
        c.weight_scale = WeightScale::None;
        assert!(c
            .validate()
            .unwrap_err()
            .starts_with("--weight-scale none:"));
        c.weights = Weights::Binary;
        assert_eq!(c.validate(), Ok(()));
        assert!(ParamId::ALL
            .into_iter()
            .all(|id| !ModelConfig::preset(Preset::Nanda, 7).quantises(id)));
    }
}
