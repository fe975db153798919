//! The training schedule: the paper's protocol by default (Adam, lr 1e-4, batch 16, 50 epochs,
//! the last epoch's weights evaluated), with the L2 regularisers of the authors' Keras layers;
//! and, as options, the authors' own protocol from their public Keras code: the weights of the
//! best validation epoch (`ModelCheckpoint(save_best_only)`) and a learning rate cut on
//! plateaus (`ReduceLROnPlateau`) or at fixed epochs (`LearningRateScheduler`).

use serde::Serialize;
use toml::{Table, Value};

use crate::params::{describe, ParamError, ParamReader};
use crate::protocol::Protocol;

/// Which epoch's weights are tested at the end.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Selection {
    /// The weights after the last epoch (the paper's text).
    Last,
    /// The weights after the epoch with the lowest validation loss (the authors' code). Needs
    /// a validation part apart from the test part: selecting on the test set would report a
    /// number chosen on the data it is measured on.
    BestValidation,
}

/// Keras's `ReduceLROnPlateau` as the authors configured it (`monitor='val_loss'`,
/// `patience=5`, `epsilon=0.1`, `min_lr=0.5e-7`, factor 0.1 by default, no cooldown): an epoch
/// improves when its validation loss is below the best so far by more than `threshold`
/// (absolute); after `patience` epochs in a row without improvement the rate is multiplied by
/// `factor`, never below `floor`, and the count starts again.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Plateau {
    pub factor: f64,
    pub patience: usize,
    pub threshold: f64,
    pub floor: f64,
}

impl Default for Plateau {
    fn default() -> Self {
        Self { factor: 0.1, patience: 5, threshold: 0.1, floor: 0.5e-7 }
    }
}

/// The learning rate over the epochs.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum LrSchedule {
    /// `lr` throughout (the paper's text).
    Constant,
    /// Cut on plateaus of the validation loss.
    Plateau(Plateau),
    /// Multiplied by `factor` once each milestone's number of epochs is done: the authors'
    /// `focusnetpp.py` schedule is 1e-4 for 16 epochs, 1e-5 to 26, 1e-6 to 41, then 1e-7,
    /// that is milestones [16, 26, 41] and factor 0.1.
    Step { milestones: Vec<usize>, factor: f64 },
}

impl LrSchedule {
    pub fn name(&self) -> &'static str {
        match self {
            LrSchedule::Constant => "constant",
            LrSchedule::Plateau(_) => "plateau",
            LrSchedule::Step { .. } => "step",
        }
    }
}

/// The floating-point format the network's convolutions compute in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Precision {
    /// float32 throughout.
    Fp32,
    /// Convolutions in bfloat16 (inputs, kernels and biases cast to it, outputs back to
    /// float32); batch norms, activations, losses, metrics and the weights Adam updates stay
    /// float32. The tensor cores' format on a GPU; it runs on a CPU too, slowly.
    Bf16,
}

impl Precision {
    pub fn name(&self) -> &'static str {
        match self {
            Precision::Fp32 => "fp32",
            Precision::Bf16 => "bf16",
        }
    }
}

/// The authors' step schedule's epochs (see [`LrSchedule::Step`]).
pub const AUTHORS_MILESTONES: [usize; 3] = [16, 26, 41];

/// A validated `[train]` table.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TrainConfig {
    pub epochs: usize,
    pub batch_size: usize,
    /// Adam's (initial) learning rate.
    pub lr: f64,
    /// Multiplies the L2 kernel regularisers the authors' Keras layers declare (FocusNet: 1e-4
    /// on the residual blocks' and the 7x7 convolutions, 5e-4 on the first one; U-Net: none),
    /// added to the loss as Keras adds them. 1 is the authors' network, 0 turns them off.
    pub l2_scale: f64,
    pub select: Selection,
    pub lr_schedule: LrSchedule,
    /// The protocol whose defaults filled in the keys not written (`crate::protocol`).
    pub protocol: Option<Protocol>,
    pub precision: Precision,
}

impl Default for TrainConfig {
    fn default() -> Self {
        Self {
            epochs: 50,
            batch_size: 16,
            lr: 1e-4,
            l2_scale: 1.0,
            select: Selection::Last,
            lr_schedule: LrSchedule::Constant,
            protocol: None,
            precision: Precision::Fp32,
        }
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
        let protocol = match r.raw("protocol") {
            None => None,
            Some(_) => match r.choice("protocol", "paper", &["paper", "sound"])? {
                "sound" => Some(Protocol::Sound),
                _ => Some(Protocol::Paper),
            },
        };
        let select = match r.choice("select", "last", &["last", "best_validation"])? {
            "best_validation" => Selection::BestValidation,
            _ => Selection::Last,
        };
        let lr_schedule = match r.choice("lr_schedule", "constant", &["constant", "plateau", "step"])? {
            "plateau" => LrSchedule::Plateau(plateau(&mut r, lr)?),
            "step" => step(&mut r)?,
            _ => LrSchedule::Constant,
        };
        let precision = match r.choice("precision", "fp32", &["fp32", "bf16"])? {
            "bf16" => Precision::Bf16,
            _ => Precision::Fp32,
        };
        r.finish()?;
        Ok(Self { epochs, batch_size, lr, l2_scale, select, lr_schedule, protocol, precision })
    }
}

