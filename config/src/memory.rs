//! How much device memory one trial needs at its peak, computed from its config alone, so
//! that the coordinator can hand a GPU only the trials that fit in what it has free (the
//! worker's memory-aware slots) without running anything first.
//!
//! The estimate adds up what a training step holds at once:
//!
//! - the **model state**: weights, their gradients and Adam's two moments (4 floats per
//!   parameter), one more copy for the best-validation weights when `select =
//!   "best_validation"`, and the bfloat16 copies of the kernels under `precision = "bf16"`;
//! - the **activations** autograd keeps for the backward pass: per sample, a constant of the
//!   network times its width times the input's pixels;
//! - the **data set**, resident on the device as bytes (inputs and masks);
//! - a margin for the allocator's rounding and the convolution workspaces.
//!
//! The parameter counts are exact (checked against the built networks in the worker's
//! tests); the activation constants were measured on the CPU (`allsweep-worker inspect step`
//! reports the measured peak beside this estimate, on a GPU too). An estimate that proves too
//! small costs one attempt that runs out of memory: the coordinator then asks twice as much
//! for that trial and every queued trial of the same shape ([`MemoryEstimate::shape`]), without
//! counting the attempt.

use crate::dataset::{DatasetConfig, DatasetKind, TestSet};
use crate::model::{Arch, ModelConfig};
use crate::train::{Precision, Selection};
use crate::TrialConfig;

/// What one trial is expected to hold on its device at its peak.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MemoryEstimate {
    /// Bytes at the peak of a training step, the resident data set included.
    pub bytes: u64,
    /// The trials that share this key need the same memory: the network, its width, the
    /// input, the batch, the precision, the selection and the data set's size. The
    /// coordinator raises the estimate of every queued trial with the key when one of them
    /// runs out of memory.
    pub shape: String,
}

/// Floats autograd keeps per sample, per unit of width, per input pixel, during a training
/// step at fp32 (measured: see the module's doc).
fn activation_floats_per_width_pixel(arch: Arch) -> f64 {
    match arch {
        Arch::Unet => UNET_ACTIVATIONS,
        Arch::Focusnet => FOCUSNET_ACTIVATIONS,
    }
}

/// Measured on the CPU (2026-11-29) from the peak of `inspect step` at batch 8 and 32,
/// 48x48, width 32: U-Net 17.8 MiB per sample, FocusNet 53.0 MiB (its dense, dilated and
/// attention branches keep far more per pixel).
const UNET_ACTIVATIONS: f64 = 64.0;
const FOCUSNET_ACTIVATIONS: f64 = 190.0;

/// Fixed bytes per trial beyond what is counted: the allocator's rounding and blocks, the
/// convolution workspaces, the loss's and metrics' temporaries.
pub const FIXED_MARGIN_BYTES: u64 = 256 << 20;
/// And a share of what is counted, for the same.
const MARGIN_SHARE: f64 = 0.25;

/// The parameters of `model` for `in_channels` input channels: exact (both networks' counts
/// are quadratic in the width: every convolution between two width-scaled layers gives a
/// w² term, the first and last ones and the norms a w term).
pub fn parameter_count(model: &ModelConfig, in_channels: i64) -> u64 {
    let w = model.width as f64;
    let c = in_channels as f64;
    let (a, b, b_c, k) = match model.arch {
        Arch::Unet => UNET_PARAMS,
        Arch::Focusnet => FOCUSNET_PARAMS,
    };
    (a * w * w + b * w + b_c * c * w + k).round() as u64
}

/// (w², w, w × input channels, constant) coefficients of the parameter count, fitted to the
/// built networks and exact for every width they take (`models::tests`).
const UNET_PARAMS: (f64, f64, f64, f64) = (8339.0, 262.0, 9.0, 5.0);
const FOCUSNET_PARAMS: (f64, f64, f64, f64) = (18585.015625, 706.25, 107.0, 5.0);

