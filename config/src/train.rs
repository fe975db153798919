//! The training schedule: the paper's protocol by default (Adam, lr 1e-4, batch 16, 50 epochs),
//! with the L2 regularisers of the authors' Keras layers.

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
    /// Multiplies the L2 kernel regularisers the authors' Keras layers declare (FocusNet: 1e-4
    /// on the residual blocks' and the 7x7 convolutions, 5e-4 on the first one; U-Net: none),
    /// added to the loss as Keras adds them. 1 is the authors' network, 0 turns them off.
    pub l2_scale: f64,
}

impl Default for TrainConfig {
    fn default() -> Self {
        Self { epochs: 50, batch_size: 16, lr: 1e-4, l2_scale: 1.0 }
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
        let l2_scale = r.number("l2_scale", d.l2_scale, |v| (0.0..=1e6).contains(&v), "in [0, 1e6]")?;
        r.finish()?;
        Ok(Self { epochs, batch_size, lr, l2_scale })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<TrainConfig, ParamError> {
        TrainConfig::from_table(&text.parse::<Table>().expect("TOML"), "train")
    }

    #[test]
    fn l2_scale_defaults_to_the_authors_and_is_checked() {
        assert_eq!(parse("").expect("defaults").l2_scale, 1.0);
        assert_eq!(parse("l2_scale = 0").expect("off").l2_scale, 0.0);
        assert_eq!(parse("l2_scale = 2.5").expect("scaled").l2_scale, 2.5);
        let error = parse("l2_scale = -1").expect_err("negative");
        assert_eq!(error.key, "train.l2_scale");
        assert!(error.message.contains("[0, 1e6]"), "{}", error.message);
    }
}
