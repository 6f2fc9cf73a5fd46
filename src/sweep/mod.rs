//! Seed and hyper-parameter sweeps: a grid of models (further axes of [`axes::Setting`]s ×
//! weight precision × activation quantisation × weight decay × learning rate × seed) over one
//! base configuration, each trained
//! into its own run directory and summarised as one row of `sweep.json` / `sweep.csv`.
//! `--shard I/N` takes a deterministic slice of the grid; `sweep-merge` joins the slices;
//! `sweep-report` turns the rows into statistics, figures and a verdict.

pub mod axes;
pub(crate) mod figures;
pub mod file;
pub mod merge;
pub mod report;
pub mod run;
mod tables;

use std::fmt;
use std::str::FromStr;

use anyhow::Result;
use serde::{Deserialize, Serialize};

use crate::model::{ActQuant, Preset, Weights};
use crate::run::RunConfig;
use axes::{combinations, ModelOverrides, Setting};

/// What a sweep trains: the base configuration shared by every model and the axes of the grid.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SweepSpec {
    pub preset: Preset,
    pub p: usize,
    pub frac: f64,
    pub d_model: usize,
    pub n_heads: usize,
    pub d_head: usize,
    pub d_mlp: usize,
    pub epochs: usize,
    pub eval_every: usize,
    pub checkpoint_every: usize,
    pub stop_after_grok: Option<usize>,
    /// Seed s of the grid initialises with seed s and splits with `data_seed + s` (so seed 0 is
    /// `train`'s default run), or with `data_seed` for every seed under [`SplitMode::Fixed`].
    pub data_seed: u64,
    /// Sweeps written before the option split per seed.
    #[serde(default)]
    pub split: SplitMode,
    /// Architecture switches over the preset's, for every model (f32 models keep the preset's
    /// quantiser settings: they quantise nothing).
    #[serde(flatten)]
    pub overrides: ModelOverrides,
    /// Further axes, each a list of settings of one `train` option (sweeps written before them
    /// have none).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub axes: Vec<Vec<Setting>>,
    pub weights: Vec<Weights>,
    pub act_quant: Vec<ActQuant>,
    pub weight_decay: Vec<f64>,
    pub lr: Vec<f64>,
    pub seeds: Vec<u64>,
}

impl SweepSpec {
    /// Whether this grid is `earlier`'s with the same or more seeds: a sweep of it continues
    /// `earlier`'s directory, keeping its models.
    pub fn extends(&self, earlier: &SweepSpec) -> bool {
        let seeds = earlier.seeds.clone();
        *earlier
            == SweepSpec {
                seeds,
                ..self.clone()
            }
            && earlier.seeds.iter().all(|s| self.seeds.contains(s))
    }
}

/// Whether the seeds of a sweep move the train/test split or only the initialisation.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum SplitMode {
    /// Seed s splits with data seed + s.
    #[default]
    PerSeed,
    /// Every seed splits with the data seed: seeds vary the initialisation alone.
    Fixed,
}

/// The settings of one model of the grid.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ModelSettings {
    /// Its run directory's name, unique within the sweep.
    pub name: String,
    /// Its setting of each further axis.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub axes: Vec<Setting>,
    pub weights: Weights,
    pub act_quant: ActQuant,
    pub weight_decay: f64,
    pub lr: f64,
    pub seed: u64,
    pub data_seed: u64,
}

impl ModelSettings {
    /// The settings other than the seed: models of one variant differ only in their seed.
    pub fn variant(&self) -> String {
        format!(
            "{}{} {} wd={} lr={}",
            self.axes
                .iter()
                .map(|s| format!("{}={s} ", s.option()))
                .collect::<String>(),
            name_of(self.weights),
            name_of(self.act_quant),
            number_name(self.weight_decay),
            number_name(self.lr)
        )
    }
}

