//! Sweep specs: the TOML a user submits, validated and expanded into trials.
//!
//! ```toml
//! name = "Table 1"
//! seeds = [0, 1, 2]
//! max_attempts = 3            # optional: attempts per trial before it fails for good
//! keep_checkpoints = false    # optional: keep each trial's last checkpoint after it completes
//! [dataset] [model] [train] [loss]   # a trial's config, as in RUN.toml
//! [grid]                      # dotted paths to lists; the grid is their product
//! "loss.omega" = [6, 8, 10]
//! loss = [{kind = "dice"}, {kind = "all", gamma = 0.1}]   # lists of whole tables
//! [search]                    # optional: random search (search.rs)
//! kind = "random"
//! trials = 20                 # configs drawn for each grid point
//! "train.lr" = { loguniform = [1e-5, 1e-2] }
//! ```
//!
//! Every grid point is validated as a whole trial config, so a bad value anywhere, or a loss
//! parameter the loss does not take, rejects the whole spec with the key and line at fault; so
//! do two grid points that resolve to the same config (`omega = 10` and `omega = 10.0`).
//! A spec is checked against [`SpecLimits`] before it is parsed and before its grid is
//! expanded, so an oversized sweep is refused at once rather than after minutes of work.
//! Each trial gets a stable key from its resolved config and seed, and the sweep an id from
//! its trials: resubmitting the same spec finds the same sweep and adds nothing.

mod early_stopping;
mod grid;
mod keys;
mod limits;
mod search;

use std::collections::{HashMap, HashSet};

use allsweep_config::lines::line_of;
use allsweep_config::params::describe;
use allsweep_config::trial::{syntax_error, ConfigError};
use allsweep_config::TrialConfig;
use toml::{Table, Value};

use crate::store::{NewSweep, NewTrial, TrialColumns};

pub use grid::GridAxis;
pub use limits::SpecLimits;
pub use search::{Dimension, Distribution, Search};

use crate::scheduler::early_stopping::Rule;

/// Keys a spec may hold at its top level besides the trial sections.
const SPEC_KEYS: [&str; 6] = ["name", "seeds", "grid", "search", "max_attempts", "keep_checkpoints"];
const SECTIONS: [&str; 4] = ["dataset", "model", "train", "loss"];

/// A validated spec.
#[derive(Debug, Clone)]
pub struct Spec {
    pub name: String,
    pub seeds: Vec<u64>,
    pub max_attempts: u32,
    pub keep_checkpoints: bool,
    /// The trial sections before grid values are applied.
    pub base: Table,
    pub grid: Vec<GridAxis>,
    /// How configs are chosen besides the grid.
    pub search: Search,
    /// The rule that stops losing trials early (`[search.early_stopping]`).
    pub early_stopping: Option<Rule>,
    /// The trials, validated, in grid order (then draw order) then seed order.
    pub trials: Vec<NewTrial>,
    pub id: String,
}

fn error(source: &str, key: &str, message: impl Into<String>) -> ConfigError {
    ConfigError { key: key.to_string(), line: line_of(source, key), message: message.into() }
}

impl Spec {
    /// Parses, validates and expands a spec within the default [`SpecLimits`].
    pub fn parse(source: &str) -> Result<Self, ConfigError> {
        Self::parse_with(source, &SpecLimits::default())
    }

