//! Building blocks shared by U-Net and FocusNet: convolutions, the Keras-style "same"
//! 2x2 convolution, and nearest-neighbour up-sampling.

use tch::nn::{self, Module, ModuleT};
use tch::Tensor;

/// A k x k convolution with "same" padding for odd k.
pub fn conv(p: nn::Path, cin: i64, cout: i64, k: i64, stride: i64, bias: bool) -> nn::Conv2D {
    let config = nn::ConvConfig { stride, padding: k / 2, bias, ..Default::default() };
    nn::conv2d(p, cin, cout, k, config)
}

/// A 2x2 convolution with Keras "same" padding: one extra row and column after the input
/// (none before), so the output keeps the input's size.
#[derive(Debug)]
pub struct SameConv2x2 {
    conv: nn::Conv2D,
}

impl SameConv2x2 {
    pub fn new(p: nn::Path, cin: i64, cout: i64, bias: bool) -> Self {
        let config = nn::ConvConfig { bias, ..Default::default() };
        Self { conv: nn::conv2d(p, cin, cout, 2, config) }
    }
}

impl Module for SameConv2x2 {
    fn forward(&self, xs: &Tensor) -> Tensor {
        xs.constant_pad_nd([0, 1, 0, 1]).apply(&self.conv)
    }
}

/// Nearest-neighbour up-sampling by an integer factor.
pub fn upsample(xs: &Tensor, factor: i64) -> Tensor {
    let (h, w) = (xs.size()[2], xs.size()[3]);
    xs.upsample_nearest2d([h * factor, w * factor], None, None)
}

/// Convolution, batch norm, ReLU: the unit of U-Net.
#[derive(Debug)]
pub struct ConvBnRelu {
    conv: nn::Conv2D,
    bn: nn::BatchNorm,
}

impl ConvBnRelu {
    pub fn new(p: nn::Path, cin: i64, cout: i64, k: i64, stride: i64) -> Self {
        Self {
            conv: conv(&p / "conv", cin, cout, k, stride, false),
            bn: nn::batch_norm2d(&p / "bn", cout, Default::default()),
        }
    }
}

impl ModuleT for ConvBnRelu {
    fn forward_t(&self, xs: &Tensor, train: bool) -> Tensor {
        // In place, as PyTorch's `ReLU(inplace=True)`: batch norm's backward does not need
        // its output, and the activation then costs no new tensor.
        let mut normalized = xs.apply(&self.conv).apply_t(&self.bn, train);
        let _ = normalized.relu_();
        normalized
    }
}

/// Dropout whose masks come from a seed the trainer sets before each step and the layer's
/// own number, not from libtorch's process-wide generator. Trials training side by side on
/// one worker's threads would otherwise draw from one generator in whatever order the
/// threads run, and no run could be repeated or resumed exactly.
#[derive(Debug)]
pub struct SeededDropout {
    p: f64,
    layer: u64,
    step_seed: StepSeed,
}

/// The per-step seed shared by a network's dropout layers.
pub type StepSeed = std::sync::Arc<std::sync::atomic::AtomicU64>;

impl SeededDropout {
    pub fn new(p: f64, layer: u64, step_seed: &StepSeed) -> Self {
        Self { p, layer, step_seed: step_seed.clone() }
    }
}

impl ModuleT for SeededDropout {
    fn forward_t(&self, xs: &Tensor, train: bool) -> Tensor {
        if !train || self.p == 0.0 {
            return xs.shallow_clone();
        }
        let seed =
            self.step_seed.load(std::sync::atomic::Ordering::Relaxed) ^ self.layer.wrapping_mul(0xD6E8_FEB8_6659_FD93);
        let keep = hashed_uniform(xs, seed).ge(self.p).to_kind(xs.kind());
        xs * keep / (1.0 - self.p)
    }
}

/// Uniform numbers in [0, 1), one per element of `like`, from a counter-based hash of
/// (seed, element index) computed on the tensor's own device (splitmix64's finaliser).
fn hashed_uniform(like: &Tensor, seed: u64) -> Tensor {
    let index = Tensor::arange(like.numel() as i64, (tch::Kind::Int64, like.device()));
    let logical_shift =
        |h: &Tensor, by: i64| h.bitwise_right_shift_tensor_scalar(by).bitwise_and((1_i64 << (64 - by)) - 1);
    let mut h = index * 0x9E37_79B9_7F4A_7C15_u64 as i64 + seed as i64;
    h = h.bitwise_xor_tensor(&logical_shift(&h, 30)) * 0xBF58_476D_1CE4_E5B9_u64 as i64;
    h = h.bitwise_xor_tensor(&logical_shift(&h, 27)) * 0x94D0_49BB_1331_11EB_u64 as i64;
    h = h.bitwise_xor_tensor(&logical_shift(&h, 31));
    (logical_shift(&h, 40).to_kind(tch::Kind::Float) / (1_u64 << 24) as f64).view_as(like)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeded_dropout_is_repeatable_unbiased_and_seed_dependent() {
        let seed = StepSeed::default();
        let dropout = SeededDropout::new(0.5, 3, &seed);
        let x = Tensor::ones([64, 32, 8, 8], (tch::Kind::Float, tch::Device::Cpu));
        seed.store(11, std::sync::atomic::Ordering::Relaxed);
        let a = dropout.forward_t(&x, true);
        let b = dropout.forward_t(&x, true);
        assert!(a.equal(&b), "same seed, same mask");
        let kept = a.ne(0.0).to_kind(tch::Kind::Double).mean(None).double_value(&[]);
        assert!((kept - 0.5).abs() < 0.01, "keeps half: {kept}");
        assert!((a.mean(None).double_value(&[]) - 1.0).abs() < 0.02, "scaled to keep the mean");
        seed.store(12, std::sync::atomic::Ordering::Relaxed);
        assert!(!dropout.forward_t(&x, true).equal(&a), "another step, another mask");
        assert!(dropout.forward_t(&x, false).equal(&x), "identity in eval mode");
    }
}
