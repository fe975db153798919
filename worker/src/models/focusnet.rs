//! FocusNet (Kaul, Manandhar, Pears, ISBI 2019) as the authors built it in Keras
//! (`chaitanya-kaul/TheFocusNetSeries`: `focusnet()` in `models.py`, its blocks in `resnet.py`,
//! `se.py` and `layers.py`), layer by layer; `docs/networks.md` maps each part to its lines.
//! A small U-Net (branch 1) whose decoder features gate, through squeeze-and-excitation, the
//! encoder of the main network (branch 2); four deeply supervised outputs fused into one
//! probability map.
//!
//! Variables are named after the Keras tensors (`conv1`, `pool1`, ..., `block4b`, `conv2_8`,
//! `out_concat`), so the layer table of the Keras model and this one can be compared line by
//! line (`models::tests`). `width` scales every channel count (32 is the authors'; 8 gives a
//! network small enough for CPU tests and demos).
//!
//! Built for a fused group ([`Build::groups`] > 1), every layer holds one copy per trial side
//! by side along its channels (grouped convolutions, grouped dense layers, per-channel batch
//! norms), and every concatenation joins each trial's own blocks ([`grouped_cat`]).

use tch::nn::{self, Module, ModuleT};
use tch::Tensor;

use super::blocks::{
    batch_norm, grouped_cat, upsample, Build, Conv, GroupedLinear, Init, Norm, SeededDropout, StepSeed,
};

/// `LeakyReLU()` after the initial convolution: Keras's default slope.
const LEAKY_SLOPE: f64 = 0.3;
const SE_RATIO: i64 = 16;
/// `Dropout(0.2)` after branch 1's deepest block.
const BRANCH1_DROPOUT: f64 = 0.2;
/// `l2(1.e-4)`: the residual blocks' convolutions and `_conv_bn_relu`'s.
const L2_RESIDUAL: f64 = 1e-4;
/// `initial_conv_block(weight_decay=5e-4)`.
const L2_INITIAL: f64 = 5e-4;

/// `_residual_block(basic_block, filters, repetitions=1, is_first_layer)`. The flag decides
/// two things together: `is_first_layer=True` is stride 1 with no BN-ReLU before the first
/// convolution; `False` is stride 2 with BN-ReLU first. Then BN-ReLU-conv3x3; the shortcut
/// is a 1x1 "valid" convolution with the block's stride when the shape or channels change.
/// Every convolution has a bias, `he_normal` kernels and L2 1e-4.
#[derive(Debug)]
struct Residual {
    /// `Some` exactly for the stride-2 blocks.
    pre_bn: Option<Norm>,
    conv1: Conv,
    bn2: Norm,
    conv2: Conv,
    shortcut: Option<Conv>,
}

impl Residual {
    fn new(p: nn::Path, cin: i64, cout: i64, stride: i64, b: &Build) -> Self {
        let g = b.groups;
        let block = Self {
            pre_bn: (stride == 2).then(|| batch_norm(&p / "bn1", g * cin, b.batch_norm)),
            conv1: Conv::grouped(&p / "conv1", g, cin, cout, 3, stride, true, Init::HeNormal),
            bn2: batch_norm(&p / "bn2", g * cout, b.batch_norm),
            conv2: Conv::grouped(&p / "conv2", g, cout, cout, 3, 1, true, Init::HeNormal),
            shortcut: (stride != 1 || cin != cout)
                .then(|| Conv::valid(&p / "shortcut", g, cin, cout, 1, stride, Init::HeNormal)),
        };
        for conv in [Some(&block.conv1), Some(&block.conv2), block.shortcut.as_ref()].into_iter().flatten() {
            b.l2.push(conv.kernel(), L2_RESIDUAL);
        }
        block
    }
}