    /// Parses, validates and expands a spec, refusing one beyond `limits` before the work
    /// that its size would cost: the text's size before parsing, the grid's axes and trials
    /// before expansion.
    pub fn parse_with(source: &str, limits: &SpecLimits) -> Result<Self, ConfigError> {
        limits.check_size(source)?;
        let table: Table = source.parse().map_err(|e: toml::de::Error| syntax_error(source, &e))?;
        if let Some(unknown) =
            table.keys().find(|k| !SPEC_KEYS.contains(&k.as_str()) && !SECTIONS.contains(&k.as_str()))
        {
            let accepted = [&SPEC_KEYS[..], &SECTIONS[..]].concat().join(", ");
            return Err(error(source, unknown, format!("unknown key; accepted at the top: {accepted}")));
        }
        let name = match table.get("name") {
            Some(Value::String(s)) if !s.trim().is_empty() => s.clone(),
            Some(other) => {
                return Err(error(source, "name", format!("expected a non-empty string, found {}", describe(other))))
            }
            None => return Err(error(source, "name", "missing; every sweep needs a name")),
        };
        let seeds = seeds(source, table.get("seeds"))?;
        let max_attempts = match table.get("max_attempts") {
            None => 3,
            Some(Value::Integer(n)) if (1..=100).contains(n) => *n as u32,
            Some(other) => {
                return Err(error(
                    source,
                    "max_attempts",
                    format!("expected an integer from 1 to 100, found {}", describe(other)),
                ))
            }
        };
        let keep_checkpoints = match table.get("keep_checkpoints") {
            None => false,
            Some(Value::Boolean(b)) => *b,
            Some(other) => {
                return Err(error(
                    source,
                    "keep_checkpoints",
                    format!("expected true or false, found {}", describe(other)),
                ))
            }
        };
        let base: Table =
            table.iter().filter(|(k, _)| SECTIONS.contains(&k.as_str())).map(|(k, v)| (k.clone(), v.clone())).collect();
        let grid = grid::axes(source, table.get("grid"))?;
        let grid_keys: Vec<&str> = grid.iter().map(|a| a.key.as_str()).collect();
        let search = search::parse(source, table.get("search"), &grid_keys)?;
        limits.check_grid(source, &grid, search.draws_per_point(), seeds.len())?;
        let mut trials = Vec::new();
        // The first point that gave each config: two points giving one would store one trial twice.
        let mut first_point: HashMap<String, usize> = HashMap::new();
        for (index, point) in grid::points(&grid).enumerate() {
            match &search {
                Search::Grid => {
                    let resolved = grid::apply(&base, &point);
                    let first_trial = trials.len();
                    for &seed in &seeds {
                        trials.push(trial(source, &name, &resolved, &point, &[], seed, trials.len() as u32)?);
                    }
                    let config_key = trials[first_trial].config_key.clone();
                    if let Some(&earlier) = first_point.get(&config_key) {
                        return Err(grid::collision(source, &grid, earlier, index));
                    }
                    first_point.insert(config_key, index);
                }
                Search::Random { trials: wanted, seed: search_seed, space } => {
                    let context = search::context(&name, *search_seed, &point);
                    let search_keys = search.keys();
                    let (mut kept, mut draw) = (0u32, 0u32);
                    while kept < *wanted {
                        if draw >= wanted.saturating_mul(10).saturating_add(100) {
                            return Err(ConfigError {
                                key: "search.trials".into(),
                                line: line_of(source, "search.trials"),
                                message: format!(
                                    "asked for {wanted} configs per grid point, but {draw} draws gave only {kept} \
                                     different ones; ask for fewer, or widen the space"
                                ),
                            });
                        }
                        let drawn = search::draw(space, &context, draw);
                        draw += 1;
                        let mut full: Vec<(&str, &Value)> = point.clone();
                        full.extend(drawn.iter().map(|(k, v)| (k.as_str(), v)));
                        let resolved = grid::apply(&base, &full);
                        let first_trial = trials.len();
                        let mut made = Vec::with_capacity(seeds.len());
                        for &seed in &seeds {
                            let ordinal = (first_trial + made.len()) as u32;
                            made.push(trial(source, &name, &resolved, &full, &search_keys, seed, ordinal)?);
                        }
                        if first_point.insert(made[0].config_key.clone(), index).is_none() {
                            trials.extend(made);
                            kept += 1;
                        }
                    }
                }
            }
        }
        let epochs: Vec<u32> = trials.iter().map(|t| t.epochs).collect();
        let ruled = table.get("search").and_then(|s| s.get("early_stopping"));
        let early_stopping = early_stopping::parse(source, ruled, &epochs, seeds.len())?;
        let rule_json = early_stopping.as_ref().map(|r| serde_json::to_string(r).expect("a rule serialises"));
        // The rule is part of the sweep: the same trials under another rule are another sweep.
        let identity = match &rule_json {
            Some(json) => format!("{name}\n{json}"),
            None => name.clone(),
        };
        let id = keys::sweep_id(&name, &identity, max_attempts, keep_checkpoints, &trials);
        for t in &mut trials {
            t.id = format!("{id}-{}", t.id);
            t.config_key = format!("{id}-{}", t.config_key);
        }
        Ok(Self { name, seeds, max_attempts, keep_checkpoints, base, grid, search, early_stopping, trials, id })
    }

