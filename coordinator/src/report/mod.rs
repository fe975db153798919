//! `allsweep report`: the paper's tables from the database, with honest statistics.
//!
//! Three shapes: per config (mean ± sample standard deviation over seeds, with n, for each
//! metric; Table 3 is this with `--metric recall,tnr,jaccard,dice` over a losses x
//! architectures sweep), a pivot of one metric over two config keys (Tables 1 and 2), and
//! either of them against a baseline (`--baseline loss.kind=dice`): each config's mean
//! difference to its baseline config, a 95% confidence interval and a paired t-test over
//! seeds. The best value of each column is marked. [`render`] writes a report as a text
//! table, Markdown, CSV or JSON.

pub mod groups;
mod metric;
pub mod render;
pub mod rungs;
pub mod stats;

pub use groups::{ConfigGroup, TrialResult};
pub use metric::{Family, Metric};

use std::collections::BTreeMap;

use stats::Paired;

/// What to report.
#[derive(Debug, Clone)]
pub struct ReportOptions {
    pub metrics: Vec<Metric>,
    /// Row key and column key of a pivot table of the first metric.
    pub pivot: Option<(String, String)>,
    /// `KEY=VALUE`: the baseline configs.
    pub baseline: Option<(String, String)>,
}

/// A statistic of one cell: mean, sample standard deviation and n, in display units.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Stat {
    pub mean: f64,
    pub sd: Option<f64>,
    pub n: usize,
    /// The best value of its column.
    pub best: bool,
}

/// One report cell.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[serde(untagged)]
pub enum Cell {
    Text(String),
    Count(usize),
    Stat(Stat),
    Paired(Paired),
    Empty,
}

/// A report: a title, column names, rows of cells, and notes (the test used, the split).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Report {
    pub title: String,
    pub columns: Vec<String>,
    pub rows: Vec<Vec<Cell>>,
    pub notes: Vec<String>,
    /// Decimal places per column (for the text formats).
    #[serde(skip)]
    pub digits: Vec<usize>,
}

#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("no completed trial in {0}: nothing to report yet (see `allsweep status`)")]
    NothingCompleted(String),
    #[error("no config has {key} = {value}; the values reported are: {seen}")]
    NoBaseline { key: String, value: String, seen: String },
    #[error("{0}")]
    Ambiguous(String),
    #[error("pivot key {0} is not a config key of these sweeps; keys that vary: {1}")]
    PivotKey(String, String),
}

/// Builds the report of `groups`.
pub fn build(title: &str, groups: &[ConfigGroup], options: &ReportOptions) -> Result<Report, ReportError> {
    if !groups.iter().any(|g| g.completed().next().is_some()) {
        return Err(ReportError::NothingCompleted(title.to_string()));
    }
    let baselines = match &options.baseline {
        Some((key, value)) => Some(baselines(groups, key, value)?),
        None => None,
    };
    let mut report = match &options.pivot {
        Some((rows, columns)) => pivot(title, groups, options.metrics[0], rows, columns)?,
        None => per_config(title, groups, &options.metrics),
    };
    if let (Some(baselines), Some((key, value))) = (baselines, &options.baseline) {
        add_comparison(&mut report, groups, &baselines, options.metrics[0], key, value, options.pivot.is_some());
    }
    let splits: std::collections::BTreeSet<&str> =
        groups.iter().flat_map(|g| g.completed().filter_map(|t| t.split.as_deref())).collect();
    for split in splits {
        report.notes.push(format!("split: {split}"));
    }
    let shown = if options.pivot.is_some() { &options.metrics[..1] } else { &options.metrics[..] };
    // Once the authors' metrics are in a report, it says which columns are which.
    if shown.iter().any(Metric::is_keras) {
        if shown.iter().any(|m| !m.is_keras()) {
            report.notes.push(metric::POOLED_NOTE.into());
        }
        report.notes.push(metric::KERAS_NOTE.into());
    }
    Ok(report)
}

fn stat(values: &[f64]) -> Cell {
    match stats::mean_sd(values) {
        Some((mean, sd)) => Cell::Stat(Stat { mean, sd, n: values.len(), best: false }),
        None => Cell::Empty,
    }
}