impl ModuleT for Residual {
    fn forward_t(&self, xs: &Tensor, train: bool) -> Tensor {
        let first = match &self.pre_bn {
            Some(bn) => xs.apply_t(bn, train).relu().apply(&self.conv1),
            None => xs.apply(&self.conv1),
        };
        let residual = first.apply_t(&self.bn2, train).relu().apply(&self.conv2);
        match &self.shortcut {
            Some(shortcut) => xs.apply(shortcut) + residual,
            None => xs + residual,
        }
    }
}

/// `squeeze_excite_block(input, ratio=16)`: global average pooling, Dense(c/16) ReLU,
/// Dense(c) sigmoid, both without bias and `he_normal`; the input scaled by the result.
#[derive(Debug)]
struct SqueezeExcite {
    fc1: GroupedLinear,
    fc2: GroupedLinear,
}

impl SqueezeExcite {
    fn new(p: nn::Path, c: i64, b: &Build) -> Self {
        let hidden = (c / SE_RATIO).max(1);
        let mut fc1 = GroupedLinear::new(&p / "fc1", b.groups, c, hidden);
        let mut fc2 = GroupedLinear::new(&p / "fc2", b.groups, hidden, c);
        fc1.init(Init::HeNormal);
        fc2.init(Init::HeNormal);
        Self { fc1, fc2 }
    }
}

impl Module for SqueezeExcite {
    fn forward(&self, xs: &Tensor) -> Tensor {
        let (n, c) = (xs.size()[0], xs.size()[1]);
        let weights = xs.mean_dim([2i64, 3].as_slice(), false, None).apply(&self.fc1).relu().apply(&self.fc2).sigmoid();
        xs * weights.view([n, c, 1, 1])
    }
}

/// `Conv2D(c, 2, activation='relu', padding='same', kernel_initializer='he_normal')` on
/// `UpSampling2D(size=(2, 2))`; then `Concatenate()([skip, up])`, the skip first.
#[derive(Debug)]
struct Up {
    conv: Conv,
    groups: i64,
}

impl Up {
    fn new(p: nn::Path, cin: i64, cout: i64, b: &Build) -> Self {
        Self { conv: Conv::grouped(p, b.groups, cin, cout, 2, 1, true, Init::HeNormal), groups: b.groups }
    }

    fn forward_cat(&self, xs: &Tensor, skip: &Tensor) -> Tensor {
        let up = upsample(xs, 2).apply(&self.conv).relu();
        grouped_cat(&[skip, &up], self.groups)
    }
}

/// A 3x3 convolution to 32 channels with ReLU, then a 1x1 to one channel with a sigmoid
/// (`out1`-`out3` after their up-sampling, and `out_concat`/`out`), `he_normal`, no L2.
#[derive(Debug)]
struct Head {
    conv: Conv,
    out: Conv,
}

impl Head {
    fn new(p: nn::Path, cin: i64, hidden: i64, b: &Build) -> Self {
        Self {
            conv: Conv::grouped(&p / "conv", b.groups, cin, hidden, 3, 1, true, Init::HeNormal),
            out: Conv::grouped(&p / "out", b.groups, hidden, 1, 1, 1, true, Init::HeNormal),
        }
    }
}

impl Module for Head {
    fn forward(&self, xs: &Tensor) -> Tensor {
        xs.apply(&self.conv).relu().apply(&self.out).sigmoid()
    }
}

/// One stage of branch 2: `blockK` (stride 1), `seK` times the sigmoid of branch 1's gate,
/// `blockKse`, `blockKb` (stride 2).
#[derive(Debug)]
struct GatedStage {
    block: Residual,
    se: SqueezeExcite,
    block_se: SqueezeExcite,
    block_b: Residual,
}

impl GatedStage {
    fn new(p: &nn::Path, k: usize, cin: i64, c: i64, b: &Build) -> Self {
        Self {
            block: Residual::new(p / format!("block{k}"), cin, c, 1, b),
            se: SqueezeExcite::new(p / format!("se{k}"), c, b),
            block_se: SqueezeExcite::new(p / format!("block{k}se"), c, b),
            block_b: Residual::new(p / format!("block{k}b"), c, c, 2, b),
        }
    }

