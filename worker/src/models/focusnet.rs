//! FocusNet (Kaul, Manandhar, Pears, ISBI 2019) exactly as `docs/paper-notes.md` section 4 reads
//! the authors' Keras code: a small U-Net (branch 1) whose decoder features gate, through
//! squeeze-and-excitation, the encoder of the main network (branch 2); four deeply
//! supervised outputs fused into one probability map.
//!
//! `width` scales every channel count (32 is the paper; 8 gives a network small enough for
//! CPU tests and demos). Convolutions carry biases (the Keras default); all down-sampling is
//! strided; all up-sampling is nearest-neighbour.

use tch::nn::{self, Module, ModuleT};
use tch::Tensor;

use super::blocks::{conv, upsample, SameConv2x2, SeededDropout, StepSeed};

/// Keras' default LeakyReLU slope, used after the first convolution of branch 1.
const LEAKY_SLOPE: f64 = 0.3;
const SE_RATIO: i64 = 16;
const BRANCH1_DROPOUT: f64 = 0.2;

/// Pre-activation residual block: [BN-ReLU-conv3x3] twice, the first BN-ReLU skipped when
/// the block follows a stem that already normalised its input; a 1x1 conv shortcut when the
/// shape or channel count changes.
#[derive(Debug)]
struct Residual {
    pre_bn: Option<nn::BatchNorm>,
    conv1: nn::Conv2D,
    mid_bn: nn::BatchNorm,
    conv2: nn::Conv2D,
    shortcut: Option<nn::Conv2D>,
}

impl Residual {
    fn new(p: nn::Path, cin: i64, cout: i64, stride: i64, first: bool) -> Self {
        Self {
            pre_bn: (!first).then(|| nn::batch_norm2d(&p / "bn1", cin, Default::default())),
            conv1: conv(&p / "conv1", cin, cout, 3, stride, true),
            mid_bn: nn::batch_norm2d(&p / "bn2", cout, Default::default()),
            conv2: conv(&p / "conv2", cout, cout, 3, 1, true),
            shortcut: (stride != 1 || cin != cout).then(|| conv(&p / "shortcut", cin, cout, 1, stride, true)),
        }
    }
}

impl ModuleT for Residual {
    fn forward_t(&self, xs: &Tensor, train: bool) -> Tensor {
        let pre = match &self.pre_bn {
            Some(bn) => xs.apply_t(bn, train).relu(),
            None => xs.shallow_clone(),
        };
        let path = pre.apply(&self.conv1).apply_t(&self.mid_bn, train).relu().apply(&self.conv2);
        match &self.shortcut {
            Some(shortcut) => path + xs.apply(shortcut),
            None => path + xs,
        }
    }
}

/// Squeeze-and-excitation, ratio 16: channel weights from global average pooling.
#[derive(Debug)]
struct SqueezeExcite {
    fc1: nn::Linear,
    fc2: nn::Linear,
}

impl SqueezeExcite {
    fn new(p: nn::Path, c: i64) -> Self {
        let no_bias = nn::LinearConfig { bias: false, ..Default::default() };
        let hidden = (c / SE_RATIO).max(1);
        Self { fc1: nn::linear(&p / "fc1", c, hidden, no_bias), fc2: nn::linear(&p / "fc2", hidden, c, no_bias) }
    }
}

impl Module for SqueezeExcite {
    fn forward(&self, xs: &Tensor) -> Tensor {
        let (n, c) = (xs.size()[0], xs.size()[1]);
        let weights = xs.mean_dim([2i64, 3].as_slice(), false, None).apply(&self.fc1).relu().apply(&self.fc2).sigmoid();
        xs * weights.view([n, c, 1, 1])
    }
}

/// 2x nearest up-sampling, 2x2 "same" conv + ReLU (the caller concatenates the skip).
#[derive(Debug)]
struct Up {
    conv: SameConv2x2,
}

impl Up {
    fn new(p: nn::Path, cin: i64, cout: i64) -> Self {
        Self { conv: SameConv2x2::new(p, cin, cout, true) }
    }

    fn forward_cat(&self, xs: &Tensor, skip: &Tensor) -> Tensor {
        let up = upsample(xs, 2).apply(&self.conv).relu();
        Tensor::cat(&[&up, skip], 1)
    }
}

