//! U-Net as the ALL paper used it: "a generic U-Net enhanced with batch normalization,
//! dropout and strided downsampling". That variant is not in the authors' code; this is their
//! plain `unet()` (`TheFocusNetSeries/models.py`) with the paper's three changes, and
//! `docs/networks.md` maps each part to its Keras lines.
//!
//! Widths w, 2w, 4w, 8w and a 16w bottom (w = 32: 32 ... 512). Each encoder level is two
//! 3x3 conv+BN+ReLU, then a stride-2 3x3 conv+BN+ReLU in place of the max-pool (TensorFlow
//! "same" padding: the odd row and column after the input); dropout 0.5 on the two deepest
//! levels (level 4 before its skip, and the bottom). Each decoder step up-samples 2x
//! (nearest), applies a 2x2 "same" conv+BN+ReLU, concatenates [skip, up] and applies two 3x3
//! conv+BN+ReLU. The authors' head follows: a 3x3 conv to 2 channels with ReLU, then a 1x1
//! conv and a sigmoid. Convolutions followed by batch norm carry no bias (the norm's shift
//! replaces it); kernels are `he_normal` as in `unet()`, the last 1x1 Keras's default
//! `glorot_uniform`. The authors' `unet()` declares no L2 regulariser.

use tch::nn::{self, ModuleT};
use tch::Tensor;

use super::blocks::{batch_norm, grouped_cat, upsample, Build, Conv, ConvBnRelu, Init, Norm, SeededDropout, StepSeed};

const DEPTH: usize = 4;
const DROPOUT: f64 = 0.5;

#[derive(Debug)]
struct EncoderLevel {
    convs: [ConvBnRelu; 2],
    dropout: Option<SeededDropout>,
    downsample: ConvBnRelu,
}

#[derive(Debug)]
struct DecoderLevel {
    up_conv: Conv,
    up_bn: Norm,
    convs: [ConvBnRelu; 2],
}

/// The paper's U-Net; `forward_t` maps `[N, C, H, W]` to probabilities `[N, 1, H, W]`.
#[derive(Debug)]
pub struct UNet {
    encoder: Vec<EncoderLevel>,
    bottom: [ConvBnRelu; 2],
    bottom_dropout: SeededDropout,
    decoder: Vec<DecoderLevel>,
    /// `Conv2D(2, 3, activation='relu')`, then `Conv2D(1, 1, activation='sigmoid')`.
    head_conv: Conv,
    head: Conv,
    /// Trials fused side by side ([`Build::groups`]).
    groups: i64,
}

impl UNet {
    pub fn new(p: &nn::Path, in_channels: i64, width: i64, step_seed: &StepSeed, b: &Build) -> Self {
        let widths: Vec<i64> = (0..=DEPTH).map(|k| width << k).collect();
        let g = b.groups;
        let pair = |p: nn::Path, cin: i64, cout: i64| {
            [
                ConvBnRelu::grouped(&p / "conv1", g, cin, cout, 3, 1, b.batch_norm),
                ConvBnRelu::grouped(&p / "conv2", g, cout, cout, 3, 1, b.batch_norm),
            ]
        };
        let encoder = (0..DEPTH)
            .map(|k| {
                let level = p / format!("down{k}");
                let cin = if k == 0 { in_channels } else { widths[k - 1] };
                EncoderLevel {
                    convs: pair(&level / "block", cin, widths[k]),
                    dropout: (k == DEPTH - 1).then(|| SeededDropout::new(DROPOUT, k as u64, step_seed)),
                    downsample: ConvBnRelu::grouped(&level / "stride2", g, widths[k], widths[k], 3, 2, b.batch_norm),
                }
            })
            .collect();
        let bottom = pair(p / "bottom", widths[DEPTH - 1], widths[DEPTH]);
        let decoder = (0..DEPTH)
            .rev()
            .map(|k| {
                let level = p / format!("up{k}");
                DecoderLevel {
                    up_conv: Conv::grouped(
                        &level / "up_conv",
                        g,
                        widths[k + 1],
                        widths[k],
                        2,
                        1,
                        false,
                        Init::HeNormal,
                    ),
                    up_bn: batch_norm(&level / "up_bn", g * widths[k], b.batch_norm),
                    convs: pair(&level / "block", 2 * widths[k], widths[k]),
                }
            })
            .collect();
        let head_conv = Conv::grouped(p / "head_conv", g, widths[0], 2, 3, 1, true, Init::HeNormal);
        let head = Conv::grouped(p / "head", g, 2, 1, 1, 1, true, Init::GlorotUniform);
        let bottom_dropout = SeededDropout::new(DROPOUT, DEPTH as u64, step_seed);
        Self { encoder, bottom, bottom_dropout, decoder, head_conv, head, groups: g }
    }
}

impl ModuleT for UNet {
    fn forward_t(&self, xs: &Tensor, train: bool) -> Tensor {
        let mut skips = Vec::with_capacity(DEPTH);
        let mut x = xs.shallow_clone();
        for level in &self.encoder {
            let mut skip = level.convs[1].forward_t(&level.convs[0].forward_t(&x, train), train);
            if let Some(dropout) = &level.dropout {
                skip = dropout.forward_t(&skip, train);
            }
            x = level.downsample.forward_t(&skip, train);
            skips.push(skip);
        }
        x = self
            .bottom_dropout
            .forward_t(&self.bottom[1].forward_t(&self.bottom[0].forward_t(&x, train), train), train);
        for (level, skip) in self.decoder.iter().zip(skips.iter().rev()) {
            let mut up = upsample(&x, 2).apply(&level.up_conv).apply_t(&level.up_bn, train);
            let _ = up.relu_();
            let joined = grouped_cat(&[skip, &up], self.groups);
            x = level.convs[1].forward_t(&level.convs[0].forward_t(&joined, train), train);
        }
        x.apply(&self.head_conv).relu().apply(&self.head).sigmoid()
    }
}
