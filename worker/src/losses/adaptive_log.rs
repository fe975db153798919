//! The Adaptive Logarithmic Loss applied to a base loss value (paper equation 1).
//!
//! ALL(L) = omega ln(1 + |L| / epsilon) below gamma, |L| - C above, with
//! C = gamma - omega ln(1 + gamma / epsilon) so that both branches meet at gamma. The slope
//! jumps there (omega / (epsilon + gamma) below, 1 above): continuous, not smooth.

use tch::Tensor;

/// The three hyper-parameters of ALL, already validated (gamma in (0, 1], omega > 0, epsilon > 0).
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
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

    /// ALL of a base loss value (a scalar).
    pub fn value(&self, loss: f64) -> f64 {
        let a = loss.abs();
        if a < self.gamma {
            self.omega * (1.0 + a / self.epsilon).ln()
        } else {
            a - self.offset()
        }
    }

    /// dALL/dL for L >= 0: omega / (epsilon + L) below gamma, 1 from gamma on (Fig. 1).
    pub fn derivative(&self, loss: f64) -> f64 {
        let a = loss.abs();
        let slope = if a < self.gamma { self.omega / (self.epsilon + a) } else { 1.0 };
        if loss < 0.0 {
            -slope
        } else {
            slope
        }
    }

    /// ALL applied element-wise to a tensor of base loss values, differentiably.
    pub fn apply(&self, loss: &Tensor) -> Tensor {
        let a = loss.abs();
        let log_branch = (&a / self.epsilon).log1p() * self.omega;
        let linear_branch = &a - self.offset();
        log_branch.where_self(&a.lt(self.gamma), &linear_branch)
    }
}