/// The input channels of a data set's samples.
pub fn input_channels(dataset: &DatasetConfig) -> i64 {
    match dataset.kind {
        DatasetKind::Synthetic => dataset.synthetic.map_or(3, |s| s.channels),
        DatasetKind::Isic2018 | DatasetKind::Dsb2018 | DatasetKind::Drive => 3,
    }
}

/// The samples a trial holds: every sample of the data set it reads (train, validation and
/// test), an upper bound where the size is only known once read (ISIC: 2,594 training
/// images; DSB 2018: 670; DRIVE: 20 training images, 20 more when testing on the official
/// ones).
pub fn sample_count(dataset: &DatasetConfig) -> u64 {
    let images = |all: u64| dataset.limit.map_or(all, |l| (l as u64).min(all));
    match dataset.kind {
        DatasetKind::Isic2018 => images(2594),
        DatasetKind::Dsb2018 => images(670),
        DatasetKind::Synthetic => dataset.synthetic.map_or(0, |s| s.images as u64),
        DatasetKind::Drive => {
            let Some(patches) = dataset.drive else { return 0 };
            let sources = images(20) + if patches.test == TestSet::Official { images(20) } else { 0 };
            sources * patches.per_image as u64
        }
    }
}

/// What a training step holds beyond the data set: one network at an input, a batch and a
/// precision.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StepShape {
    pub model: ModelConfig,
    pub channels: i64,
    pub size: (i64, i64),
    pub batch: i64,
    pub precision: Precision,
    /// Whether the best-validation weights are kept beside the trained ones.
    pub keeps_best: bool,
}

impl StepShape {
    /// Bytes of the model state and the activations at the peak of one step, without the
    /// margins.
    pub fn counted_bytes(&self) -> f64 {
        let pixels = (self.size.0 * self.size.1) as f64;
        let params = parameter_count(&self.model, self.channels) as f64;
        let state_floats = if self.keeps_best { 5.0 } else { 4.0 } * params;
        let mut state_bytes = 4.0 * state_floats;
        let activation_bytes = 4.0
            * activation_floats_per_width_pixel(self.model.arch)
            * self.model.width as f64
            * pixels
            * self.batch as f64;
        if self.precision == Precision::Bf16 {
            // The kernels' bfloat16 copies; the activations it keeps were measured no larger
            // than fp32's (the norms and activations stay float32).
            state_bytes += 2.0 * params;
        }
        state_bytes + activation_bytes
    }

    /// The estimate of one step alone, margins included (what `inspect step` compares with
    /// the peak it measures).
    pub fn bytes(&self) -> u64 {
        with_margins(self.counted_bytes())
    }
}

fn with_margins(counted: f64) -> u64 {
    (counted * (1.0 + MARGIN_SHARE)) as u64 + FIXED_MARGIN_BYTES
}

/// The estimate for one trial.
pub fn estimate(trial: &TrialConfig) -> MemoryEstimate {
    let (height, width) = trial.dataset.size;
    let channels = input_channels(&trial.dataset);
    let step = StepShape {
        model: trial.model,
        channels,
        size: trial.dataset.size,
        batch: trial.train.batch_size as i64,
        precision: trial.train.precision,
        keeps_best: trial.train.select == Selection::BestValidation,
    };
    let samples = sample_count(&trial.dataset);
    let data_bytes = samples as f64 * (channels + 1) as f64 * (height * width) as f64;
    let bytes = with_margins(step.counted_bytes() + data_bytes);
    let shape = format!(
        "{}/w{}/{}x{}x{}/b{}/{}/{}/{}x{}",
        trial.model.arch.name(),
        trial.model.width,
        channels,
        height,
        width,
        trial.train.batch_size,
        trial.train.precision.name(),
        if step.keeps_best { "best" } else { "last" },
        trial.dataset.kind.name(),
        samples,
    );
    MemoryEstimate { bytes, shape }
}

