//! Pixel-wise losses: Focal and Combo (weighted cross-entropy minus Dice).
//!
//! Both take logarithms of probabilities, so P is clipped to [1e-7, 1 - 1e-7] first, as the
//! reference implementations do; outside that band the gradient is zero.

use tch::Tensor;

use super::{overlap, Reduce};

/// The clip applied before taking logarithms.
pub(super) const PROBABILITY_CLIP: f64 = 1e-7;

fn clipped(p: &Tensor) -> Tensor {
    p.clamp(PROBABILITY_CLIP, 1.0 - PROBABILITY_CLIP)
}

/// mean of -alpha_t (1 - p_t)^gamma ln p_t, with p_t = P where T = 1 and 1 - P where T = 0,
/// alpha_t = alpha where T = 1 and 1 - alpha where T = 0 (Lin et al.).
pub(super) fn focal_loss(p: &Tensor, t: &Tensor, gamma: f64, alpha: f64, r: Reduce) -> Tensor {
    let pc = clipped(p);
    let p_t: Tensor = t * &pc + (1.0 - t) * (1.0 - &pc);
    let alpha_t: Tensor = t * alpha + (1.0 - t) * (1.0 - alpha);
    let miss: Tensor = 1.0 - &p_t;
    let per_pixel = (alpha_t * miss.pow_tensor_scalar(gamma) * p_t.log()).neg();
    r.mean(&per_pixel)
}

/// alpha wBCE - (1 - alpha) DSC, with wBCE = -mean[beta T ln P + (1 - beta)(1 - T) ln(1 - P)]
/// (Taghanaki et al. 2019, the paper's formula; its public code has a sign error we do not copy).
pub(super) fn combo_loss(p: &Tensor, t: &Tensor, alpha: f64, beta: f64, smooth: f64, r: Reduce) -> Tensor {
    let pc = clipped(p);
    let weighted = t * pc.log() * beta + (1.0 - t) * (1f64 - &pc).log() * (1.0 - beta);
    let wbce = -r.mean(&weighted);
    wbce * alpha - overlap::dice_coefficient(p, t, smooth, r) * (1.0 - alpha)
}
