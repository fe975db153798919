//! The `[search.early_stopping]` table: the rule that stops a sweep's losing trials early
//! ([`crate::scheduler::early_stopping`] says how it decides).
//!
//! ```toml
//! [search.early_stopping]
//! kind = "asha"          # or "median", or "race"
//! metric = "dice"        # a per-epoch validation metric (or train_loss, validation_loss)
//! mode = "max"           # optional: "min" for losses, "max" otherwise
//! min_epochs = 1         # the first rung
//! reduction_factor = 3   # asha: rungs at min_epochs * 3^k; the best third goes on
//! max_epochs = 27        # optional: the trials' train.epochs, which it must equal
//! # median: interval = 1 (epochs between rungs), min_samples = 3 (earlier trials needed)
//! # race: alpha = 0.05 (the paired test's level), min_seeds = 3 (waves before the first
//! #       test); judged on the metric at the last epoch, config by config
//! ```

use allsweep_config::lines::line_of;
use allsweep_config::params::describe;
use allsweep_config::trial::ConfigError;
use allsweep_proto::metric;
use toml::{Table, Value};

use crate::scheduler::early_stopping::{Mode, Rule};

/// The metrics a rule may judge by: every per-epoch value but the clock and the schedule.
const JUDGED: [&str; 13] = [
    metric::TRAIN_LOSS,
    metric::VALIDATION_LOSS,
    metric::JACCARD,
    metric::DICE,
    metric::PRECISION,
    metric::RECALL,
    metric::TNR,
    metric::ACCURACY,
    metric::AUC,
    metric::KERAS_JACCARD,
    metric::KERAS_DICE,
    metric::KERAS_RECALL,
    metric::KERAS_TNR,
];

const ASHA_KEYS: [&str; 6] = ["kind", "metric", "mode", "min_epochs", "reduction_factor", "max_epochs"];
const MEDIAN_KEYS: [&str; 7] = ["kind", "metric", "mode", "min_epochs", "interval", "min_samples", "max_epochs"];
const RACE_KEYS: [&str; 6] = ["kind", "metric", "mode", "alpha", "min_seeds", "max_epochs"];

/// The largest reduction factor, interval or sample count accepted: far past any use.
const MAX_SMALL: i64 = 1000;

fn fail(source: &str, key: &str, message: impl Into<String>) -> ConfigError {
    let dotted = format!("search.early_stopping.{key}");
    ConfigError {
        line: line_of(source, &dotted).or_else(|| line_of(source, "search.early_stopping")),
        key: dotted,
        message: message.into(),
    }
}

/// A whole number in `low..=high` at `key`, or `default` when absent (`None`: required).
fn whole(
    source: &str,
    table: &Table,
    key: &str,
    low: i64,
    high: i64,
    default: Option<u32>,
) -> Result<u32, ConfigError> {
    match table.get(key) {
        Some(Value::Integer(n)) if (low..=high).contains(n) => Ok(*n as u32),
        Some(other) => {
            Err(fail(source, key, format!("expected a whole number from {low} to {high}, found {}", describe(other))))
        }
        None => default.ok_or_else(|| fail(source, key, "missing")),
    }
}