impl ModelSettings {
    /// Every setting of the grid but the seed, as (option, value) in the plan's order of axes:
    /// the factors a study compares.
    pub fn factors(&self) -> Vec<(&'static str, String)> {
        let mut f: Vec<(&'static str, String)> = self
            .axes
            .iter()
            .map(|s| (s.option(), s.to_string()))
            .collect();
        f.extend([
            ("weights", name_of(self.weights)),
            ("act-quant", name_of(self.act_quant)),
            ("weight-decay", number_name(self.weight_decay)),
            ("lr", number_name(self.lr)),
        ]);
        f
    }
}

/// A setting's number in names: as written (`0.001`), or in exponent form when that is much
/// shorter (`1e38`, not 39 digits).
pub fn number_name(x: f64) -> String {
    let plain = x.to_string();
    if plain.len() > 12 {
        format!("{x:e}")
    } else {
        plain
    }
}

pub use crate::model::name_of;

impl SweepSpec {
    /// Every model of the grid, in a fixed order (seed fastest), each with a validated run
    /// configuration.
    pub fn plan(&self) -> Result<Vec<(ModelSettings, RunConfig)>> {
        let mut out: Vec<(ModelSettings, RunConfig)> = Vec::new();
        for axes in combinations(&self.axes) {
            let prefix: String = axes.iter().map(|s| s.name_part() + "-").collect();
            for &weights in &self.weights {
                for &act_quant in &self.act_quant {
                    for &weight_decay in &self.weight_decay {
                        for &lr in &self.lr {
                            for &seed in &self.seeds {
                                let settings = ModelSettings {
                                    name: format!(
                                        "{prefix}{}-{}-wd{}-lr{}-s{seed}",
                                        name_of(weights),
                                        name_of(act_quant),
                                        number_name(weight_decay),
                                        number_name(lr)
                                    ),
                                    axes: axes.clone(),
                                    weights,
                                    act_quant,
                                    weight_decay,
                                    lr,
                                    seed,
                                    data_seed: match self.split {
                                        SplitMode::PerSeed => self.data_seed.wrapping_add(seed),
                                        SplitMode::Fixed => self.data_seed,
                                    },
                                };
                                let config = self.run_config(&settings)?;
                                if let Some((twin, _)) = out.iter().find(|(_, c)| *c == config) {
                                    if twin.name == settings.name {
                                        crate::usage_bail!(
                                            "a setting is listed twice: two models would be named {}",
                                            twin.name
                                        );
                                    }
                                    crate::usage_bail!(
                                        "models {} and {} of the grid would be the same model \
                                         (f32 weights ignore --quantize, --weight-scale and \
                                         --weight-centre); drop one of the settings",
                                        twin.name,
                                        settings.name
                                    );
                                }
                                out.push((settings, config));
                            }
                        }
                    }
                }
            }
        }
        Ok(out)
    }

    fn run_config(&self, s: &ModelSettings) -> Result<RunConfig> {
        let mut config = RunConfig::preset(self.preset);
        let m = &mut config.model;
        m.p = self.p;
        m.d_model = self.d_model;
        m.n_heads = self.n_heads;
        m.d_head = self.d_head;
        m.d_mlp = self.d_mlp;
        let mut overrides = self.overrides;
        if s.weights == Weights::F32 {
            (
                overrides.quantize,
                overrides.weight_scale,
                overrides.weight_centre,
            ) = (None, None, None);
        }
        overrides.apply(m);
        m.weights = s.weights;
        m.act_quant = s.act_quant;
        config.frac = self.frac;
        let quantised = s.weights != Weights::F32;
        for setting in s.axes.iter().filter(|x| quantised || !x.quantiser_only()) {
            setting.apply(&mut config);
        }
        config.data_seed = s.data_seed;
        config.seed = s.seed;
        config.adamw.lr = s.lr;
        config.adamw.weight_decay = s.weight_decay;
        config.epochs = self.epochs;
        config.eval_every = self.eval_every;
        config.checkpoint_every = self.checkpoint_every;
        config.stop_after_grok = self.stop_after_grok;
        config.validate()?;
        Ok(config)
    }
}

#[cfg(test)]
impl SweepSpec {
    /// A grid of one f32 `nanda` model at p = 7, seeds 0 and 3 (data seed 598), for tests.
    pub(crate) fn tiny(split: SplitMode) -> SweepSpec {
        SweepSpec {
            preset: Preset::Nanda,
            p: 7,
            frac: 0.5,
            d_model: 8,
            n_heads: 2,
            d_head: 4,
            d_mlp: 16,
            epochs: 10,
            eval_every: 1,
            checkpoint_every: 5,
            stop_after_grok: None,
            data_seed: 598,
            split,
            overrides: Default::default(),
            axes: Vec::new(),
            weights: vec![Weights::F32],
            act_quant: vec![ActQuant::None],
            weight_decay: vec![1.0],
            lr: vec![1e-3],
            seeds: vec![0, 3],
        }
    }
}

/// Slice `index` (from 0) of `count` of a sweep: the models whose position in the plan is
/// `index` modulo `count`, so slices stay balanced across the grid's axes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shard {
    pub index: usize,
    pub count: usize,
}