    fn forward_t(&self, xs: &Tensor, gate: &Tensor, train: bool) -> Tensor {
        let gated = self.se.forward(&self.block.forward_t(xs, train)) * gate.sigmoid();
        self.block_b.forward_t(&self.block_se.forward(&gated), train)
    }
}

/// FocusNet; `forward_t` maps `[N, C, H, W]` to probabilities `[N, 1, H, W]`.
#[derive(Debug)]
pub struct FocusNet {
    // Branch 1: a small U-Net whose decoder outputs gate branch 2.
    conv1: Conv,
    conv1_bn: Norm,
    pool1: Residual,
    conv2: Residual,
    pool2: Residual,
    conv3: Residual,
    pool3: Residual,
    conv4: Residual,
    drop4: SeededDropout,
    up5: Up,
    conv5: Residual,
    up6: Up,
    conv6: Residual,
    up7: Up,
    conv7: Residual,
    // Branch 2: the main network.
    conv1r: Conv,
    conv1r_bn: Norm,
    stages: [GatedStage; 3],
    block4: Residual,
    block4se: SqueezeExcite,
    block4b: Residual,
    up2_5: Up,
    conv2_5: Residual,
    out1: Head,
    up2_6: Up,
    conv2_6: Residual,
    out2: Head,
    up2_7: Up,
    conv2_7: Residual,
    out3: Head,
    up2_8: Up,
    conv2_8: [Residual; 3],
    out4: Conv,
    out_concat: Head,
    /// Trials fused side by side ([`Build::groups`]).
    groups: i64,
}

impl FocusNet {
    /// Builds the network under `p`; the kernels the Keras layers regularise go to `b.l2`.
    pub fn new(p: &nn::Path, in_channels: i64, width: i64, step_seed: &StepSeed, b: &Build) -> Self {
        let ch = |c: i64| (c * width / 32).max(1);
        let res = |name: &str, cin: i64, cout: i64, stride: i64| Residual::new(p / name, cin, cout, stride, b);
        let up = |name: &str, cin: i64, cout: i64| Up::new(p / name, ch(cin), ch(cout), b);
        let head = |name: &str, cin: i64| Head::new(p / name, cin, ch(32), b);
        let g = b.groups;
        let conv1 = Conv::grouped(p / "conv1", g, in_channels, ch(32), 3, 1, false, Init::HeNormal);
        b.l2.push(conv1.kernel(), L2_INITIAL);
        let conv1r = Conv::grouped(p / "conv1r", g, in_channels, ch(64), 7, 1, true, Init::HeNormal);
        b.l2.push(conv1r.kernel(), L2_RESIDUAL);
        Self {
            conv1,
            conv1_bn: batch_norm(p / "conv1_bn", g * ch(32), b.batch_norm),
            pool1: res("pool1", ch(32), ch(32), 2),
            conv2: res("conv2", ch(32), ch(64), 1),
            pool2: res("pool2", ch(64), ch(64), 2),
            conv3: res("conv3", ch(64), ch(128), 1),
            pool3: res("pool3", ch(128), ch(128), 2),
            conv4: res("conv4", ch(128), ch(256), 1),
            drop4: SeededDropout::new(BRANCH1_DROPOUT, 0, step_seed),
            up5: up("up5", 256, 256),
            conv5: res("conv5", ch(128) + ch(256), ch(256), 1),
            up6: up("up6", 256, 128),
            conv6: res("conv6", ch(64) + ch(128), ch(128), 1),
            up7: up("up7", 128, 64),
            conv7: res("conv7", ch(32) + ch(64), ch(64), 1),
            conv1r,
            conv1r_bn: batch_norm(p / "conv1r_bn", g * ch(64), b.batch_norm),
            stages: [
                GatedStage::new(p, 1, ch(64), ch(64), b),
                GatedStage::new(p, 2, ch(64), ch(128), b),
                GatedStage::new(p, 3, ch(128), ch(256), b),
            ],
            block4: res("block4", ch(256), ch(512), 1),
            block4se: SqueezeExcite::new(p / "block4se", ch(512), b),
            block4b: res("block4b", ch(512), ch(512), 2),
            up2_5: up("up2_5", 512, 256),
            conv2_5: res("conv2_5", 2 * ch(256), ch(256), 1),
            out1: head("out1", ch(256)),
            up2_6: up("up2_6", 256, 128),
            conv2_6: res("conv2_6", 2 * ch(128), ch(128), 1),
            out2: head("out2", ch(128)),
            up2_7: up("up2_7", 128, 64),
            conv2_7: res("conv2_7", 2 * ch(64), ch(64), 1),
            out3: head("out3", ch(64)),
            up2_8: up("up2_8", 64, 32),
            conv2_8: [
                res("conv2_8", ch(64) + ch(32), ch(32), 1),
                res("conv2_8b", ch(32), ch(16), 1),
                res("conv2_8c", ch(16), ch(4), 1),
            ],
            out4: Conv::grouped(p / "out4", g, ch(4), 1, 1, 1, true, Init::HeNormal),
            out_concat: head("out_concat", 4),
            groups: g,
        }
    }

