//! One trial's whole configuration: a `RUN.toml`, or one resolved point of a sweep.
//!
//! ```toml
//! name = "U-Net, ALL, DRIVE"
//! seed = 0
//! [dataset]  kind, root, size, ...   (see `dataset`)
//! [model]    arch, width
//! [train]    epochs, batch_size, lr, l2_scale, select, lr_schedule (and its keys), protocol
//! [loss]     kind and its parameters
//! ```
//!
//! Errors name the dotted key at fault and, when the text is at hand, its line.

use std::fmt;

use serde::Serialize;
use toml::{Table, Value};

use crate::lines::{line_at, line_of};
use crate::params::{describe, ParamError, ParamReader};
use crate::protocol;
use crate::train::Selection;
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
    /// What trials must share to train as one fused group (issue 11's horizontal fusion):
    /// the data set, the network, the batch size, the epochs, the precision and the L2
    /// scale, as one JSON text. Seeds, losses, learning rates, schedules and the selected
    /// epoch may differ.
    pub fn fuse_key(&self) -> String {
        let key = serde_json::json!({
            "dataset": self.dataset,
            "model": self.model,
            "batch_size": self.train.batch_size,
            "epochs": self.train.epochs,
            "precision": self.train.precision,
            "l2_scale": self.train.l2_scale,
        });
        key.to_string()
    }

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
        let table = protocol::with_defaults(table)?;
        let table = &table;
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
        if train.select == Selection::BestValidation && dataset.validation_is_test() {
            return Err(ParamError {
                key: "train.select".into(),
                message: "best_validation would select the weights on the test part (validation and test are the \
                          same held-out samples here); hold out a validation part with dataset.validation_fraction \
                          (e.g. 0.1), or select = \"last\""
                    .into(),
            });
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
    fn trials_fuse_when_they_differ_only_in_seed_loss_and_learning_rate() {
        let key = |text: &str| TrialConfig::from_toml_str(text).unwrap().fuse_key();
        let base = key(RUN);
        let other_loss =
            RUN.replace("seed = 3", "seed = 4").replace("kind = \"all\"\nepsilon = 0.5", "kind = \"dice\"");
        let other_lr = format!("{RUN}\n[train]\nlr = 0.01\nselect = \"last\"\n");
        assert_eq!(key(&other_loss), base);
        assert_eq!(key(&other_lr), base);
        for different in [
            RUN.replace("width = 8", "width = 16"),
            RUN.replace("shape = \"nuclei\"", "shape = \"vessels\""),
            format!("{RUN}\n[train]\nepochs = 7\n"),
            format!("{RUN}\n[train]\nbatch_size = 4\n"),
            format!("{RUN}\n[train]\nprecision = \"bf16\"\n"),
        ] {
            assert_ne!(key(&different), base, "{different}");
        }
        let focusnet = RUN.replace("arch = \"unet\"", "arch = \"focusnet\"");
        assert_eq!(key(&focusnet), key(&focusnet.replace("seed = 3", "seed = 4")), "FocusNets fuse too");
        assert_ne!(key(&focusnet), base, "a FocusNet and a U-Net do not");
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
    fn best_validation_is_refused_where_validation_is_the_test_set() {
        let best = format!("{RUN}\n[train]\nselect = \"best_validation\"\n");
        let err = TrialConfig::from_toml_str(&best).unwrap_err();
        assert_eq!(err.key, "train.select");
        assert!(err.message.contains("validation_fraction"), "{err}");
        let apart = best.replace("shape = \"nuclei\"", "shape = \"nuclei\"\nvalidation_fraction = 0.1");
        let t = TrialConfig::from_toml_str(&apart).expect("a validation part apart from the test part");
        assert_eq!(t.train.select, Selection::BestValidation);
        let drive = |extra: &str| {
            best.replace(
                "kind = \"synthetic\"\nshape = \"nuclei\"",
                &format!("kind = \"drive\"\nroot = \"DRIVE\"\n{extra}"),
            )
        };
        assert_eq!(TrialConfig::from_toml_str(&drive("split = \"patch\"")).unwrap_err().key, "train.select");
        assert!(TrialConfig::from_toml_str(&drive("test = \"official\"")).is_ok(), "official test images");
        assert!(TrialConfig::from_toml_str(&drive("split = \"patch\"\nvalidation_fraction = 0.1")).is_ok());
    }

    #[test]
    fn a_protocol_fills_in_the_keys_a_config_leaves_out() {
        use crate::dataset::SplitLevel;
        use crate::{LrSchedule, Plateau, Protocol};
        let drive = RUN.replace("kind = \"synthetic\"\nshape = \"nuclei\"", "kind = \"drive\"\nroot = \"DRIVE\"");
        let with = |protocol: &str, extra: &str| {
            TrialConfig::from_toml_str(&format!("{drive}\n[train]\nprotocol = \"{protocol}\"\n{extra}"))
        };
        let paper = with("paper", "").expect("the authors' way");
        assert_eq!(paper.train.protocol, Some(Protocol::Paper));
        assert_eq!(paper.train.select, Selection::BestValidation);
        assert_eq!(paper.train.lr_schedule, LrSchedule::Plateau(Plateau::default()));
        assert_eq!(paper.dataset.drive.expect("DRIVE").split, SplitLevel::Patch);
        assert_eq!(paper.dataset.validation_fraction, 0.1, "a validation part apart from the test part");
        let sound = with("sound", "").expect("the sound way");
        assert_eq!(sound.dataset.drive.expect("DRIVE").split, SplitLevel::Image);
        assert_eq!((sound.train.select, sound.dataset.validation_fraction), (Selection::BestValidation, 0.1));
        // Written keys win.
        let mine = with("paper", "select = \"last\"\nlr_schedule = \"constant\"").expect("overridden");
        assert_eq!((mine.train.select, mine.train.lr_schedule), (Selection::Last, LrSchedule::Constant));
        assert_eq!(with("nonsense", "").unwrap_err().key, "train.protocol");
        // The protocol is part of the config, so the same spec run both ways is two configs.
        assert_ne!(serde_json::to_string(&paper).unwrap(), serde_json::to_string(&sound).unwrap());
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
