//! The paper's losses: the Adaptive Logarithmic Loss (ALL) and its baselines.
//!
//! Definitions and defaults are those of `docs/paper-notes.md` sections 1-2. Every
//! loss takes probabilities in [0, 1] and a {0, 1} target of the same shape `[N, ...]`
//! (N images) and returns a scalar. Region losses (Dice, Jaccard, Tversky, Focal Tversky)
//! sum over the whole batch by default (the authors' code) or per image on request.
//!
//! A loss is chosen by a [`LossConfig`] (crate `allsweep-config`, which parses and validates
//! it), so that a sweep can name any loss and its parameters; [`Loss`] computes it.

mod adaptive_log;
mod overlap;
mod pixelwise;

pub use allsweep_config::loss::{AdaptiveLog, LossConfig, Reduction};

use tch::Tensor;

use crate::inputs::{self, InputError};

/// Why a loss could not be computed.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum LossError {
    #[error(transparent)]
    Input(#[from] InputError),
}

/// A configured loss, ready to compute.
#[derive(Debug, Clone, PartialEq)]
pub struct Loss {
    config: LossConfig,
}

impl Loss {
    pub fn new(config: LossConfig) -> Self {
        Self { config }
    }

    pub fn config(&self) -> &LossConfig {
        &self.config
    }

    /// The loss of a batch: validates the inputs fully (shape, ranges), then computes.
    pub fn compute(&self, pred: &Tensor, target: &Tensor) -> Result<Tensor, LossError> {
        inputs::check_pair(pred, target)?;
        Ok(self.compute_unchecked_values(pred, target))
    }

    /// The loss of a batch whose value ranges are already known to be valid (the training
    /// loop: targets were checked at load time, predictions come out of a sigmoid). Shapes
    /// are still checked, as that costs nothing.
    pub fn compute_checked_shapes(&self, pred: &Tensor, target: &Tensor) -> Result<Tensor, LossError> {
        inputs::check_shapes(pred, target)?;
        Ok(self.compute_unchecked_values(pred, target))
    }

    fn compute_unchecked_values(&self, pred: &Tensor, target: &Tensor) -> Tensor {
        let per_image = self.config.reduction() == Some(Reduction::Image);
        per_unit(&self.config, pred, target, per_image).mean(None)
    }
}

/// The loss per image (`per_image`, shape `[N]`) or over the whole batch (a scalar).
fn per_unit(config: &LossConfig, p: &Tensor, t: &Tensor, per_image: bool) -> Tensor {
    let r = Reduce { per_image };
    match config {
        LossConfig::Dice { smooth, .. } => overlap::dice_loss(p, t, *smooth, r),
        LossConfig::Jaccard { smooth, .. } => overlap::jaccard_loss(p, t, *smooth, r),
        LossConfig::Tversky { alpha, smooth, .. } => overlap::tversky_loss(p, t, *alpha, *smooth, r),
        LossConfig::FocalTversky { alpha, gamma, smooth, .. } => {
            overlap::focal_tversky_loss(p, t, *alpha, *gamma, *smooth, r)
        }
        LossConfig::Focal { gamma, alpha } => pixelwise::focal_loss(p, t, *gamma, *alpha, r),
        LossConfig::Combo { alpha, beta, smooth } => pixelwise::combo_loss(p, t, *alpha, *beta, *smooth, r),
        LossConfig::All { all, base, .. } => adaptive_log::apply(all, &per_unit(base, p, t, per_image)),
    }
}

/// Sums and means over the whole batch, or per image (over every dimension but the first).
#[derive(Debug, Clone, Copy)]
struct Reduce {
    per_image: bool,
}

impl Reduce {
    fn dims(&self, x: &Tensor) -> Vec<i64> {
        if self.per_image {
            (1..x.dim() as i64).collect()
        } else {
            (0..x.dim() as i64).collect()
        }
    }

    fn sum(&self, x: &Tensor) -> Tensor {
        x.sum_dim_intlist(self.dims(x), false, None)
    }

    fn mean(&self, x: &Tensor) -> Tensor {
        x.mean_dim(self.dims(x), false, None)
    }
}

#[cfg(test)]
mod tests;