/// A byte count for people: `1.5 GiB`, `320 MiB`.
pub fn human_bytes(bytes: u64) -> String {
    const GIB: f64 = (1u64 << 30) as f64;
    const MIB: f64 = (1u64 << 20) as f64;
    let b = bytes as f64;
    if b >= GIB {
        format!("{:.1} GiB", b / GIB)
    } else {
        format!("{:.0} MiB", b / MIB)
    }
}

/// Parses a byte count as people write it: `24GiB`, `512MiB`, `2G` (powers of 1024), or a
/// plain number of bytes.
pub fn parse_bytes(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let split = t.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    let value: f64 = number.parse().map_err(|_| format!("{text:?}: expected a size such as 24GiB or 512MiB"))?;
    let scale: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kib" | "kb" => 1 << 10,
        "m" | "mib" | "mb" => 1 << 20,
        "g" | "gib" | "gb" => 1 << 30,
        "t" | "tib" | "tb" => 1 << 40,
        other => return Err(format!("{text:?}: unknown unit {other:?}; use B, KiB, MiB, GiB or TiB")),
    };
    let bytes = value * scale as f64;
    if !bytes.is_finite() || bytes < 1.0 || bytes > u64::MAX as f64 / 2.0 {
        return Err(format!("{text:?}: expected a size of at least 1 byte"));
    }
    Ok(bytes as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trial(text: &str) -> TrialConfig {
        TrialConfig::from_toml_str(text).expect("valid config")
    }

    const DRIVE_UNET: &str =
        "name = \"t\"\nseed = 1\n[dataset]\nkind = \"drive\"\nroot = \"DRIVE\"\npatches_per_image = 100\n\
        [model]\narch = \"unet\"\n[train]\nepochs = 1\nbatch_size = 16\n[loss]\nkind = \"dice\"\n";

    #[test]
    fn sizes_parse_in_powers_of_1024_and_bad_ones_say_why() {
        assert_eq!(parse_bytes("24GiB"), Ok(24 << 30));
        assert_eq!(parse_bytes("512 MiB"), Ok(512 << 20));
        assert_eq!(parse_bytes("1.5G"), Ok(3 << 29));
        assert_eq!(parse_bytes("4096"), Ok(4096));
        assert!(parse_bytes("12 parsecs").unwrap_err().contains("unknown unit \"parsecs\""));
        assert!(parse_bytes("GiB").unwrap_err().contains("expected a size"));
        assert!(parse_bytes("0").unwrap_err().contains("at least 1 byte"));
    }

    #[test]
    fn a_bigger_batch_input_width_or_data_set_needs_more_and_shares_a_shape_only_with_its_like() {
        let base = estimate(&trial(DRIVE_UNET));
        let bigger_batch = estimate(&trial(&DRIVE_UNET.replace("batch_size = 16", "batch_size = 64")));
        let wider = estimate(&trial(&DRIVE_UNET.replace("arch = \"unet\"", "arch = \"unet\"\nwidth = 64")));
        let more_data = estimate(&trial(&DRIVE_UNET.replace("patches_per_image = 100", "patches_per_image = 10000")));
        for bigger in [&bigger_batch, &wider, &more_data] {
            assert!(bigger.bytes > base.bytes, "{bigger:?} vs {base:?}");
            assert_ne!(bigger.shape, base.shape);
        }
        // The loss and the seed do not change what a step holds.
        let other_loss =
            trial(&DRIVE_UNET.replace("kind = \"dice\"", "kind = \"focal\"").replace("seed = 1", "seed = 7"));
        assert_eq!(estimate(&other_loss), base);
        // The paper's DRIVE set (20 x 10,000 patches of 48x48, RGB and mask, as bytes) alone is 1.84 GB.
        assert!(more_data.bytes > 1_843_200_000, "{}", human_bytes(more_data.bytes));
        assert!(more_data.bytes < 4_000_000_000, "{}", human_bytes(more_data.bytes));
    }
}
