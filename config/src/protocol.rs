//! `[train] protocol = "paper" | "sound"`: the two ways of running a comparison, each a set of
//! defaults for the keys that decide how a trial is trained, selected and split, so that one
//! spec runs either way (or both, as a grid axis `"train.protocol" = ["paper", "sound"]`).
//! Keys written in the config win over the protocol's defaults.
//!
//! - `paper`, the authors' way (their public Keras code): the weights of the best validation
//!   epoch, the learning rate cut on plateaus of the validation loss, DRIVE split by patch.
//! - `sound`: the same training, but DRIVE split by source image, so no patch of a tested
//!   image is trained on.
//!
//! Both hold a validation part (`dataset.validation_fraction = 0.1` of the training part)
//! apart from the test part, as best-validation selection needs: the authors validated on
//! their test images, which allsweep refuses. Both record the pooled hard metrics and the
//! authors' Keras-style ones; the reports of the presets show them side by side.

use serde::Serialize;
use toml::{Table, Value};

use crate::params::{describe, ParamError};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Protocol {
    Paper,
    Sound,
}

impl Protocol {
    pub fn name(&self) -> &'static str {
        match self {
            Protocol::Paper => "paper",
            Protocol::Sound => "sound",
        }
    }
}

/// The validation share both protocols hold out of the training part.
pub const VALIDATION_FRACTION: f64 = 0.1;

/// `table` with the defaults of the protocol its `[train] protocol` names written into the keys
/// it leaves out (unchanged without one). `TrainConfig` records which protocol it was.
pub fn with_defaults(table: &Table) -> Result<Table, ParamError> {
    let named = table.get("train").and_then(Value::as_table).and_then(|t| t.get("protocol"));
    let protocol = match named {
        None => return Ok(table.clone()),
        Some(Value::String(s)) if s == "paper" => Protocol::Paper,
        Some(Value::String(s)) if s == "sound" => Protocol::Sound,
        Some(Value::String(s)) => {
            return Err(ParamError {
                key: "train.protocol".into(),
                message: format!("unknown value {s:?}; expected one of paper, sound"),
            })
        }
        Some(other) => {
            return Err(ParamError {
                key: "train.protocol".into(),
                message: format!("expected a string, found {}", describe(other)),
            })
        }
    };
    let mut table = table.clone();
    let set = |section: &mut Table, key: &str, value: Value| {
        section.entry(key.to_string()).or_insert(value);
    };
    if let Some(Value::Table(train)) = table.get_mut("train") {
        set(train, "select", Value::String("best_validation".into()));
        set(train, "lr_schedule", Value::String("plateau".into()));
    }
    if let Some(Value::Table(dataset)) = table.get_mut("dataset") {
        let drive = dataset.get("kind").and_then(Value::as_str) == Some("drive");
        let official_test = dataset.get("test").and_then(Value::as_str) == Some("official");
        if !official_test {
            set(dataset, "validation_fraction", Value::Float(VALIDATION_FRACTION));
        }
        if drive {
            let split = if protocol == Protocol::Paper { "patch" } else { "image" };
            set(dataset, "split", Value::String(split.into()));
        }
    }
    Ok(table)
}