/// Values of `metric` over a group's completed trials, by seed.
fn values_by_seed(group: &ConfigGroup, metric: Metric) -> BTreeMap<u64, f64> {
    group.completed().filter_map(|t| Some((t.trial.seed, metric.value(t.metrics.as_ref()?)?))).collect()
}

fn per_config(title: &str, groups: &[ConfigGroup], metrics: &[Metric]) -> Report {
    let mut columns = vec!["config".to_string(), "n".to_string()];
    columns.extend(metrics.iter().map(|m| m.header().to_string()));
    let mut digits = vec![0, 0];
    digits.extend(metrics.iter().map(|m| m.digits()));
    let rows = groups
        .iter()
        .map(|g| {
            let mut row = vec![Cell::Text(g.label.clone()), Cell::Count(g.completed().count())];
            row.extend(metrics.iter().map(|&m| stat(&values_by_seed(g, m).into_values().collect::<Vec<_>>())));
            row
        })
        .collect();
    let mut report = Report { title: title.to_string(), columns, rows, notes: vec![], digits };
    let metric_columns = 2..report.columns.len();
    mark_best_per_column(&mut report, metric_columns);
    report.notes.push("mean ± sample standard deviation over seeds; the best mean of each column is marked".into());
    report
}

fn pivot(
    title: &str,
    groups: &[ConfigGroup],
    metric: Metric,
    row_key: &str,
    column_key: &str,
) -> Result<Report, ReportError> {
    let varying = groups.iter().flat_map(|g| g.coordinates.keys()).cloned().collect::<std::collections::BTreeSet<_>>();
    for key in [row_key, column_key] {
        if !groups.iter().any(|g| g.coordinates.contains_key(key)) {
            return Err(ReportError::PivotKey(key.into(), varying.iter().cloned().collect::<Vec<_>>().join(", ")));
        }
    }
    let distinct = |key: &str| {
        let mut values: Vec<String> = groups.iter().filter_map(|g| g.coordinate(key).map(str::to_string)).collect();
        values.sort_by(|a, b| match (a.parse::<f64>(), b.parse::<f64>()) {
            (Ok(x), Ok(y)) => x.total_cmp(&y),
            _ => a.cmp(b),
        });
        values.dedup();
        values
    };
    let (row_values, column_values) = (distinct(row_key), distinct(column_key));
    let mut columns = vec![format!("{row_key} \\ {column_key}")];
    columns.extend(column_values.iter().cloned());
    let mut rows = Vec::new();
    for rv in &row_values {
        let mut row = vec![Cell::Text(rv.clone())];
        for cv in &column_values {
            let cell_groups: Vec<&ConfigGroup> = groups
                .iter()
                .filter(|g| g.coordinate(row_key) == Some(rv) && g.coordinate(column_key) == Some(cv))
                .collect();
            if cell_groups.len() > 1 {
                let labels: Vec<&str> = cell_groups.iter().map(|g| g.label.as_str()).collect();
                return Err(ReportError::Ambiguous(format!(
                    "{row_key}={rv}, {column_key}={cv} matches several configs ({}); pivot on the keys that vary, or report fewer sweeps",
                    labels.join("; ")
                )));
            }
            row.push(match cell_groups.first() {
                Some(g) => stat(&values_by_seed(g, metric).into_values().collect::<Vec<_>>()),
                None => Cell::Empty,
            });
        }
        rows.push(row);
    }
    let digits = std::iter::once(0).chain(column_values.iter().map(|_| metric.digits())).collect();
    let mut report = Report { title: format!("{title}: {}", metric.header()), columns, rows, notes: vec![], digits };
    mark_best_overall(&mut report);
    report.notes.push(format!(
        "cells: {} mean ± sample standard deviation over seeds; the best cell is marked",
        metric.header()
    ));
    Ok(report)
}

