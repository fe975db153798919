//! One trial's whole configuration: a `RUN.toml`, or one resolved point of a sweep.
//!
//! ```toml
//! name = "U-Net, ALL, DRIVE"
//! seed = 0
//! [dataset]  kind, root, size, ...   (see `dataset`)
//! [model]    arch, width
//! [train]    epochs, batch_size, lr, l2_scale
//! [loss]     kind and its parameters
//! ```
//!
//! Errors name the dotted key at fault and, when the text is at hand, its line.

use std::fmt;

use serde::Serialize;
use toml::{Table, Value};

use crate::lines::{line_at, line_of};
use crate::params::{describe, ParamError, ParamReader};
use crate::{DatasetConfig, LossConfig, ModelConfig, TrainConfig};

/// A validated trial.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TrialConfig {
    pub name: String,
    pub seed: u64,
    pub dataset: DatasetConfig,
    pub model: ModelConfig,
    pub train: TrainConfig,
    pub loss: LossConfig,
}

/// A config that could not be read: the key at fault, its line when known, and why.
#[derive(Debug, Clone, PartialEq)]
pub struct ConfigError {
    pub key: String,
    pub line: Option<usize>,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(line) => write!(f, "line {line}: {}: {}", self.key, self.message),
            None => write!(f, "{}: {}", self.key, self.message),
        }
    }
}

impl std::error::Error for ConfigError {}

/// A TOML syntax error in `source`, at its line. The parser leaves some messages empty (a
/// control character in a comment, found by the `spec` fuzz target): those name what it
/// stopped at.
pub fn syntax_error(source: &str, e: &toml::de::Error) -> ConfigError {
    let at = e.span().map(|span| span.start);
    let message = match e.message().trim() {
        "" => match at.and_then(|i| source.get(i..)).and_then(|rest| rest.chars().next()) {
            Some(c) => format!("invalid TOML: unexpected character {c:?}"),
            None => "invalid TOML: the text ends before what it starts is finished".to_string(),
        },
        message => message.to_string(),
    };
    ConfigError { key: "(syntax)".into(), line: at.map(|i| line_at(source, i)), message }
}

impl TrialConfig {
    /// Parses a `RUN.toml` text; errors carry the line of the key at fault.
    pub fn from_toml_str(source: &str) -> Result<Self, ConfigError> {
        let table: Table = source.parse().map_err(|e: toml::de::Error| syntax_error(source, &e))?;
        Self::from_table(&table).map_err(|e| ConfigError {
            line: line_of(source, &e.key),
            key: e.key,
            message: e.message,
        })
    }

    /// Parses an already-read table.
    pub fn from_table(table: &Table) -> Result<Self, ParamError> {
        let mut r = ParamReader::new(table, "");
        let name = match r.raw("name") {
            None => "trial".to_string(),
            Some(Value::String(s)) => s.clone(),
            Some(other) => return Err(r.error("name", format!("expected a string, found {}", describe(other)))),
        };
        let seed = seed(&mut r)?;
        let dataset = DatasetConfig::from_table(section(&mut r, "dataset", true)?, "dataset")?;
        let model = ModelConfig::from_table(section(&mut r, "model", true)?, "model")?;
        let empty = Table::new();
        let train = match section(&mut r, "train", false) {
            Ok(t) => TrainConfig::from_table(t, "train")?,
            Err(e) if table.contains_key("train") => return Err(e),
            Err(_) => TrainConfig::from_table(&empty, "train")?,
        };
        let loss = LossConfig::from_table(section(&mut r, "loss", true)?, "loss")?;
        if table.contains_key("grid") {
            return Err(r.error("grid", "a run config is one trial; submit specs with [grid] to the coordinator"));
        }
        r.finish()?;
        Ok(Self { name, seed, dataset, model, train, loss })
    }
}