/// The rule, read from the `early_stopping` entry of `[search]`, checked against the
/// trials' epochs (`epochs`, one value per trial) and the sweep's number of `seeds`. `None`:
/// no early stopping.
pub fn parse(source: &str, value: Option<&Value>, epochs: &[u32], seeds: usize) -> Result<Option<Rule>, ConfigError> {
    let table = match value {
        None => return Ok(None),
        Some(Value::Table(t)) => t,
        Some(other) => {
            return Err(ConfigError {
                key: "search.early_stopping".into(),
                line: line_of(source, "search.early_stopping"),
                message: format!("expected a table, found {}", describe(other)),
            })
        }
    };
    let kind = match table.get("kind") {
        Some(Value::String(s)) if ["asha", "median", "race"].contains(&s.as_str()) => s.as_str(),
        Some(other) => {
            return Err(fail(
                source,
                "kind",
                format!("expected \"asha\", \"median\" or \"race\", found {}", describe(other)),
            ))
        }
        None => return Err(fail(source, "kind", "missing; \"asha\", \"median\" or \"race\"")),
    };
    let accepted: &[&str] = match kind {
        "asha" => &ASHA_KEYS,
        "median" => &MEDIAN_KEYS,
        _ => &RACE_KEYS,
    };
    if let Some(unknown) = table.keys().find(|k| !accepted.contains(&k.as_str())) {
        return Err(fail(
            source,
            unknown,
            format!("unknown key for kind = {kind:?}; it takes {}", accepted.join(", ")),
        ));
    }
    let metric = match table.get("metric") {
        Some(Value::String(s)) if JUDGED.contains(&s.as_str()) => s.clone(),
        Some(other) => {
            return Err(fail(
                source,
                "metric",
                format!("expected one of {}, found {}", JUDGED.join(", "), describe(other)),
            ))
        }
        None => return Err(fail(source, "metric", format!("missing; one of {}", JUDGED.join(", ")))),
    };
    let mode = match table.get("mode") {
        None if metric.ends_with("loss") => Mode::Min,
        None => Mode::Max,
        Some(Value::String(s)) if s == "max" => Mode::Max,
        Some(Value::String(s)) if s == "min" => Mode::Min,
        Some(other) => {
            return Err(fail(source, "mode", format!("expected \"max\" or \"min\", found {}", describe(other))))
        }
    };
    let Some(&first) = epochs.first() else {
        return Err(fail(source, "kind", "the sweep has no trials to stop"));
    };
    if let Some(&other) = epochs.iter().find(|&&e| e != first) {
        return Err(fail(
            source,
            "kind",
            format!(
                "the trials train for different epochs ({first} and {other}); early stopping needs one train.epochs"
            ),
        ));
    }
    let max_epochs = whole(source, table, "max_epochs", 2, i64::from(u32::MAX), Some(first))?;
    if max_epochs != first {
        return Err(fail(
            source,
            "max_epochs",
            format!("{max_epochs}, but the trials' train.epochs is {first}; set train.epochs = {max_epochs}, or leave max_epochs out"),
        ));
    }
    if kind == "race" {
        let alpha = match table.get("alpha") {
            None => 0.05,
            Some(Value::Float(a)) if *a > 0.0 && *a < 1.0 => *a,
            Some(other) => {
                return Err(fail(
                    source,
                    "alpha",
                    format!("expected a number between 0 and 1, found {}", describe(other)),
                ))
            }
        };
        let min_seeds = whole(source, table, "min_seeds", 2, MAX_SMALL, Some(3))?;
        if seeds <= min_seeds as usize {
            return Err(fail(
                source,
                "min_seeds",
                format!("{min_seeds}, but the sweep has {seeds} seeds: a race needs more seeds than min_seeds"),
            ));
        }
        return Ok(Some(Rule::Race { metric, mode, alpha, min_seeds, max_epochs }));
    }
    let min_epochs = whole(source, table, "min_epochs", 1, i64::from(u32::MAX), None)?;
    let rule = if kind == "asha" {
        let reduction_factor = whole(source, table, "reduction_factor", 2, MAX_SMALL, Some(3))?;
        Rule::Asha { metric, mode, min_epochs, reduction_factor, max_epochs }
    } else {
        let interval = whole(source, table, "interval", 1, MAX_SMALL, Some(1))?;
        let min_samples = whole(source, table, "min_samples", 1, MAX_SMALL, Some(3))?;
        Rule::Median { metric, mode, min_epochs, interval, min_samples, max_epochs }
    };
    if rule.rungs().is_empty() {
        return Err(fail(
            source,
            "min_epochs",
            format!("{min_epochs} leaves no rung before the last epoch ({max_epochs}); it must be below it"),
        ));
    }
    Ok(Some(rule))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(text: &str, epochs: &[u32]) -> Result<Option<Rule>, ConfigError> {
        let table: Table = text.parse().expect("toml");
        parse(text, table.get("search").and_then(|s| s.get("early_stopping")), epochs, 5)
    }

    #[test]
    fn asha_reads_with_its_defaults() {
        let text = "[search.early_stopping]\nkind = \"asha\"\nmetric = \"dice\"\nmin_epochs = 1\n";
        let got = rule(text, &[9, 9]).expect("valid").expect("a rule");
        assert_eq!(
            got,
            Rule::Asha { metric: "dice".into(), mode: Mode::Max, min_epochs: 1, reduction_factor: 3, max_epochs: 9 }
        );
        assert_eq!(got.rungs(), vec![1, 3]);
        let loss = "[search.early_stopping]\nkind = \"median\"\nmetric = \"validation_loss\"\nmin_epochs = 2\n";
        let got = rule(loss, &[5]).expect("valid").expect("a rule");
        assert_eq!(got.mode(), Mode::Min, "a loss is minimised unless told");
        assert_eq!(got.rungs(), vec![2, 3, 4]);
        let race = "[search.early_stopping]\nkind = \"race\"\nmetric = \"jaccard\"\n";
        let got = rule(race, &[5]).expect("valid").expect("a rule");
        assert_eq!(
            got,
            Rule::Race { metric: "jaccard".into(), mode: Mode::Max, alpha: 0.05, min_seeds: 3, max_epochs: 5 }
        );
        assert!(got.rungs().is_empty(), "a race never pauses a trial");
    }

    #[test]
    fn each_bad_entry_is_refused_naming_its_key_and_line() {
        let cases = [
            (
                "kind = \"hyperband\"\nmetric = \"dice\"\nmin_epochs = 1",
                4,
                "search.early_stopping.kind",
                "\"median\" or \"race\"",
            ),
            ("kind = \"race\"\nmetric = \"dice\"\nalpha = 1.5", 4, "search.early_stopping.alpha", "between 0 and 1"),
            ("kind = \"race\"\nmetric = \"dice\"\nmin_seeds = 5", 4, "search.early_stopping.min_seeds", "has 5 seeds"),
            (
                "kind = \"race\"\nmetric = \"dice\"\nmin_epochs = 1",
                4,
                "search.early_stopping.min_epochs",
                "unknown key",
            ),
            (
                "kind = \"asha\"\nmetric = \"seconds\"\nmin_epochs = 1",
                4,
                "search.early_stopping.metric",
                "expected one of",
            ),
            (
                "kind = \"asha\"\nmetric = \"dice\"\nmode = \"up\"\nmin_epochs = 1",
                4,
                "search.early_stopping.mode",
                "\"max\" or \"min\"",
            ),
            ("kind = \"asha\"\nmetric = \"dice\"\nmin_epochs = 9", 4, "search.early_stopping.min_epochs", "no rung"),
            ("kind = \"asha\"\nmetric = \"dice\"\nmin_epochs = 0", 4, "search.early_stopping.min_epochs", "from 1"),
            (
                "kind = \"asha\"\nmetric = \"dice\"\nmin_epochs = 1\nreduction_factor = 1",
                4,
                "search.early_stopping.reduction_factor",
                "from 2",
            ),
            (
                "kind = \"asha\"\nmetric = \"dice\"\nmin_epochs = 1\nmax_epochs = 27",
                4,
                "search.early_stopping.max_epochs",
                "train.epochs is 9",
            ),
            (
                "kind = \"asha\"\nmetric = \"dice\"\nmin_epochs = 1\ninterval = 2",
                4,
                "search.early_stopping.interval",
                "unknown key",
            ),
            (
                "kind = \"median\"\nmetric = \"dice\"\nmin_epochs = 1\nmin_samples = -1",
                4,
                "search.early_stopping.min_samples",
                "from 1",
            ),
            ("kind = \"asha\"\nmin_epochs = 1", 4, "search.early_stopping.metric", "missing"),
        ];
        for (body, _, key, says) in cases {
            let text = format!("[search.early_stopping]\n{body}\n");
            let error = rule(&text, &[9]).expect_err(body);
            assert_eq!(error.key, key, "{body}");
            assert!(error.message.contains(says), "{body}: {}", error.message);
            assert!(error.line.is_some(), "{body}: a line is named");
        }
        let text = "[search.early_stopping]\nkind = \"asha\"\nmetric = \"dice\"\nmin_epochs = 1\n";
        let error = rule(text, &[9, 5]).expect_err("different epochs");
        assert!(error.message.contains("different epochs (9 and 5)"), "{}", error.message);
    }
}