/// A deeply supervised side output: up-sample to full size, conv3x3 + ReLU, 1x1 + sigmoid.
#[derive(Debug)]
struct SideOutput {
    factor: i64,
    conv: nn::Conv2D,
    out: nn::Conv2D,
}

impl SideOutput {
    fn new(p: nn::Path, cin: i64, hidden: i64, factor: i64) -> Self {
        Self { factor, conv: conv(&p / "conv", cin, hidden, 3, 1, true), out: conv(&p / "out", hidden, 1, 1, 1, true) }
    }
}

impl Module for SideOutput {
    fn forward(&self, xs: &Tensor) -> Tensor {
        upsample(xs, self.factor).apply(&self.conv).relu().apply(&self.out).sigmoid()
    }
}

/// One stage of branch 2: residual block, attention gate from branch 1, SE, strided block.
#[derive(Debug)]
struct GatedStage {
    block: Residual,
    se_gate: SqueezeExcite,
    se: SqueezeExcite,
    down: Residual,
}

impl GatedStage {
    fn new(p: nn::Path, cin: i64, c: i64, first: bool) -> Self {
        Self {
            block: Residual::new(&p / "res", cin, c, 1, first),
            se_gate: SqueezeExcite::new(&p / "se_gate", c),
            se: SqueezeExcite::new(&p / "se", c),
            down: Residual::new(&p / "down", c, c, 2, false),
        }
    }

    fn forward_t(&self, xs: &Tensor, gate: &Tensor, train: bool) -> Tensor {
        let b = self.block.forward_t(xs, train);
        let gated = self.se_gate.forward(&b) * gate.sigmoid();
        self.down.forward_t(&self.se.forward(&gated), train)
    }
}

/// FocusNet; `forward_t` maps `[N, C, H, W]` to probabilities `[N, 1, H, W]`.
#[derive(Debug)]
pub struct FocusNet {
    // Branch 1: a small U-Net whose decoder outputs gate branch 2.
    b1_conv1: nn::Conv2D,
    b1_bn1: nn::BatchNorm,
    b1_down: [Residual; 3],
    b1_conv2: Residual,
    b1_conv3: Residual,
    b1_bottom: Residual,
    b1_dropout: SeededDropout,
    b1_up: [Up; 3],
    b1_conv5: Residual,
    b1_conv6: Residual,
    b1_conv7: Residual,
    // Branch 2: the main network.
    stem: nn::Conv2D,
    stem_bn: nn::BatchNorm,
    stages: [GatedStage; 3],
    bottom: Residual,
    bottom_se: SqueezeExcite,
    bottom_down: Residual,
    up: [Up; 4],
    dec: [Residual; 3],
    tail: [Residual; 3],
    out4: nn::Conv2D,
    sides: [SideOutput; 3],
    fuse: nn::Conv2D,
    fuse_out: nn::Conv2D,
}

