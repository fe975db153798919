//! The early-stopping table of `allsweep report`: for each rung of a sweep's rule, how many
//! trials were judged there, how many went on and how many stopped, from the decisions the
//! coordinator recorded ([`crate::store::Store::decisions`]).

use std::collections::BTreeMap;

use super::{Cell, Report};
use crate::scheduler::early_stopping::Rule;
use crate::store::{DecisionRow, TrialRow, TrialState};

/// The rung table of one sweep under `rule`.
pub fn build(sweep_name: &str, rule: &Rule, trials: &[TrialRow], decisions: &[DecisionRow]) -> Report {
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
    }
}