impl Shard {
    pub const WHOLE: Shard = Shard { index: 0, count: 1 };

    pub fn contains(&self, position: usize) -> bool {
        position % self.count == self.index
    }
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

impl FromStr for Shard {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Self, String> {
        let bad = || format!("{s:?}: expected I/N with 0 <= I < N, e.g. 3/16");
        let (i, n) = s.split_once('/').ok_or_else(bad)?;
        let (index, count) = (
            i.trim().parse().map_err(|_| bad())?,
            n.trim().parse().map_err(|_| bad())?,
        );
        if count == 0 || index >= count {
            return Err(bad());
        }
        Ok(Shard { index, count })
    }
}

/// Most seeds one range may hold.
const MAX_SEEDS: u64 = 100_000;

/// Seeds given as ranges and single values, e.g. `0-15` or `0,3,7-9`.
pub fn parse_seeds(s: &str) -> std::result::Result<Vec<u64>, String> {
    let mut seeds = Vec::new();
    for part in s.split(',') {
        let bad = || format!("{part:?} in {s:?}: expected a seed or a range A-B with A <= B");
        match part.split_once('-') {
            Some((a, b)) => {
                let (a, b): (u64, u64) = (
                    a.trim().parse().map_err(|_| bad())?,
                    b.trim().parse().map_err(|_| bad())?,
                );
                if a > b {
                    return Err(bad());
                }
                if b - a >= MAX_SEEDS {
                    return Err(format!(
                        "{part:?} in {s:?}: a range holds at most {MAX_SEEDS} seeds"
                    ));
                }
                seeds.extend(a..=b);
            }
            None => seeds.push(part.trim().parse().map_err(|_| bad())?),
        }
    }
    let mut sorted = seeds.clone();
    sorted.sort_unstable();
    sorted.dedup();
    if sorted.len() != seeds.len() {
        return Err(format!("{s:?} names a seed twice"));
    }
    Ok(seeds)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_range_beyond_the_cap_says_so() {
        let e = parse_seeds("0-999999999").unwrap_err();
        assert!(e.contains("at most 100000 seeds"), "{e}");
    }

    #[test]
    fn seeds_parse_as_ranges_and_lists() {
        assert_eq!(parse_seeds("0-3").unwrap(), vec![0, 1, 2, 3]);
        assert_eq!(parse_seeds("5,1-2").unwrap(), vec![5, 1, 2]);
        for bad in ["", "3-1", "a", "1,1", "0-1,1", "-2"] {
            assert!(parse_seeds(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn numbers_name_compactly() {
        assert_eq!(number_name(0.001), "0.001");
        assert_eq!(number_name(3.0), "3");
        assert_eq!(number_name(1e38), "1e38");
        assert_eq!(number_name(1.5e-20), "1.5e-20");
    }

    #[test]
    fn a_fixed_split_holds_the_data_seed_while_seeds_vary_the_initialisation() {
        let spec = SweepSpec::tiny;
        let seeds = |split| -> Vec<(u64, u64)> {
            spec(split)
                .plan()
                .unwrap()
                .iter()
                .map(|(_, c)| (c.seed, c.data_seed))
                .collect()
        };
        assert_eq!(seeds(SplitMode::PerSeed), vec![(0, 598), (3, 601)]);
        assert_eq!(seeds(SplitMode::Fixed), vec![(0, 598), (3, 598)]);
        // A sweep.json from before the option reads as per-seed.
        let mut json = serde_json::to_value(spec(SplitMode::Fixed)).unwrap();
        json.as_object_mut().unwrap().remove("split");
        let old: SweepSpec = serde_json::from_value(json).unwrap();
        assert_eq!(old.split, SplitMode::PerSeed);
    }

    #[test]
    fn shards_partition_the_plan() {
        let shards: Vec<Shard> = (0..3).map(|i| format!("{i}/3").parse().unwrap()).collect();
        for position in 0..10 {
            assert_eq!(shards.iter().filter(|s| s.contains(position)).count(), 1);
        }
        for bad in ["3/3", "1/0", "1", "a/2", "-1/2"] {
            assert!(bad.parse::<Shard>().is_err(), "{bad}");
        }
    }
}
