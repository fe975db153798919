//! The early-stopping table of `allsweep report`: for each rung of a sweep's rule, how many
//! trials were judged there, how many went on and how many stopped, from the decisions the
//! coordinator recorded ([`crate::store::Store::decisions`]).

use std::collections::BTreeMap;

use super::{Cell, Report};
use crate::scheduler::early_stopping::Rule;
use crate::store::{DecisionRow, TrialRow, TrialState};

/// The early-stopping table of one sweep under `rule`: its rungs, or its race.
pub fn build(sweep_name: &str, rule: &Rule, trials: &[TrialRow], decisions: &[DecisionRow]) -> Report {
    if let Rule::Race { .. } = rule {
        return race(sweep_name, rule, trials, decisions);
    }
    let mut by_rung: BTreeMap<(u32, u32), Vec<&DecisionRow>> = BTreeMap::new();
    for d in decisions {
        by_rung.entry((d.rung, d.epoch)).or_default().push(d);
    }
    for (k, &epoch) in rule.rungs().iter().enumerate() {
        by_rung.entry((k as u32, epoch)).or_default();
    }
    let better = |a: f64, b: f64| rule.mode().better(a, b);
    let rows = by_rung
        .iter()
        .map(|(&(rung, epoch), judged)| {
            let count = |verdict: &str| judged.iter().filter(|d| d.verdict == verdict).count();
            let values: Vec<f64> = judged.iter().filter_map(|d| d.value).collect();
            let best = values.iter().copied().reduce(|b, v| if better(v, b) { v } else { b });
            vec![
                Cell::Count(rung as usize),
                Cell::Count(epoch as usize),
                Cell::Count(judged.len()),
                Cell::Count(count("promoted")),
                Cell::Count(count("stopped")),
                best.map_or(Cell::Empty, |v| Cell::Text(format!("{v:.4}"))),
            ]
        })
        .collect();
    let state = |s: TrialState| trials.iter().filter(|t| t.state == s).count();
    let waiting = trials.iter().filter(|t| t.hold.is_some()).count();
    let trained: u64 = trials
        .iter()
        .map(|t| {
            u64::from(t.stopped_epoch.unwrap_or(if t.state == TrialState::Completed { t.epochs } else { t.epoch }))
        })
        .sum();
    let full: u64 = trials.iter().map(|t| u64::from(t.epochs)).sum();
    let mut notes = vec![
        describe(rule),
        format!(
            "trials: {} completed, {} stopped early (not failures), {} failed, {} waiting at a rung",
            state(TrialState::Completed),
            state(TrialState::Stopped),
            state(TrialState::Failed),
            waiting
        ),
        format!("epochs trained: {trained} of the {full} that training every trial to the end takes"),
    ];
    for t in trials.iter().filter(|t| t.state == TrialState::Stopped) {
        let epoch = t.stopped_epoch.map_or(String::new(), |e| format!(" at epoch {e}"));
        notes.push(format!("stopped{epoch}: {} ({})", t.label, t.note.as_deref().unwrap_or("no reason recorded")));
    }
    Report {
        title: format!("{sweep_name}: early stopping"),
        columns: ["rung", "epoch", "judged", "promoted", "stopped", "best"].map(String::from).to_vec(),
        rows,
        notes,
        digits: vec![0; 6],
    }
}

/// The rule in words.
pub fn describe(rule: &Rule) -> String {
    let rungs: Vec<String> = rule.rungs().iter().map(u32::to_string).collect();
    match rule {
        Rule::Asha { metric, mode, reduction_factor, max_epochs, .. } => format!(
            "ASHA on {metric} ({}): the best 1/{reduction_factor} of the arrivals at each rung go on; rungs at epochs {} of {max_epochs}",
            mode.as_str(),
            rungs.join(", ")
        ),
        Rule::Median { metric, mode, min_samples, max_epochs, .. } => format!(
            "median stopping on {metric} ({}): a trial worse than the median of the earlier trials' running means stops (after {min_samples} earlier trials); rungs at epochs {} of {max_epochs}",
            mode.as_str(),
            rungs.join(", ")
        ),
        Rule::Race { metric, mode, alpha, min_seeds, max_epochs } => format!(
            "racing over seeds on {metric} ({}) at epoch {max_epochs}: after each wave of seeds, from wave {min_seeds} on, a config worse than the best by a one-sided paired t-test at level {alpha} gets no more seeds",
            mode.as_str()
        ),
    }
}

/// A trial's label without its seed: its config's.
fn config_label(label: &str) -> String {
    let words: Vec<&str> = label.split_whitespace().filter(|w| !w.starts_with("seed=")).collect();
    if words.is_empty() {
        "(the only config)".to_string()
    } else {
        words.join(" ")
    }
}

/// The race table: each config with the seeds it got and how its race ended.
fn race(sweep_name: &str, rule: &Rule, trials: &[TrialRow], decisions: &[DecisionRow]) -> Report {
    let mut configs: Vec<(String, Vec<&TrialRow>)> = Vec::new();
    for t in trials {
        match configs.iter_mut().find(|(key, _)| *key == t.config_key) {
            Some((_, seeds)) => seeds.push(t),
            None => configs.push((t.config_key.clone(), vec![t])),
        }
    }
    let rows = configs
        .iter()
        .map(|(_, seeds)| {
            let count = |s: TrialState| seeds.iter().filter(|t| t.state == s).count();
            let ids: Vec<&str> = seeds.iter().map(|t| t.id.as_str()).collect();
            let last = decisions.iter().filter(|d| ids.contains(&d.trial_id.as_str())).max_by_key(|d| d.rung);
            let status = match last {
                Some(d) if d.verdict == "stopped" => format!("eliminated after wave {}: {}", d.rung + 1, d.reason),
                Some(d) => format!("racing after wave {}: {}", d.rung + 1, d.reason),
                None => "not tested yet".to_string(),
            };
            vec![
                Cell::Text(config_label(&seeds[0].label)),
                Cell::Count(count(TrialState::Completed)),
                Cell::Count(count(TrialState::Stopped)),
                Cell::Text(status),
            ]
        })
        .collect();
    let run: usize = trials.iter().filter(|t| t.state != TrialState::Stopped).count();
    Report {
        title: format!("{sweep_name}: race over seeds"),
        columns: ["config", "seeds run", "seeds not run", "race"].map(String::from).to_vec(),
        rows,
        notes: vec![
            describe(rule),
            format!("seeds run: {run} of the {} that every config with every seed takes", trials.len()),
        ],
        digits: vec![0; 4],
    }
}