    /// Branch 1: the gates (conv7 at H, conv6 at H/2, conv5 at H/4).
    fn branch1(&self, xs: &Tensor, train: bool) -> [Tensor; 3] {
        let conv1 = xs.apply(&self.conv1).apply_t(&self.conv1_bn, train);
        let conv1 = conv1.maximum(&(&conv1 * LEAKY_SLOPE));
        let conv2 = self.conv2.forward_t(&self.pool1.forward_t(&conv1, train), train);
        let conv3 = self.conv3.forward_t(&self.pool2.forward_t(&conv2, train), train);
        let conv4 = self.conv4.forward_t(&self.pool3.forward_t(&conv3, train), train);
        let drop4 = self.drop4.forward_t(&conv4, train);
        let conv5 = self.conv5.forward_t(&self.up5.forward_cat(&drop4, &conv3), train);
        let conv6 = self.conv6.forward_t(&self.up6.forward_cat(&conv5, &conv2), train);
        let conv7 = self.conv7.forward_t(&self.up7.forward_cat(&conv6, &conv1), train);
        [conv7, conv6, conv5]
    }
}

impl ModuleT for FocusNet {
    fn forward_t(&self, xs: &Tensor, train: bool) -> Tensor {
        let gates = self.branch1(xs, train);
        let conv1r = xs.apply(&self.conv1r).apply_t(&self.conv1r_bn, train).relu();
        let block1b = self.stages[0].forward_t(&conv1r, &gates[0], train);
        let block2b = self.stages[1].forward_t(&block1b, &gates[1], train);
        let block3b = self.stages[2].forward_t(&block2b, &gates[2], train);
        let block4 = self.block4se.forward(&self.block4.forward_t(&block3b, train));
        let block4b = self.block4b.forward_t(&block4, train);
        let conv2_5 = self.conv2_5.forward_t(&self.up2_5.forward_cat(&block4b, &block3b), train);
        let conv2_6 = self.conv2_6.forward_t(&self.up2_6.forward_cat(&conv2_5, &block2b), train);
        let conv2_7 = self.conv2_7.forward_t(&self.up2_7.forward_cat(&conv2_6, &block1b), train);
        let mut conv2_8 = self.up2_8.forward_cat(&conv2_7, &conv1r);
        for block in &self.conv2_8 {
            conv2_8 = block.forward_t(&conv2_8, train);
        }
        let outputs = [
            self.out1.forward(&upsample(&conv2_5, 8)),
            self.out2.forward(&upsample(&conv2_6, 4)),
            self.out3.forward(&upsample(&conv2_7, 2)),
            conv2_8.apply(&self.out4).sigmoid(),
        ];
        self.out_concat.forward(&grouped_cat(&outputs.iter().collect::<Vec<_>>(), self.groups))
    }
}
