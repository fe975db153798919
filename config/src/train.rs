//! The training schedule: the paper's protocol by default (Adam, lr 1e-4, batch 16, 50 epochs).

use serde::Serialize;
use toml::Table;

use crate::params::{ParamError, ParamReader};

/// A validated `[train]` table.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct TrainConfig {
    pub epochs: usize,
    pub batch_size: usize,
    /// Adam's learning rate.
    pub lr: f64,
}

impl Default for TrainConfig {
    fn default() -> Self {
        Self { epochs: 50, batch_size: 16, lr: 1e-4 }
    }
}

impl TrainConfig {
    pub fn from_table(table: &Table, prefix: &str) -> Result<Self, ParamError> {
        let mut r = ParamReader::new(table, prefix);
        let d = Self::default();
        let epochs = r.positive_integer("epochs", d.epochs as i64)? as usize;
        let batch_size = r.positive_integer("batch_size", d.batch_size as i64)? as usize;
        if batch_size < 2 {
            return Err(r.error("batch_size", "must be at least 2 (batch norm needs two samples)"));
        }
        let lr = r.number("lr", d.lr, |v| v > 0.0 && v < 1.0, "in (0, 1)")?;
        r.finish()?;
        Ok(Self { epochs, batch_size, lr })
    }
}