impl FocusNet {
    pub fn new(p: &nn::Path, in_channels: i64, width: i64, step_seed: &StepSeed) -> Self {
        let ch = |c: i64| (c * width / 32).max(1);
        let res = |name: &str, cin: i64, cout: i64, stride: i64, first: bool| {
            Residual::new(p / name, ch(cin), ch(cout), stride, first)
        };
        let up = |name: &str, cin: i64, cout: i64| Up::new(p / name, ch(cin), ch(cout));
        Self {
            b1_conv1: conv(p / "b1_conv1", in_channels, ch(32), 3, 1, true),
            b1_bn1: nn::batch_norm2d(p / "b1_bn1", ch(32), Default::default()),
            b1_down: [
                res("b1_down1", 32, 32, 2, true),
                res("b1_down2", 64, 64, 2, false),
                res("b1_down3", 128, 128, 2, false),
            ],
            b1_conv2: res("b1_conv2", 32, 64, 1, false),
            b1_conv3: res("b1_conv3", 64, 128, 1, false),
            b1_bottom: res("b1_bottom", 128, 256, 1, false),
            b1_dropout: SeededDropout::new(BRANCH1_DROPOUT, 0, step_seed),
            b1_up: [up("b1_up256", 256, 256), up("b1_up128", 256, 128), up("b1_up64", 128, 64)],
            b1_conv5: Residual::new(p / "b1_conv5", ch(256) + ch(128), ch(256), 1, false),
            b1_conv6: Residual::new(p / "b1_conv6", ch(128) + ch(64), ch(128), 1, false),
            b1_conv7: Residual::new(p / "b1_conv7", ch(64) + ch(32), ch(64), 1, false),
            stem: conv(p / "stem", in_channels, ch(64), 7, 1, true),
            stem_bn: nn::batch_norm2d(p / "stem_bn", ch(64), Default::default()),
            stages: [
                GatedStage::new(p / "stage1", ch(64), ch(64), true),
                GatedStage::new(p / "stage2", ch(64), ch(128), false),
                GatedStage::new(p / "stage3", ch(128), ch(256), false),
            ],
            bottom: res("bottom", 256, 512, 1, false),
            bottom_se: SqueezeExcite::new(p / "bottom_se", ch(512)),
            bottom_down: res("bottom_down", 512, 512, 2, false),
            up: [up("up256", 512, 256), up("up128", 256, 128), up("up64", 128, 64), up("up32", 64, 32)],
            dec: [
                Residual::new(p / "dec256", 2 * ch(256), ch(256), 1, false),
                Residual::new(p / "dec128", 2 * ch(128), ch(128), 1, false),
                Residual::new(p / "dec64", 2 * ch(64), ch(64), 1, false),
            ],
            tail: [
                Residual::new(p / "tail32", ch(32) + ch(64), ch(32), 1, false),
                res("tail16", 32, 16, 1, false),
                res("tail4", 16, 4, 1, false),
            ],
            out4: conv(p / "out4", ch(4), 1, 1, 1, true),
            sides: [
                SideOutput::new(p / "side1", ch(256), ch(32), 8),
                SideOutput::new(p / "side2", ch(128), ch(32), 4),
                SideOutput::new(p / "side3", ch(64), ch(32), 2),
            ],
            fuse: conv(p / "fuse", 4, ch(32), 3, 1, true),
            fuse_out: conv(p / "fuse_out", ch(32), 1, 1, 1, true),
        }
    }

    /// Branch 1: returns the gates (conv7 at H, conv6 at H/2, conv5 at H/4).
    fn branch1(&self, xs: &Tensor, train: bool) -> [Tensor; 3] {
        let conv1 = xs.apply(&self.b1_conv1).apply_t(&self.b1_bn1, train);
        let conv1 = conv1.maximum(&(&conv1 * LEAKY_SLOPE));
        let conv2 = self.b1_conv2.forward_t(&self.b1_down[0].forward_t(&conv1, train), train);
        let conv3 = self.b1_conv3.forward_t(&self.b1_down[1].forward_t(&conv2, train), train);
        let bottom = self.b1_bottom.forward_t(&self.b1_down[2].forward_t(&conv3, train), train);
        let bottom = self.b1_dropout.forward_t(&bottom, train);
        let conv5 = self.b1_conv5.forward_t(&self.b1_up[0].forward_cat(&bottom, &conv3), train);
        let conv6 = self.b1_conv6.forward_t(&self.b1_up[1].forward_cat(&conv5, &conv2), train);
        let conv7 = self.b1_conv7.forward_t(&self.b1_up[2].forward_cat(&conv6, &conv1), train);
        [conv7, conv6, conv5]
    }
}

impl ModuleT for FocusNet {
    fn forward_t(&self, xs: &Tensor, train: bool) -> Tensor {
        let gates = self.branch1(xs, train);
        let stem = xs.apply(&self.stem).apply_t(&self.stem_bn, train).relu();
        let mut stage_outputs = Vec::with_capacity(3);
        let mut x = stem.shallow_clone();
        for (stage, gate) in self.stages.iter().zip(&gates) {
            x = stage.forward_t(&x, gate, train);
            stage_outputs.push(x.shallow_clone());
        }
        let x = self.bottom_se.forward(&self.bottom.forward_t(&x, train));
        let mut x = self.bottom_down.forward_t(&x, train);
        let mut side_maps = Vec::with_capacity(4);
        for ((up, dec), (skip, side)) in self.up.iter().zip(&self.dec).zip(stage_outputs.iter().rev().zip(&self.sides))
        {
            x = dec.forward_t(&up.forward_cat(&x, skip), train);
            side_maps.push(side.forward(&x));
        }
        let mut x = self.up[3].forward_cat(&x, &stem);
        for block in &self.tail {
            x = block.forward_t(&x, train);
        }
        side_maps.push(x.apply(&self.out4).sigmoid());
        Tensor::cat(&side_maps, 1).apply(&self.fuse).relu().apply(&self.fuse_out).sigmoid()
    }
}
