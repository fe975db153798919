//! Which network, and how wide.

use serde::Serialize;
use toml::Table;

use crate::params::{ParamError, ParamReader};

/// Which network.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Arch {
    Unet,
    Focusnet,
}

impl Arch {
    pub fn name(&self) -> &'static str {
        match self {
            Arch::Unet => "unet",
            Arch::Focusnet => "focusnet",
        }
    }
}

/// How the networks' batch norms run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BatchNormStyle {
    /// The authors' Keras layers: eps 1e-3, running statistics keep 0.99 of themselves per
    /// step (they need thousands of steps to settle, as the paper's runs have).
    Keras,
    /// PyTorch's defaults: eps 1e-5, the running statistics keep 0.9 (for short runs).
    Pytorch,
}

impl BatchNormStyle {
    /// (eps, libtorch momentum: the weight of the new batch's statistics).
    pub fn eps_and_momentum(self) -> (f64, f64) {
        match self {
            BatchNormStyle::Keras => (1e-3, 0.01),
            BatchNormStyle::Pytorch => (1e-5, 0.1),
        }
    }
}

/// A network, its width (the first level's channel count; 32 is the paper's) and how its
/// batch norms run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct ModelConfig {
    pub arch: Arch,
    pub width: i64,
    pub batch_norm: BatchNormStyle,
}

impl ModelConfig {
    /// `arch` at `width` with the authors' batch norm.
    pub fn new(arch: Arch, width: i64) -> Self {
        Self { arch, width, batch_norm: BatchNormStyle::Keras }
    }

    /// Parses the spec's `[model]` table: `arch` (required), `width` (default 32),
    /// `batch_norm` (`keras`, the default, or `pytorch`).
    pub fn from_table(table: &Table, prefix: &str) -> Result<Self, ParamError> {
        let mut r = ParamReader::new(table, prefix);
        if !table.contains_key("arch") {
            return Err(r.error("arch", "missing; one of unet, focusnet"));
        }
        let arch = match r.choice("arch", "unet", &["unet", "focusnet"])? {
            "focusnet" => Arch::Focusnet,
            _ => Arch::Unet,
        };
        let width = r.positive_integer("width", 32)?;
        if arch == Arch::Focusnet && width % 8 != 0 {
            return Err(
                r.error("width", format!("FocusNet needs a multiple of 8 (it scales 4-channel layers), got {width}"))
            );
        }
        let batch_norm = match r.choice("batch_norm", "keras", &["keras", "pytorch"])? {
            "pytorch" => BatchNormStyle::Pytorch,
            _ => BatchNormStyle::Keras,
        };
        r.finish()?;
        Ok(Self { arch, width, batch_norm })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn model_config_names_bad_keys() {
        let parse =
            |text: &str| ModelConfig::from_table(&text.parse().expect("TOML"), "model").map_err(|e| e.to_string());
        assert_eq!(parse("arch = \"focusnet\""), Ok(ModelConfig::new(Arch::Focusnet, 32)));
        assert!(parse("arch = \"resnet\"").unwrap_err().starts_with("model.arch: unknown value \"resnet\""));
        assert!(parse("width = 8").unwrap_err().starts_with("model.arch: missing"));
        assert!(parse("arch = \"unet\"\nwidth = 0")
            .unwrap_err()
            .starts_with("model.width: must be a positive integer"));
        assert!(parse("arch = \"focusnet\"\nwidth = 12")
            .unwrap_err()
            .starts_with("model.width: FocusNet needs a multiple of 8"));
        assert!(parse("arch = \"unet\"\ndepth = 5").unwrap_err().starts_with("model.depth: unknown key"));
    }
}
