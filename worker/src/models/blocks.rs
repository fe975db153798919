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
        xs.apply(&self.conv).apply_t(&self.bn, train).relu()
    }
}
