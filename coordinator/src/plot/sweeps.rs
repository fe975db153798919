//! Which sweeps and configs a figure of results shows: the sweeps named (or the database's
//! only one), their configs gathered by [`groups::load`], narrowed by `--config` label
//! substrings. Every way this can come up empty is an error that says what exists instead.

use std::sync::Arc;

use crate::report::groups::{self, ConfigGroup};
use crate::store::{Store, SweepRow};

use super::PlotError;

/// The sweeps to plot: those named, each checked to exist; with none named, the database's
/// only sweep (several are an error listing them).
pub async fn resolve(store: &Arc<dyn Store>, named: &[String]) -> Result<Vec<SweepRow>, PlotError> {
    let all = store.sweeps().await?;
    if named.is_empty() {
        return match all.len() {
            0 => Err(PlotError::NoSweeps),
            1 => Ok(all),
            _ => Err(PlotError::WhichSweep { known: known(&all) }),
        };
    }
    named
        .iter()
        .map(|id| {
            all.iter()
                .find(|s| &s.id == id)
                .cloned()
                .ok_or_else(|| PlotError::UnknownSweep { sweep: id.clone(), known: known(&all) })
        })
        .collect()
}

fn known(sweeps: &[SweepRow]) -> String {
    if sweeps.is_empty() {
        return "none".into();
    }
    sweeps.iter().map(|s| format!("{} ({})", s.id, s.name)).collect::<Vec<_>>().join(", ")
}

/// The configs of `sweeps` that have completed trials and whose label contains one of
/// `patterns` (case-insensitive; no patterns: every config). Each sweep must have completed
/// trials, and each pattern must match a config.
pub async fn completed_groups(
    store: &Arc<dyn Store>,
    sweeps: &[SweepRow],
    patterns: &[String],
) -> Result<Vec<ConfigGroup>, PlotError> {
    let ids: Vec<String> = sweeps.iter().map(|s| s.id.clone()).collect();
    let mut groups = groups::load(store, &ids).await?;
    for sweep in sweeps {
        if !groups.iter().any(|g| g.sweep_id == sweep.id && g.completed().next().is_some()) {
            return Err(PlotError::NoCompleted(sweep.id.clone()));
        }
    }
    for g in groups.iter_mut() {
        if g.label == "(one config)" {
            g.label = sweeps.iter().find(|s| s.id == g.sweep_id).map_or_else(|| g.sweep_id.clone(), |s| s.name.clone());
        }
    }
    let chosen = choose(groups, patterns)?;
    let done: Vec<ConfigGroup> = chosen.into_iter().filter(|g| g.completed().next().is_some()).collect();
    if done.is_empty() {
        return Err(PlotError::Invalid(format!(
            "the configs matching --config {} have no completed trials yet",
            patterns.join(", ")
        )));
    }
    Ok(done)
}

/// The groups whose label contains any of `patterns`, case-insensitively.
pub fn choose(groups: Vec<ConfigGroup>, patterns: &[String]) -> Result<Vec<ConfigGroup>, PlotError> {
    if patterns.is_empty() {
        return Ok(groups);
    }
    let matches = |g: &ConfigGroup, p: &str| g.label.to_lowercase().contains(&p.to_lowercase());
    if let Some(pattern) = patterns.iter().find(|p| !groups.iter().any(|g| matches(g, p))) {
        let labels = groups.iter().map(|g| format!("{:?}", g.label)).collect::<Vec<_>>().join(", ");
        return Err(PlotError::NoConfig { pattern: pattern.clone(), labels });
    }
    Ok(groups.into_iter().filter(|g| patterns.iter().any(|p| matches(g, p))).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn group(label: &str) -> ConfigGroup {
        ConfigGroup {
            sweep_id: "s".into(),
            config_key: label.into(),
            coordinates: BTreeMap::new(),
            label: label.into(),
            trials: Vec::new(),
        }
    }

    #[test]
    fn patterns_pick_configs_and_a_pattern_matching_nothing_lists_the_labels() {
        let groups = vec![group("loss.kind=dice"), group("loss.kind=all loss.gamma=0.1")];
        let picked = choose(groups.clone(), &["ALL".into()]).expect("matches");
        assert_eq!(picked.len(), 1);
        assert_eq!(choose(groups.clone(), &[]).expect("all").len(), 2);
        let err = choose(groups, &["tversky".into()]).expect_err("no match").to_string();
        assert!(err.contains("\"tversky\"") && err.contains("loss.kind=dice"), "{err}");
    }
}
