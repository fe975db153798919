//! The Adaptive Logarithmic Loss applied to tensors of base loss values (paper equation 1);
//! its parameters and scalar form live in `allsweep_config::loss::AdaptiveLog`.

use allsweep_config::loss::AdaptiveLog;
use tch::Tensor;

/// ALL applied element-wise to `loss`, differentiably: the log branch below gamma, the
/// linear one from gamma on.
pub(super) fn apply(all: &AdaptiveLog, loss: &Tensor) -> Tensor {
    let a = loss.abs();
    let log_branch = (&a / all.epsilon).log1p() * all.omega;
    let linear_branch = &a - all.offset();
    log_branch.where_self(&a.lt(all.gamma), &linear_branch)
}
