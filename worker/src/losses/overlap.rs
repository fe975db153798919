//! Region-overlap losses built from soft counts: Dice, Jaccard, Tversky, Focal Tversky.
//!
//! Soft counts use probabilities as they are: TP = sum(T P), FN = sum(T (1 - P)),
//! FP = sum((1 - T) P). The smoothing term `s` keeps an empty target and an empty
//! prediction at loss 0 instead of 0/0.

use tch::Tensor;

use super::Reduce;

/// 1 - (2 TP + s) / (sum T + sum P + s).
pub(super) fn dice_loss(p: &Tensor, t: &Tensor, smooth: f64, r: Reduce) -> Tensor {
    1.0 - dice_coefficient(p, t, smooth, r)
}

/// (2 TP + s) / (sum T + sum P + s): also the DSC term of the Combo loss.
pub(super) fn dice_coefficient(p: &Tensor, t: &Tensor, smooth: f64, r: Reduce) -> Tensor {
    let intersection = r.sum(&(p * t));
    (intersection * 2.0 + smooth) / (r.sum(t) + r.sum(p) + smooth)
}

/// 1 - (I + s) / (sum T + sum P - I + s), I = TP.
pub(super) fn jaccard_loss(p: &Tensor, t: &Tensor, smooth: f64, r: Reduce) -> Tensor {
    let intersection = r.sum(&(p * t));
    let union = r.sum(t) + r.sum(p) - &intersection;
    1.0 - (intersection + smooth) / (union + smooth)
}

/// Tversky index (TP + s) / (TP + alpha FN + (1 - alpha) FP + s); alpha weighs false negatives.
fn tversky_index(p: &Tensor, t: &Tensor, alpha: f64, smooth: f64, r: Reduce) -> Tensor {
    let tp = r.sum(&(p * t));
    let fn_ = r.sum(&(t * (1.0 - p)));
    let fp = r.sum(&((1.0 - t) * p));
    (&tp + smooth) / (&tp + fn_ * alpha + fp * (1.0 - alpha) + smooth)
}

/// 1 - Tversky index.
pub(super) fn tversky_loss(p: &Tensor, t: &Tensor, alpha: f64, smooth: f64, r: Reduce) -> Tensor {
    1.0 - tversky_index(p, t, alpha, smooth, r)
}

/// (1 - Tversky index)^(1 / gamma); the Focal Tversky paper's gamma = 4/3 gives exponent 0.75.
pub(super) fn focal_tversky_loss(p: &Tensor, t: &Tensor, alpha: f64, gamma: f64, smooth: f64, r: Reduce) -> Tensor {
    // The smoothing keeps the index at most 1, but rounding can cross it by an ulp; a
    // negative base to a fractional power would be NaN.
    (1f64 - tversky_index(p, t, alpha, smooth, r)).clamp_min(0.0).pow_tensor_scalar(1.0 / gamma)
}