fn factor(r: &mut ParamReader) -> Result<f64, ParamError> {
    r.number("lr_factor", 0.1, |v| v > 0.0 && v < 1.0, "in (0, 1)")
}

fn plateau(r: &mut ParamReader, lr: f64) -> Result<Plateau, ParamError> {
    let d = Plateau::default();
    let factor = factor(r)?;
    let patience = r.positive_integer("lr_patience", d.patience as i64)? as usize;
    let threshold = r.number("lr_threshold", d.threshold, |v| v >= 0.0, ">= 0")?;
    let floor = r.number("lr_floor", d.floor, |v| v >= 0.0, ">= 0")?;
    if floor > lr {
        return Err(r.error("lr_floor", format!("must not exceed train.lr ({lr}), got {floor}")));
    }
    Ok(Plateau { factor, patience, threshold, floor })
}

fn step(r: &mut ParamReader) -> Result<LrSchedule, ParamError> {
    let factor = factor(r)?;
    let milestones = match r.raw("lr_milestones") {
        None => AUTHORS_MILESTONES.to_vec(),
        Some(Value::Array(items)) => {
            let read: Option<Vec<usize>> =
                items.iter().map(|v| v.as_integer().filter(|m| *m > 0).map(|m| m as usize)).collect();
            match read {
                Some(m) if !m.is_empty() && m.windows(2).all(|w| w[0] < w[1]) => m,
                _ => {
                    return Err(r.error("lr_milestones", "expected increasing positive epoch counts, e.g. [16, 26, 41]"))
                }
            }
        }
        Some(other) => {
            return Err(
                r.error("lr_milestones", format!("expected an array of epoch counts, found {}", describe(other)))
            )
        }
    };
    // Milestones at or past the last epoch are allowed: a short run of a paper-length spec
    // keeps the first rate.
    Ok(LrSchedule::Step { milestones, factor })
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

    #[test]
    fn the_paper_s_text_is_the_default_and_the_authors_code_is_an_option() {
        let d = parse("").expect("defaults");
        assert_eq!((d.select, d.lr_schedule.clone()), (Selection::Last, LrSchedule::Constant));
        let authors = parse("select = \"best_validation\"\nlr_schedule = \"plateau\"").expect("plateau");
        assert_eq!(authors.select, Selection::BestValidation);
        assert_eq!(authors.lr_schedule, LrSchedule::Plateau(Plateau::default()));
        let tuned =
            parse("lr_schedule = \"plateau\"\nlr_patience = 2\nlr_threshold = 0\nlr_factor = 0.5\nlr_floor = 1e-6")
                .expect("tuned");
        assert_eq!(
            tuned.lr_schedule,
            LrSchedule::Plateau(Plateau { factor: 0.5, patience: 2, threshold: 0.0, floor: 1e-6 })
        );
        assert_eq!(parse("precision = \"bf16\"").expect("bf16").precision, Precision::Bf16);
        assert_eq!(parse("precision = \"fp16\"").expect_err("no fp16").key, "train.precision");
        let step = parse("lr_schedule = \"step\"").expect("step");
        assert_eq!(step.lr_schedule, LrSchedule::Step { milestones: vec![16, 26, 41], factor: 0.1 });
    }

    #[test]
    fn schedule_keys_are_checked_and_belong_to_their_schedule() {
        let error = parse("select = \"best\"").expect_err("unknown selection");
        assert!(error.message.contains("last, best_validation"), "{}", error.message);
        let error = parse("lr_patience = 3").expect_err("a plateau key without the plateau");
        assert_eq!(error.key, "train.lr_patience");
        let error = parse("lr_schedule = \"step\"\nlr_patience = 3").expect_err("a plateau key on a step schedule");
        assert_eq!(error.key, "train.lr_patience");
        let error = parse("lr_schedule = \"step\"\nlr_milestones = [10, 5]").expect_err("decreasing");
        assert!(error.message.contains("increasing"), "{}", error.message);
        let error = parse("lr_schedule = \"plateau\"\nlr_factor = 1.5").expect_err("a factor that raises the rate");
        assert_eq!(error.key, "train.lr_factor");
        let error = parse("lr = 1e-4\nlr_schedule = \"plateau\"\nlr_floor = 1e-3").expect_err("floor above the rate");
        assert!(error.message.contains("must not exceed train.lr"), "{}", error.message);
    }
}
