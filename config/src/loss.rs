//! Which loss, with which parameters: parsed from a config table and validated key by key.
//!
//! Definitions and defaults are those of `docs/paper-notes.md` sections 1-2; the
//! worker computes them (`allsweep_worker::losses`), the coordinator validates specs with them.

use serde::Serialize;
use toml::{Table, Value};

use crate::params::{describe, ParamError, ParamReader};

/// The three hyper-parameters of the Adaptive Logarithmic Loss (paper equation 1), validated:
/// gamma in (0, 1], omega > 0, epsilon > 0.
///
/// ALL(L) = omega ln(1 + |L| / epsilon) below gamma, |L| - C above, with
/// C = gamma - omega ln(1 + gamma / epsilon) so that both branches meet at gamma. The slope
/// jumps there (omega / (epsilon + gamma) below, 1 above): continuous, not smooth.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct AdaptiveLog {
    pub gamma: f64,
    pub omega: f64,
    pub epsilon: f64,
}

impl Default for AdaptiveLog {
    /// The paper's optimum: gamma 0.1, omega 10, epsilon 0.5.
    fn default() -> Self {
        Self { gamma: 0.1, omega: 10.0, epsilon: 0.5 }
    }
}

impl AdaptiveLog {
    /// The constant that makes the two branches meet at |L| = gamma.
    pub fn offset(&self) -> f64 {
        self.gamma - self.omega * (1.0 + self.gamma / self.epsilon).ln()
    }

    /// ALL of a base loss value.
    pub fn value(&self, loss: f64) -> f64 {
        let a = loss.abs();
        if a < self.gamma {
            self.omega * (1.0 + a / self.epsilon).ln()
        } else {
            a - self.offset()
        }
    }

    /// dALL/dL: omega / (epsilon + |L|) below gamma, 1 from gamma on (Fig. 1), signed like L.
    pub fn derivative(&self, loss: f64) -> f64 {
        let a = loss.abs();
        let slope = if a < self.gamma { self.omega / (self.epsilon + a) } else { 1.0 };
        if loss < 0.0 {
            -slope
        } else {
            slope
        }
    }
}

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

#[cfg(test)]
mod tests {
    use super::*;

    fn config(text: &str) -> LossConfig {
        let table: Table = text.parse().expect("test config is valid TOML");
        LossConfig::from_table(&table, "loss").expect("test config is valid")
    }

    fn config_error(text: &str) -> String {
        let table: Table = text.parse().expect("test config is valid TOML");
        LossConfig::from_table(&table, "loss").expect_err("config must be refused").to_string()
    }

    #[test]
    fn parameters_are_validated_with_the_key_named() {
        let cases = [
            ("kind = \"all\"\nepsilon = 0", "loss.epsilon: must be > 0, got 0"),
            ("kind = \"all\"\ngamma = 0", "loss.gamma: must be in (0, 1], got 0"),
            ("kind = \"all\"\ngamma = 1.5", "loss.gamma: must be in (0, 1], got 1.5"),
            ("kind = \"all\"\nomega = -1", "loss.omega: must be > 0, got -1"),
            ("kind = \"tversky\"\nalpha = 2", "loss.alpha: must be in [0, 1], got 2"),
            ("kind = \"dice\"\nalpha = 0.5", "loss.alpha: unknown key"),
            ("kind = \"dice\"\nreduction = \"pixel\"", "loss.reduction: unknown value \"pixel\""),
            ("kind = \"focal\"\ngamma = \"two\"", "loss.gamma: expected a number"),
            ("kind = \"dicee\"", "loss.kind: unknown loss \"dicee\""),
            ("gamma = 0.1", "loss.kind: missing"),
            ("kind = \"all\"\nbase = \"all\"", "loss.base.kind: the all loss cannot wrap itself"),
            ("kind = \"all\"\nbase = {kind = \"dice\", reduction = \"image\"}", "loss.base.reduction"),
            ("kind = \"all\"\nbase = {kind = \"tversky\", alpha = -1}", "loss.base.alpha: must be in [0, 1]"),
            ("kind = \"all\"\nbase = 3", "loss.base: expected a loss name or table"),
        ];
        for (text, expected) in cases {
            let err = config_error(text);
            assert!(err.starts_with(expected), "{text:?}: got {err:?}, expected it to start with {expected:?}");
        }
    }

    #[test]
    fn defaults_are_the_papers_and_configs_round_trip_through_serialization() {
        assert_eq!(config("kind = \"all\""), LossConfig::default());
        let text = "kind = \"all\"\nreduction = \"image\"\nbase = {kind = \"focal_tversky\", alpha = 0.6}";
        for original in [config(text), config("kind = \"combo\"\nbeta = 0.3"), LossConfig::default()] {
            let json = serde_json::to_value(&original).expect("serializes");
            let table = toml::Table::try_from(&json).expect("JSON object converts to TOML");
            assert_eq!(LossConfig::from_table(&table, "loss").expect("reads back"), original, "{json}");
        }
    }
}
