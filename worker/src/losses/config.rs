//! Which loss, with which parameters: parsed from a config table and validated key by key.

use serde::Serialize;
use toml::{Table, Value};

use super::AdaptiveLog;
use crate::params::{describe, ParamError, ParamReader};

/// Where region sums run: over the whole batch (the authors' code, the default) or per
/// image, then averaged over the batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Reduction {
    Batch,
    Image,
}

/// A fully specified loss: every parameter present and validated.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum LossConfig {
    /// Dice loss, smoothing 1.
    Dice { smooth: f64, reduction: Reduction },
    /// Jaccard (IoU) loss, smoothing 1.
    Jaccard { smooth: f64, reduction: Reduction },
    /// Tversky loss; alpha (0.7) weighs false negatives, 1 - alpha false positives.
    Tversky { alpha: f64, smooth: f64, reduction: Reduction },
    /// Focal Tversky loss: (1 - TI)^(1/gamma), gamma 4/3.
    FocalTversky { alpha: f64, gamma: f64, smooth: f64, reduction: Reduction },
    /// Focal loss, gamma 2, alpha 0.25; a mean over pixels.
    Focal { gamma: f64, alpha: f64 },
    /// Combo loss: alpha wBCE - (1 - alpha) DSC, alpha 0.5, beta 0.5.
    Combo { alpha: f64, beta: f64, smooth: f64 },
    /// The Adaptive Logarithmic Loss wrapped around a base loss (Dice by default).
    All {
        #[serde(flatten)]
        all: AdaptiveLog,
        reduction: Reduction,
        base: Box<LossConfig>,
    },
}

/// Every loss name a config may use.
pub const LOSS_KINDS: [&str; 7] = ["all", "dice", "jaccard", "tversky", "focal_tversky", "focal", "combo"];

impl Default for LossConfig {
    /// The paper's proposal: ALL over the batch Dice loss, gamma 0.1, omega 10, epsilon 0.5.
    fn default() -> Self {
        LossConfig::All {
            all: AdaptiveLog::default(),
            reduction: Reduction::Batch,
            base: Box::new(LossConfig::Dice { smooth: 1.0, reduction: Reduction::Batch }),
        }
    }
}

impl LossConfig {
    /// Parses `table` (e.g. the spec's `[loss]`, whose dotted path is `prefix`); missing
    /// parameters take the paper's defaults, anything else wrong is an error naming the key.
    pub fn from_table(table: &Table, prefix: &str) -> Result<Self, ParamError> {
        let mut r = ParamReader::new(table, prefix);
        let kind = match r.raw("kind") {
            Some(Value::String(k)) => k.as_str(),
            Some(other) => return Err(r.error("kind", format!("expected a loss name, found {}", describe(other)))),
            None => return Err(r.error("kind", format!("missing; one of {}", LOSS_KINDS.join(", ")))),
        };
        let config = match kind {
            "dice" => LossConfig::Dice { smooth: smooth(&mut r)?, reduction: reduction(&mut r)? },
            "jaccard" => LossConfig::Jaccard { smooth: smooth(&mut r)?, reduction: reduction(&mut r)? },
            "tversky" => LossConfig::Tversky {
                alpha: unit_interval(&mut r, "alpha", 0.7)?,
                smooth: smooth(&mut r)?,
                reduction: reduction(&mut r)?,
            },
            "focal_tversky" => LossConfig::FocalTversky {
                alpha: unit_interval(&mut r, "alpha", 0.7)?,
                gamma: r.number("gamma", 4.0 / 3.0, |v| v > 0.0, "> 0 (the exponent is 1/gamma)")?,
                smooth: smooth(&mut r)?,
                reduction: reduction(&mut r)?,
            },
            "focal" => LossConfig::Focal {
                gamma: r.number("gamma", 2.0, |v| v >= 0.0, ">= 0")?,
                alpha: unit_interval(&mut r, "alpha", 0.25)?,
            },
            "combo" => LossConfig::Combo {
                alpha: unit_interval(&mut r, "alpha", 0.5)?,
                beta: unit_interval(&mut r, "beta", 0.5)?,
                smooth: smooth(&mut r)?,
            },
            "all" => {
                let defaults = AdaptiveLog::default();
                let all = AdaptiveLog {
                    gamma: r.number("gamma", defaults.gamma, |v| v > 0.0 && v <= 1.0, "in (0, 1]")?,
                    omega: r.number("omega", defaults.omega, |v| v > 0.0, "> 0")?,
                    epsilon: r.number("epsilon", defaults.epsilon, |v| v > 0.0, "> 0")?,
                };
                let reduction = reduction(&mut r)?;
                let base = Box::new(base_loss(&mut r, reduction)?);
                LossConfig::All { all, reduction, base }
            }
            other => return Err(r.error("kind", format!("unknown loss {other:?}; one of {}", LOSS_KINDS.join(", ")))),
        };
        r.finish()?;
        Ok(config)
    }