/// For each group, the index of its baseline group (None for the baselines themselves and
/// for groups that have none). A group's baseline has KEY = VALUE and agrees with it on
/// every other config key; when KEY is a `kind`, the rest of that table is free too (a
/// Dice baseline has no gamma).
fn baselines(groups: &[ConfigGroup], key: &str, value: &str) -> Result<Vec<Option<usize>>, ReportError> {
    let free_prefix = key.strip_suffix(".kind").map(|table| format!("{table}."));
    let is_free = |k: &str| k == key || free_prefix.as_deref().is_some_and(|p| k.starts_with(p));
    let candidates: Vec<usize> = (0..groups.len()).filter(|&i| groups[i].coordinate(key) == Some(value)).collect();
    if candidates.is_empty() {
        let mut seen: Vec<&str> = groups.iter().filter_map(|g| g.coordinate(key)).collect();
        seen.sort();
        seen.dedup();
        return Err(ReportError::NoBaseline { key: key.into(), value: value.into(), seen: seen.join(", ") });
    }
    let agree = |a: &ConfigGroup, b: &ConfigGroup| {
        let keys: std::collections::BTreeSet<&String> = a.coordinates.keys().chain(b.coordinates.keys()).collect();
        keys.into_iter().filter(|k| !is_free(k)).all(|k| a.coordinates.get(k) == b.coordinates.get(k))
    };
    let mut out = Vec::with_capacity(groups.len());
    for (i, g) in groups.iter().enumerate() {
        if candidates.contains(&i) {
            out.push(None);
            continue;
        }
        let matching: Vec<usize> = candidates.iter().copied().filter(|&c| agree(g, &groups[c])).collect();
        if matching.len() > 1 {
            let labels: Vec<&str> = matching.iter().map(|&c| groups[c].label.as_str()).collect();
            return Err(ReportError::Ambiguous(format!(
                "{} has several baselines with {key} = {value}: {}",
                g.label,
                labels.join("; ")
            )));
        }
        out.push(matching.first().copied());
    }
    Ok(out)
}

/// Adds the comparison columns (per-config reports) or rows of notes (pivots).
fn add_comparison(
    report: &mut Report,
    groups: &[ConfigGroup],
    baselines: &[Option<usize>],
    metric: Metric,
    key: &str,
    value: &str,
    pivot: bool,
) {
    let compare = |i: usize| -> Option<Paired> {
        let base = values_by_seed(&groups[baselines[i]?], metric);
        let mine = values_by_seed(&groups[i], metric);
        let seeds: Vec<&u64> = mine.keys().filter(|s| base.contains_key(s)).collect();
        let candidate: Vec<f64> = seeds.iter().map(|s| mine[s]).collect();
        let baseline: Vec<f64> = seeds.iter().map(|s| base[s]).collect();
        stats::paired_t(&candidate, &baseline)
    };
    if pivot {
        for (i, g) in groups.iter().enumerate() {
            if let Some(p) = compare(i) {
                report.notes.push(format!(
                    "{} vs {key}={value}: {}",
                    g.label,
                    render::paired_text(&p, metric.digits())
                ));
            }
        }
    } else {
        report.columns.push(format!("Δ {} vs {key}={value} [95% CI], p", metric.header()));
        report.digits.push(metric.digits());
        for (i, row) in report.rows.iter_mut().enumerate() {
            row.push(match (baselines[i], compare(i)) {
                (None, _) if groups[i].coordinate(key) == Some(value) => Cell::Text("baseline".into()),
                (_, Some(p)) => Cell::Paired(p),
                _ => Cell::Empty,
            });
        }
    }
    report.notes.push(format!("test: {}", stats::TEST_NAME));
}

fn mark_best_per_column(report: &mut Report, columns: std::ops::Range<usize>) {
    for c in columns {
        let best = report
            .rows
            .iter()
            .filter_map(|r| if let Cell::Stat(s) = &r[c] { Some(s.mean) } else { None })
            .fold(f64::NEG_INFINITY, f64::max);
        for row in &mut report.rows {
            if let Cell::Stat(s) = &mut row[c] {
                s.best = s.mean == best;
            }
        }
    }
}

fn mark_best_overall(report: &mut Report) {
    let best = report
        .rows
        .iter()
        .flat_map(|r| r.iter())
        .filter_map(|c| if let Cell::Stat(s) = c { Some(s.mean) } else { None })
        .fold(f64::NEG_INFINITY, f64::max);
    for cell in report.rows.iter_mut().flat_map(|r| r.iter_mut()) {
        if let Cell::Stat(s) = cell {
            s.best = s.mean == best;
        }
    }
}

#[cfg(test)]
mod tests;