    /// The sweep and its trials, ready to store.
    pub fn to_new_sweep(&self, spec_toml: &str) -> NewSweep {
        NewSweep {
            id: self.id.clone(),
            name: self.name.clone(),
            spec_toml: spec_toml.to_string(),
            keep_checkpoints: self.keep_checkpoints,
            max_attempts: self.max_attempts,
            early_stopping: self.early_stopping.as_ref().map(|r| serde_json::to_string(r).expect("a rule serialises")),
            trials: self.trials.clone(),
        }
    }
}

fn seeds(source: &str, value: Option<&Value>) -> Result<Vec<u64>, ConfigError> {
    let items = match value {
        None => return Ok(vec![0]),
        Some(Value::Array(items)) if !items.is_empty() => items,
        Some(Value::Array(_)) => return Err(error(source, "seeds", "empty list; give at least one seed")),
        Some(other) => {
            return Err(error(source, "seeds", format!("expected a list of whole numbers, found {}", describe(other))))
        }
    };
    let mut seeds = Vec::with_capacity(items.len());
    let mut seen = HashSet::with_capacity(items.len());
    for item in items {
        match item.as_integer() {
            Some(s) if s >= 0 && seen.insert(s) => seeds.push(s as u64),
            Some(s) if s >= 0 => return Err(error(source, "seeds", format!("seed {s} is listed twice"))),
            _ => return Err(error(source, "seeds", format!("expected whole numbers >= 0, found {}", describe(item)))),
        }
    }
    Ok(seeds)
}

/// Validates one grid point (with the values a random search drew for `drawn` keys) with
/// one seed as a whole trial config.
fn trial(
    source: &str,
    name: &str,
    resolved: &Table,
    point: &[(&str, &Value)],
    drawn: &[&str],
    seed: u64,
    ordinal: u32,
) -> Result<NewTrial, ConfigError> {
    let label = grid::label(point, seed);
    let mut table = resolved.clone();
    table.insert("name".into(), Value::String(format!("{name} [{label}]")));
    table.insert("seed".into(), Value::Integer(seed as i64));
    let config = TrialConfig::from_table(&table).map_err(|e| {
        // Blame the grid entry (or the drawn key) that produced the bad value when there is one.
        let blamed =
            point.iter().find(|(key, _)| e.key.strip_prefix(key).is_some_and(|r| r.is_empty() || r.starts_with('.')));
        match blamed {
            Some((key, value)) => {
                let section = if drawn.contains(key) { "search" } else { "grid" };
                let verb = if drawn.contains(key) { "drawn" } else { "with" };
                ConfigError {
                    key: format!("{section}.\"{key}\""),
                    line: line_of(source, &format!("{section}.{key}")),
                    message: format!("{verb} {key} = {value}: {}: {}", e.key, e.message),
                }
            }
            None => ConfigError { line: line_of(source, &e.key), key: e.key, message: e.message },
        }
    })?;
    // The coordinator counts a trial's epochs in a u32 (its reports are checked against them).
    let epochs = u32::try_from(config.train.epochs).map_err(|_| ConfigError {
        key: "train.epochs".into(),
        line: line_of(source, "train.epochs"),
        message: format!("at most {}, got {}", u32::MAX, config.train.epochs),
    })?;
    let params: serde_json::Map<String, serde_json::Value> =
        point.iter().map(|(k, v)| (k.to_string(), serde_json::to_value(v).unwrap_or_default())).collect();
    Ok(NewTrial {
        id: keys::trial_key(&config, true),
        ordinal,
        label,
        params_json: serde_json::Value::Object(params).to_string(),
        config_key: keys::trial_key(&config, false),
        config_toml: toml::to_string(&table).unwrap_or_default(),
        seed,
        epochs,
        columns: columns(&config),
        memory: allsweep_config::memory::estimate(&config),
    })
}

fn columns(config: &TrialConfig) -> TrialColumns {
    use allsweep_config::LossConfig;
    let (base_loss, all) = match &config.loss {
        LossConfig::All { all, base, .. } => (Some(base.kind().to_string()), Some(*all)),
        _ => (None, None),
    };
    TrialColumns {
        dataset: config.dataset.kind.name().to_string(),
        arch: config.model.arch.name().to_string(),
        width: config.model.width,
        loss: config.loss.kind().to_string(),
        base_loss,
        gamma: all.map(|a| a.gamma),
        omega: all.map(|a| a.omega),
        epsilon: all.map(|a| a.epsilon),
        lr: config.train.lr,
        batch_size: config.train.batch_size as i64,
    }
}

#[cfg(test)]
mod tests;