    /// The loss's name as configs spell it.
    pub fn kind(&self) -> &'static str {
        match self {
            LossConfig::Dice { .. } => "dice",
            LossConfig::Jaccard { .. } => "jaccard",
            LossConfig::Tversky { .. } => "tversky",
            LossConfig::FocalTversky { .. } => "focal_tversky",
            LossConfig::Focal { .. } => "focal",
            LossConfig::Combo { .. } => "combo",
            LossConfig::All { .. } => "all",
        }
    }

    /// Sets the reduction of the losses that have one.
    fn set_reduction(&mut self, to: Reduction) {
        match self {
            LossConfig::Dice { reduction, .. }
            | LossConfig::Jaccard { reduction, .. }
            | LossConfig::Tversky { reduction, .. }
            | LossConfig::FocalTversky { reduction, .. }
            | LossConfig::All { reduction, .. } => *reduction = to,
            LossConfig::Focal { .. } | LossConfig::Combo { .. } => {}
        }
    }

    /// The reduction, for the losses that have one.
    pub fn reduction(&self) -> Option<Reduction> {
        match self {
            LossConfig::Dice { reduction, .. }
            | LossConfig::Jaccard { reduction, .. }
            | LossConfig::Tversky { reduction, .. }
            | LossConfig::FocalTversky { reduction, .. }
            | LossConfig::All { reduction, .. } => Some(*reduction),
            LossConfig::Focal { .. } | LossConfig::Combo { .. } => None,
        }
    }
}

fn smooth(r: &mut ParamReader) -> Result<f64, ParamError> {
    r.number("smooth", 1.0, |v| v >= 0.0, ">= 0")
}

fn unit_interval(r: &mut ParamReader, key: &str, default: f64) -> Result<f64, ParamError> {
    r.number(key, default, |v| (0.0..=1.0).contains(&v), "in [0, 1]")
}

fn reduction(r: &mut ParamReader) -> Result<Reduction, ParamError> {
    Ok(match r.choice("reduction", "batch", &["batch", "image"])? {
        "image" => Reduction::Image,
        _ => Reduction::Batch,
    })
}

/// ALL's `base`: a loss name (`base = "tversky"`) or a table (`base = {kind = "tversky", alpha = 0.6}`).
/// The base may not be ALL again, and takes its reduction from ALL (a `reduction` written in
/// the base must agree with it, so that a serialized config reads back unchanged).
fn base_loss(r: &mut ParamReader, reduction: Reduction) -> Result<LossConfig, ParamError> {
    let table = match r.raw("base") {
        None => return Ok(LossConfig::Dice { smooth: 1.0, reduction }),
        Some(Value::String(kind)) => {
            let mut t = Table::new();
            t.insert("kind".into(), Value::String(kind.clone()));
            t
        }
        Some(Value::Table(t)) => t.clone(),
        Some(other) => return Err(r.error("base", format!("expected a loss name or table, found {}", describe(other)))),
    };
    if table.get("kind").and_then(Value::as_str) == Some("all") {
        return Err(r.error("base.kind", "the all loss cannot wrap itself; choose a base loss"));
    }
    let written = table.get("reduction").and_then(Value::as_str).map(str::to_owned);
    let mut base = LossConfig::from_table(&table, &r.path("base"))?;
    if let Some(written) = written.filter(|_| base.reduction() != Some(reduction)) {
        return Err(r.error(
            "base.reduction",
            format!("{written:?} differs from the all loss's reduction; the base follows it, so set reduction on the all loss only"),
        ));
    }
    base.set_reduction(reduction);
    Ok(base)
}
