//! Trials of one or more sweeps gathered by config (all seeds of one resolved config),
//! each config described by the coordinates that tell it apart from the others.
//!
//! Coordinates are the resolved trial config flattened into dotted keys (`loss.kind`,
//! `loss.gamma`, `model.arch`, ...), without name and seed. A config's label lists only the
//! coordinates that vary across the configs shown, so a Table 1 row reads
//! `loss.epsilon=0.5 loss.omega=10`, and a comparison of sweeps reads `loss.kind=dice`.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::store::{FinalMetrics, Store, StoreError, TrialRow, TrialState};

/// One completed (or not) trial with its final metrics.
#[derive(Debug, Clone)]
pub struct TrialResult {
    pub trial: TrialRow,
    pub metrics: Option<FinalMetrics>,
    pub split: Option<String>,
}

/// All seeds of one config.
#[derive(Debug, Clone)]
pub struct ConfigGroup {
    pub sweep_id: String,
    pub config_key: String,
    /// Flattened resolved config, without name and seed.
    pub coordinates: BTreeMap<String, String>,
    /// The coordinates that differ between the groups reported together.
    pub label: String,
    pub trials: Vec<TrialResult>,
}

impl ConfigGroup {
    /// Completed trials only.
    pub fn completed(&self) -> impl Iterator<Item = &TrialResult> {
        self.trials.iter().filter(|t| t.trial.state == TrialState::Completed && t.metrics.is_some())
    }

    pub fn coordinate(&self, key: &str) -> Option<&str> {
        self.coordinates.get(key).map(String::as_str)
    }
}

/// Loads the configs of `sweep_ids`, in sweep then grid order.
pub async fn load(store: &Arc<dyn Store>, sweep_ids: &[String]) -> Result<Vec<ConfigGroup>, StoreError> {
    let mut groups: Vec<ConfigGroup> = Vec::new();
    for sweep_id in sweep_ids {
        if store.sweep(sweep_id).await?.is_none() {
            return Err(StoreError::NotFound(format!("sweep {sweep_id}")));
        }
        let results: BTreeMap<String, (FinalMetrics, String)> =
            store.results(sweep_id).await?.into_iter().map(|r| (r.trial_id, (r.metrics, r.split))).collect();
        for trial in store.trials(sweep_id).await? {
            let (metrics, split) = match results.get(&trial.id) {
                Some((m, s)) => (Some(m.clone()), Some(s.clone())),
                None => (None, None),
            };
            let result = TrialResult { metrics, split, trial };
            match groups.iter_mut().find(|g| g.config_key == result.trial.config_key) {
                Some(group) => group.trials.push(result),
                None => groups.push(ConfigGroup {
                    sweep_id: sweep_id.clone(),
                    config_key: result.trial.config_key.clone(),
                    coordinates: coordinates(&result.trial.config_toml),
                    label: String::new(),
                    trials: vec![result],
                }),
            }
        }
    }
    label(&mut groups);
    Ok(groups)
}

/// The resolved config as dotted keys and display values (name and seed left out).
pub fn coordinates(config_toml: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    if let Ok(table) = config_toml.parse::<toml::Table>() {
        flatten("", &table, &mut out);
    }
    out.remove("name");
    out.remove("seed");
    out
}

fn flatten(prefix: &str, table: &toml::Table, out: &mut BTreeMap<String, String>) {
    for (key, value) in table {
        let path = if prefix.is_empty() { key.clone() } else { format!("{prefix}.{key}") };
        match value {
            toml::Value::Table(inner) => flatten(&path, inner, out),
            toml::Value::String(s) => {
                out.insert(path, s.clone());
            }
            other => {
                out.insert(path, other.to_string());
            }
        }
    }
}

/// [`label`], for tests that build groups by hand.
#[cfg(test)]
pub fn label_for_tests(groups: &mut [ConfigGroup]) {
    label(groups);
}

/// Labels each group with the coordinates that vary across all groups (in key order,
/// `loss.kind` first when it varies).
fn label(groups: &mut [ConfigGroup]) {
    let mut keys: Vec<String> = groups.iter().flat_map(|g| g.coordinates.keys().cloned()).collect();
    keys.sort();
    keys.dedup();
    let mut varying: Vec<String> = keys
        .into_iter()
        .filter(|k| {
            let first = groups.first().and_then(|g| g.coordinates.get(k));
            groups.iter().any(|g| g.coordinates.get(k) != first)
        })
        .collect();
    varying.sort_by_key(|k| (k != "loss.kind", k.clone()));
    for g in groups.iter_mut() {
        let parts: Vec<String> =
            varying.iter().filter_map(|k| g.coordinates.get(k).map(|v| format!("{k}={v}"))).collect();
        g.label = if parts.is_empty() { "(one config)".into() } else { parts.join(" ") };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn coordinates_flatten_the_config_without_name_and_seed() {
        let c = coordinates("name = \"x\"\nseed = 3\n[loss]\nkind = \"all\"\ngamma = 0.1\n[model]\narch = \"unet\"\n");
        assert_eq!(c.get("loss.kind").map(String::as_str), Some("all"));
        assert_eq!(c.get("loss.gamma").map(String::as_str), Some("0.1"));
        assert!(!c.contains_key("seed") && !c.contains_key("name"));
    }
}
