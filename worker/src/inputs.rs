//! Checks that a prediction and a target can be compared, before any loss or metric runs.
//!
//! Losses and metrics take probabilities in [0, 1] and a {0, 1} target of the same shape.
//! Anything else (a shape mismatch, a NaN, a probability of 1.3, a label of 255) is a
//! user error that must be reported as such, never a libtorch panic or a silent wrong number.

use tch::{Kind, Tensor};

/// Why a (prediction, target) pair was refused.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum InputError {
    #[error("prediction has shape {pred:?} but target has shape {target:?}; they must be equal")]
    ShapeMismatch { pred: Vec<i64>, target: Vec<i64> },
    #[error("prediction and target are empty (shape {0:?}); at least one pixel is needed")]
    Empty(Vec<i64>),
    #[error("{what} has dtype {kind:?}; a floating-point tensor is needed")]
    NotFloat { what: &'static str, kind: Kind },
    #[error("prediction holds {count} value(s) outside [0, 1] or not finite (e.g. {example}); pass probabilities, not logits")]
    PredictionOutOfRange { count: i64, example: f64 },
    #[error("target holds {count} value(s) other than 0 and 1 (e.g. {example}); binarise the labels first")]
    TargetNotBinary { count: i64, example: f64 },
}

/// Validates a pair: same non-empty shape, floating point, prediction in [0, 1], target in {0, 1}.
pub fn check_pair(pred: &Tensor, target: &Tensor) -> Result<(), InputError> {
    check_shapes(pred, target)?;
    for (what, t) in [("prediction", pred), ("target", target)] {
        if !t.is_floating_point() {
            return Err(InputError::NotFloat { what, kind: t.kind() });
        }
    }
    let bad_pred = pred.lt(0.0).logical_or(&pred.gt(1.0)).logical_or(&pred.isnan());
    let count = count_true(&bad_pred);
    if count > 0 {
        return Err(InputError::PredictionOutOfRange { count, example: first_where(pred, &bad_pred) });
    }
    let bad_target = target.ne(0.0).logical_and(&target.ne(1.0));
    let count = count_true(&bad_target);
    if count > 0 {
        return Err(InputError::TargetNotBinary { count, example: first_where(target, &bad_target) });
    }
    Ok(())
}

/// The cheap part of [`check_pair`]: equal, non-empty shapes. Used on the training hot path,
/// where value ranges were checked once when the data set was loaded.
pub fn check_shapes(pred: &Tensor, target: &Tensor) -> Result<(), InputError> {
    let (ps, ts) = (pred.size(), target.size());
    if ps != ts {
        return Err(InputError::ShapeMismatch { pred: ps, target: ts });
    }
    if pred.numel() == 0 {
        return Err(InputError::Empty(ps));
    }
    Ok(())
}

fn count_true(mask: &Tensor) -> i64 {
    mask.sum(Kind::Int64).int64_value(&[])
}

fn first_where(values: &Tensor, mask: &Tensor) -> f64 {
    values.masked_select(mask).flatten(0, -1).double_value(&[0])
}
