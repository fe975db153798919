//! U-Net as the ALL paper used it: "a generic U-Net enhanced with batch normalization,
//! dropout and strided downsampling" (`docs/paper-notes.md` section 4).
//!
//! Widths w, 2w, 4w, 8w and a 16w bottom (w = 32: 32 ... 512). Each encoder level is two
//! 3x3 conv+BN+ReLU, then a stride-2 3x3 conv+BN+ReLU in place of the max-pool; dropout 0.5
//! on the two deepest levels (level 4 before its skip, and the bottom). Each decoder step
//! up-samples 2x (nearest), applies a 2x2 "same" conv+BN+ReLU, concatenates [skip, up] and
//! applies two 3x3 conv+BN+ReLU. A 1x1 conv and a sigmoid give the probability map.
//! Convolutions followed by batch norm carry no bias (the norm's shift replaces it).

use tch::nn::{self, ModuleT};
use tch::Tensor;

use super::blocks::{conv, upsample, ConvBnRelu, SameConv2x2, SeededDropout, StepSeed};

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
    up_conv: SameConv2x2,
    up_bn: nn::BatchNorm,
    convs: [ConvBnRelu; 2],
}

/// The paper's U-Net; `forward_t` maps `[N, C, H, W]` to probabilities `[N, 1, H, W]`.
#[derive(Debug)]
pub struct UNet {
    encoder: Vec<EncoderLevel>,
    bottom: [ConvBnRelu; 2],
    bottom_dropout: SeededDropout,
    decoder: Vec<DecoderLevel>,
    head: nn::Conv2D,
}

impl UNet {
    pub fn new(p: &nn::Path, in_channels: i64, width: i64, step_seed: &StepSeed) -> Self {
        let widths: Vec<i64> = (0..=DEPTH).map(|k| width << k).collect();
        let pair = |p: nn::Path, cin: i64, cout: i64| {
            [ConvBnRelu::new(&p / "conv1", cin, cout, 3, 1), ConvBnRelu::new(&p / "conv2", cout, cout, 3, 1)]
        };
        let encoder = (0..DEPTH)
            .map(|k| {
                let level = p / format!("down{k}");
                let cin = if k == 0 { in_channels } else { widths[k - 1] };
                EncoderLevel {
                    convs: pair(&level / "block", cin, widths[k]),
                    dropout: (k == DEPTH - 1).then(|| SeededDropout::new(DROPOUT, k as u64, step_seed)),
                    downsample: ConvBnRelu::new(&level / "stride2", widths[k], widths[k], 3, 2),
                }
            })
            .collect();
        let bottom = pair(p / "bottom", widths[DEPTH - 1], widths[DEPTH]);
        let decoder = (0..DEPTH)
            .rev()
            .map(|k| {
                let level = p / format!("up{k}");
                DecoderLevel {
                    up_conv: SameConv2x2::new(&level / "up_conv", widths[k + 1], widths[k], false),
                    up_bn: nn::batch_norm2d(&level / "up_bn", widths[k], Default::default()),
                    convs: pair(&level / "block", 2 * widths[k], widths[k]),
                }
            })
            .collect();
        let head = conv(p / "head", widths[0], 1, 1, 1, true);
        let bottom_dropout = SeededDropout::new(DROPOUT, DEPTH as u64, step_seed);
        Self { encoder, bottom, bottom_dropout, decoder, head }
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
            let joined = Tensor::cat(&[skip, &up], 1);
            x = level.convs[1].forward_t(&level.convs[0].forward_t(&joined, train), train);
        }
        x.apply(&self.head).sigmoid()
    }
}
