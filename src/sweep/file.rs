//! `sweep.json` (the spec, the shard and one row per finished model; what `sweep-merge` and
//! `sweep-report` read) and `sweep.csv` (the rows, for spreadsheets and pandas).

use std::fmt::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use super::{name_of, ModelSettings, Shard, SweepSpec};
use crate::report::levels::LevelSummary;
use crate::report::Summary;
use crate::run::write_atomic;

/// One trained and analysed model.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SweepRow {
    #[serde(flatten)]
    pub settings: ModelSettings,
    /// Its run directory, relative to the directory of the sweep.json that lists it.
    pub run: PathBuf,
    pub epochs: usize,
    pub memorised_at: Option<usize>,
    pub grokked_at: Option<usize>,
    pub final_train_loss: f64,
    pub final_test_loss: f64,
    pub accuracy_all_pairs: f64,
    pub key_frequencies: Vec<usize>,
    pub key_frequency_share: f64,
    pub clustered_fraction: f64,
    /// Restricted and excluded loss at the last checkpoint the progress measures visited.
    pub restricted_loss: f64,
    pub excluded_loss: f64,
    pub distance_irrelevance: f64,
    pub gradient_symmetricity: f64,
    /// The run at each level (features, algorithm, implementation).
    #[serde(flatten)]
    pub levels: LevelSummary,
    /// The adapter and bitgrok version that trained it (rows written before it: empty).
    #[serde(default)]
    pub trained_on: String,
}

impl SweepRow {
    pub fn new(settings: ModelSettings, run: PathBuf, s: &Summary) -> Self {
        let last = s.progress.last();
        SweepRow {
            settings,
            run,
            epochs: s.epoch,
            memorised_at: s.phases.memorised,
            grokked_at: s.phases.grokked,
            final_train_loss: s.final_train_loss,
            final_test_loss: s.final_test_loss,
            accuracy_all_pairs: s.accuracy_all_pairs,
            key_frequencies: s.key_frequencies.clone(),
            key_frequency_share: s.key_frequency_share,
            clustered_fraction: s.neurons.clustered_fraction,
            restricted_loss: last.map_or(f64::NAN, |q| q.restricted_loss),
            excluded_loss: last.map_or(f64::NAN, |q| q.excluded_loss),
            distance_irrelevance: s.distance_irrelevance,
            gradient_symmetricity: s.gradient_symmetricity,
            levels: LevelSummary::of(s),
            trained_on: format!("{} (bitgrok {})", s.config.adapter, s.config.crate_version),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SweepFile {
    pub spec: SweepSpec,
    /// The slice of the plan this directory trains; [`Shard::WHOLE`] for a whole or merged sweep.
    pub shard: Shard,
    /// In plan order.
    pub rows: Vec<SweepRow>,
}

pub const JSON_NAME: &str = "sweep.json";
/// Most bytes a `sweep.json` may take: about a kilobyte per model, for a million models.
const MAX_JSON_BYTES: u64 = 1 << 30;
pub const CSV_NAME: &str = "sweep.csv";

impl SweepFile {
    pub fn read(dir: &Path) -> Result<SweepFile> {
        let path = dir.join(JSON_NAME);
        if !path.is_file() {
            crate::usage_bail!(
                "{} is not a sweep directory: it has no {JSON_NAME}",
                dir.display()
            );
        }
        let text = crate::bounded_read::read_to_string(&path, MAX_JSON_BYTES, "a sweep.json")?;
        let file: SweepFile =
            serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
        if file.shard.count == 0 || file.shard.index >= file.shard.count {
            crate::usage_bail!(
                "{}: shard {}/{} does not exist",
                path.display(),
                file.shard.index,
                file.shard.count
            );
        }
        Ok(file)
    }

    /// Writes sweep.json and sweep.csv atomically.
    pub fn write(&self, dir: &Path) -> Result<()> {
        let json = serde_json::to_string_pretty(self)?;
        write_atomic(&dir.join(JSON_NAME), json.as_bytes())?;
        write_atomic(&dir.join(CSV_NAME), self.csv().as_bytes())
    }

    fn csv(&self) -> String {
        let mut out = String::from(
            "name,weights,act_quant,weight_decay,lr,seed,data_seed,run,epochs,memorised_at,\
             grokked_at,final_train_loss,final_test_loss,accuracy_all_pairs,key_frequencies,\
             n_key_frequencies,key_frequency_share,clustered_fraction,restricted_loss,\
             excluded_loss,distance_irrelevance,gradient_symmetricity,kind,reached_at,relapses,\
             sparse_features,key_algorithm,clock_form_fraction,all_keys_ablated_over_chance,\
             needed_frequencies,needed_outside_keys,\
             clustered_pre,clustered_post,clustered_null,clustered_pre_weighted,\
             clustered_readout,median_frequencies_needed_pre,median_firing_rate,axes\n",
        );
        let opt = |v: Option<usize>| v.map_or(String::new(), |e| e.to_string());
        for r in &self.rows {
            let s = &r.settings;
            let freqs: Vec<String> = r.key_frequencies.iter().map(|f| f.to_string()).collect();
            let _ = writeln!(
                out,
                "{},{},{},{},{},{},{},{},{},{},{},{:e},{:e},{},{},{},{},{},{:e},{:e},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{}",
                s.name,
                name_of(s.weights),
                name_of(s.act_quant),
                s.weight_decay,
                s.lr,
                s.seed,
                s.data_seed,
                r.run.display(),
                r.epochs,
                opt(r.memorised_at),
                opt(r.grokked_at),
                r.final_train_loss,
                r.final_test_loss,
                r.accuracy_all_pairs,
                freqs.join(" "),
                r.key_frequencies.len(),
                r.key_frequency_share,
                r.clustered_fraction,
                r.restricted_loss,
                r.excluded_loss,
                r.distance_irrelevance,
                r.gradient_symmetricity,
                r.levels.kind,
                opt(r.levels.reached_at),
                r.levels.relapses,
                r.levels.sparse_features,
                r.levels.key_algorithm,
                r.levels.clock_form_fraction,
                r.levels.all_keys_ablated_over_chance,
                r.levels.needed_frequencies,
                r.levels.needed_outside_keys,
                r.levels.clustered_pre,
                r.levels.clustered_post,
                r.levels.clustered_null,
                r.levels.clustered_pre_weighted,
                r.levels.clustered_readout,
                r.levels.median_frequencies_needed_pre,
                r.levels.median_firing_rate,
                s.axes
                    .iter()
                    .map(|a| format!("{}={a}", a.option()))
                    .collect::<Vec<_>>()
                    .join(" ")
            );
        }
        out
    }
}