/// `seed = 3`, or `seeds = [3]` (a spec with one seed).
fn seed(r: &mut ParamReader) -> Result<u64, ParamError> {
    let as_seed = |v: &Value| v.as_integer().filter(|s| *s >= 0).map(|s| s as u64);
    match (r.raw("seed"), r.raw("seeds")) {
        (Some(_), Some(_)) => Err(r.error("seeds", "give seed or seeds, not both")),
        (Some(v), None) => {
            as_seed(v).ok_or_else(|| r.error("seed", format!("expected a whole number >= 0, found {}", describe(v))))
        }
        (None, Some(Value::Array(items))) if items.len() == 1 => {
            as_seed(&items[0]).ok_or_else(|| r.error("seeds", "expected a whole number >= 0"))
        }
        (None, Some(_)) => Err(r.error("seeds", "a run config trains one seed: write seed = N")),
        (None, None) => Ok(0),
    }
}

fn section<'a>(r: &mut ParamReader<'a>, key: &str, required: bool) -> Result<&'a Table, ParamError> {
    match r.raw(key) {
        Some(Value::Table(t)) => Ok(t),
        Some(other) => Err(r.error(key, format!("expected a table [{key}], found {}", describe(other)))),
        None if required => Err(r.error(key, format!("missing table [{key}]"))),
        None => Err(r.error(key, "missing")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RUN: &str = r#"name = "demo"
seed = 3

[dataset]
kind = "synthetic"
shape = "nuclei"

[model]
arch = "unet"
width = 8

[loss]
kind = "all"
epsilon = 0.5
"#;

    #[test]
    fn a_run_config_reads_with_defaults() {
        let t = TrialConfig::from_toml_str(RUN).unwrap();
        assert_eq!((t.name.as_str(), t.seed), ("demo", 3));
        assert_eq!(t.train, TrainConfig::default());
        assert_eq!(t.loss, LossConfig::default());
        assert_eq!(t.dataset.size, (48, 48));
    }

    #[test]
    fn errors_name_the_key_and_its_line() {
        let bad = RUN.replace("epsilon = 0.5", "epsilon = -0.5");
        let err = TrialConfig::from_toml_str(&bad).unwrap_err();
        assert_eq!(err.to_string(), "line 14: loss.epsilon: must be > 0, got -0.5");
        let bad = RUN.replace("width = 8", "widht = 8");
        assert_eq!(TrialConfig::from_toml_str(&bad).unwrap_err().line, Some(10));
        let bad = RUN.replace("seed = 3", "seeds = [1, 2]");
        assert!(TrialConfig::from_toml_str(&bad).unwrap_err().to_string().contains("one seed"));
        let bad = format!("{RUN}\n[grid]\n\"loss.omega\" = [6, 8]\n");
        assert!(TrialConfig::from_toml_str(&bad).unwrap_err().to_string().starts_with("line 16: grid:"));
        let err = TrialConfig::from_toml_str("name = \n").unwrap_err();
        assert_eq!((err.key.as_str(), err.line), ("(syntax)", Some(1)));
        // A control character in a comment: the parser's own message is empty.
        let err = TrialConfig::from_toml_str("name = \"x\"\n# a \u{1} b\n").unwrap_err();
        assert!(!err.message.trim().is_empty(), "{err}");
        assert_eq!(err.line, Some(2), "{err}");
    }

    #[test]
    fn data_set_keys_are_checked_per_kind() {
        let bad = RUN.replace("shape = \"nuclei\"", "shape = \"nuclei\"\npatches_per_image = 10");
        assert!(TrialConfig::from_toml_str(&bad)
            .unwrap_err()
            .to_string()
            .contains("dataset.patches_per_image: unknown key"));
        let bad = RUN.replace("kind = \"synthetic\"", "kind = \"drive\"");
        assert!(TrialConfig::from_toml_str(&bad).unwrap_err().to_string().contains("dataset.root: missing"));
        let bad = RUN.replace("shape = \"nuclei\"", "size = [50, 48]");
        assert!(TrialConfig::from_toml_str(&bad).unwrap_err().to_string().contains("multiples of 16"));
    }
}
