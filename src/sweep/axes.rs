//! The grid axes of a sweep beyond weight precision, activation quantisation, weight decay,
//! learning rate and seed: any architecture switch, width, modulus or training fraction of
//! `train`, each given as a list of [`Setting`]s of one kind.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::model::{name_of, Init, LinearNorm, ModelConfig, QuantScope, WeightCentre, WeightScale};
use crate::run::RunConfig;

/// One value of one further axis: the `train` option it sets and its value.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Setting {
    P(usize),
    Frac(f64),
    DModel(usize),
    NHeads(usize),
    DHead(usize),
    DMlp(usize),
    Quantize(QuantScope),
    WeightScale(WeightScale),
    WeightCentre(WeightCentre),
    Init(Init),
    LinearNorm(LinearNorm),
    PosEmbed(bool),
    Causal(bool),
    FinalNorm(bool),
}

impl Setting {
    /// The `train` option it sets, as written on the command line (without `--`).
    pub fn option(&self) -> &'static str {
        match self {
            Setting::P(_) => "p",
            Setting::Frac(_) => "frac",
            Setting::DModel(_) => "d-model",
            Setting::NHeads(_) => "n-heads",
            Setting::DHead(_) => "d-head",
            Setting::DMlp(_) => "d-mlp",
            Setting::Quantize(_) => "quantize",
            Setting::WeightScale(_) => "weight-scale",
            Setting::WeightCentre(_) => "weight-centre",
            Setting::Init(_) => "init",
            Setting::LinearNorm(_) => "linear-norm",
            Setting::PosEmbed(_) => "pos-embed",
            Setting::Causal(_) => "causal",
            Setting::FinalNorm(_) => "final-norm",
        }
    }

    /// Whether it only matters to quantised weights (a sweep's f32 models keep their preset's
    /// value).
    pub fn quantiser_only(&self) -> bool {
        matches!(
            self,
            Setting::Quantize(_) | Setting::WeightScale(_) | Setting::WeightCentre(_)
        )
    }

    /// Sets it in `config`.
    pub fn apply(&self, config: &mut RunConfig) {
        let m = &mut config.model;
        match *self {
            Setting::P(v) => m.p = v,
            Setting::Frac(v) => config.frac = v,
            Setting::DModel(v) => m.d_model = v,
            Setting::NHeads(v) => m.n_heads = v,
            Setting::DHead(v) => m.d_head = v,
            Setting::DMlp(v) => m.d_mlp = v,
            Setting::Quantize(v) => m.quantize = v,
            Setting::WeightScale(v) => m.weight_scale = v,
            Setting::WeightCentre(v) => m.weight_centre = v,
            Setting::Init(v) => m.init = v,
            Setting::LinearNorm(v) => m.linear_norm = v,
            Setting::PosEmbed(v) => m.pos_embed = v,
            Setting::Causal(v) => m.causal = v,
            Setting::FinalNorm(v) => m.final_norm = v,
        }
    }

    /// Records an architecture switch in `o`; false for a modulus, fraction or width, which
    /// are no switch.
    pub fn record(&self, o: &mut ModelOverrides) -> bool {
        match *self {
            Setting::Quantize(v) => o.quantize = Some(v),
            Setting::WeightScale(v) => o.weight_scale = Some(v),
            Setting::WeightCentre(v) => o.weight_centre = Some(v),
            Setting::Init(v) => o.init = Some(v),
            Setting::LinearNorm(v) => o.linear_norm = Some(v),
            Setting::PosEmbed(v) => o.pos_embed = Some(v),
            Setting::Causal(v) => o.causal = Some(v),
            Setting::FinalNorm(v) => o.final_norm = Some(v),
            Setting::P(_)
            | Setting::Frac(_)
            | Setting::DModel(_)
            | Setting::NHeads(_)
            | Setting::DHead(_)
            | Setting::DMlp(_) => return false,
        }
        true
    }

    /// Its part of a model's directory name, e.g. `linear-norm-rms`, `p-23`.
    pub fn name_part(&self) -> String {
        format!("{}-{self}", self.option())
    }
}

impl fmt::Display for Setting {
    /// The value as the option takes it.
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        let on_off = |v: bool| if v { "on" } else { "off" };
        match *self {
            Setting::P(v)
            | Setting::DModel(v)
            | Setting::NHeads(v)
            | Setting::DHead(v)
            | Setting::DMlp(v) => write!(f, "{v}"),
            Setting::Frac(v) => write!(f, "{}", super::number_name(v)),
            Setting::Quantize(v) => write!(f, "{v}"),
            Setting::WeightScale(v) => f.write_str(&name_of(v)),
            Setting::WeightCentre(v) => f.write_str(&name_of(v)),
            Setting::Init(v) => f.write_str(&name_of(v)),
            Setting::LinearNorm(v) => f.write_str(&name_of(v)),
            Setting::PosEmbed(v) | Setting::Causal(v) | Setting::FinalNorm(v) => {
                f.write_str(on_off(v))
            }
        }
    }
}

/// A sweep's architecture switches over its preset's, for every model (None: the preset's own).
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ModelOverrides {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quantize: Option<QuantScope>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight_scale: Option<WeightScale>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight_centre: Option<WeightCentre>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub init: Option<Init>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub linear_norm: Option<LinearNorm>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pos_embed: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub causal: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub final_norm: Option<bool>,
}

impl ModelOverrides {
    pub fn apply(&self, m: &mut ModelConfig) {
        m.quantize = self.quantize.unwrap_or(m.quantize);
        m.weight_scale = self.weight_scale.unwrap_or(m.weight_scale);
        m.weight_centre = self.weight_centre.unwrap_or(m.weight_centre);
        m.init = self.init.unwrap_or(m.init);
        m.linear_norm = self.linear_norm.unwrap_or(m.linear_norm);
        m.pos_embed = self.pos_embed.unwrap_or(m.pos_embed);
        m.causal = self.causal.unwrap_or(m.causal);
        m.final_norm = self.final_norm.unwrap_or(m.final_norm);
    }
}

/// Every combination of one setting from each axis, the first axis slowest.
pub fn combinations(axes: &[Vec<Setting>]) -> Vec<Vec<Setting>> {
    axes.iter().fold(vec![Vec::new()], |done, axis| {
        done.iter()
            .flat_map(|prefix| {
                axis.iter().map(move |s| {
                    let mut c = prefix.clone();
                    c.push(*s);
                    c
                })
            })
            .collect()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn combinations_cover_the_grid_in_order() {
        let axes = vec![
            vec![Setting::P(7), Setting::P(11)],
            vec![
                Setting::LinearNorm(LinearNorm::None),
                Setting::LinearNorm(LinearNorm::Rms),
            ],
        ];
        let names: Vec<String> = combinations(&axes)
            .iter()
            .map(|c| {
                c.iter()
                    .map(Setting::name_part)
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .collect();
        assert_eq!(
            names,
            [
                "p-7 linear-norm-none",
                "p-7 linear-norm-rms",
                "p-11 linear-norm-none",
                "p-11 linear-norm-rms"
            ]
        );
        assert_eq!(combinations(&[]), vec![Vec::<Setting>::new()]);
    }
}
