//! Building blocks shared by U-Net and FocusNet, with Keras's semantics, since the authors
//! built both networks in Keras: "same" padding as TensorFlow computes it (a stride-2
//! convolution pads only after the input), the Keras initialisers (`he_normal`,
//! `glorot_uniform`, zero biases), batch norm as Keras starts and runs it (gamma 1, beta 0,
//! eps 1e-3, momentum 0.99), and nearest-neighbour up-sampling. `docs/networks.md` says which
//! Keras line each part follows.

use std::cell::RefCell;

use allsweep_config::model::BatchNormStyle;
use tch::nn::{self, Module, ModuleT};
use tch::{Kind, Tensor};

/// How a kernel starts, as the Keras layer declares it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Init {
    /// `he_normal`: a normal truncated at two standard deviations, scaled to variance
    /// 2 / fan_in (Keras 2.3 and tf.keras).
    HeNormal,
    /// `glorot_uniform`, Keras's default: uniform in +-sqrt(6 / (fan_in + fan_out)).
    GlorotUniform,
}

impl Init {
    /// Draws `kernel` (`[out, in, kh, kw]` or `[out, in]`) in place from libtorch's generator.
    pub fn apply(self, kernel: &mut Tensor) {
        let size = kernel.size();
        let receptive: i64 = size[2..].iter().product();
        let (fan_in, fan_out) = ((size[1] * receptive) as f64, (size[0] * receptive) as f64);
        let drawn = match self {
            Init::HeNormal => {
                // The inverse normal CDF of a uniform between the standard normal's CDF at -2
                // and at 2; a normal truncated there has standard deviation 0.8796.
                const CDF_AT_MINUS_2: f64 = 0.022_750_131_948_179_195;
                const TRUNCATED_STD: f64 = 0.879_625_661_034_239_8;
                let (lo, hi) = (CDF_AT_MINUS_2, 1.0 - CDF_AT_MINUS_2);
                let u = Tensor::rand(size.as_slice(), (Kind::Double, kernel.device())) * (hi - lo) + lo;
                (u * 2.0 - 1.0).erfinv() * std::f64::consts::SQRT_2 * ((2.0 / fan_in).sqrt() / TRUNCATED_STD)
            }
            Init::GlorotUniform => {
                let limit = (6.0 / (fan_in + fan_out)).sqrt();
                Tensor::rand(size.as_slice(), (Kind::Double, kernel.device())) * (2.0 * limit) - limit
            }
        };
        tch::no_grad(|| kernel.copy_(&drawn.to_kind(kernel.kind())));
    }
}

/// The L2 kernel regularisers the Keras layers declare: (kernel, coefficient) pairs, added to
/// the loss as coefficient * sum(kernel^2) (Keras's `l2`, not decoupled weight decay).
#[derive(Debug, Default)]
pub struct L2Terms(RefCell<Vec<(Tensor, f64)>>);

impl L2Terms {
    pub fn push(&self, kernel: &Tensor, coefficient: f64) {
        self.0.borrow_mut().push((kernel.shallow_clone(), coefficient));
    }

    pub fn into_inner(self) -> Vec<(Tensor, f64)> {
        self.0.into_inner()
    }
}

/// A convolution with Keras semantics: "same" padding as TensorFlow pads it (for even input
/// sides, which the networks' sides always are: stride 2 pads `k - 2` rows and columns, the
/// odd one after), the kernel from `init`, a zero bias if any.
#[derive(Debug)]
pub struct Conv {
    conv: nn::Conv2D,
    /// Explicit (left, right, top, bottom) padding where TensorFlow's is not symmetric.
    pad: Option<[i64; 4]>,
    /// The stride, the symmetric padding and the groups `conv` was made with (for the bf16 path).
    stride: i64,
    padding: i64,
    groups: i64,
}

thread_local! {
    /// The kind convolutions compute in on this thread (`None`: their weights' kind).
    static CONV_KIND: std::cell::Cell<Option<Kind>> = const { std::cell::Cell::new(None) };
}

/// Runs `f` with every [`Conv`] on this thread computing in `kind` (bfloat16 for
/// `precision = "bf16"`): input, kernel and bias are cast to it, the output back to float32,
/// so batch norms, activations, the sigmoid, the losses and the float32 master weights
/// Adam updates stay in float32, and the gradients reach the weights through the casts.
/// This is what CUDA autocast does to convolutions, made explicit (tch 0.24 cannot set
/// autocast's dtype to bfloat16, and its CPU autocast is out of reach).
pub fn with_conv_kind<T>(kind: Option<Kind>, f: impl FnOnce() -> T) -> T {
    /// Puts the previous kind back when dropped, so a panic inside `f` (libtorch's errors
    /// are panics in tch's infallible calls) leaves the thread as it found it.
    struct Restore(Option<Kind>);
    impl Drop for Restore {
        fn drop(&mut self) {
            CONV_KIND.with(|k| k.set(self.0));
        }
    }
    let _restore = Restore(CONV_KIND.with(|k| k.replace(kind)));
    f()
}

/// The trial a fused network is computing now, in a member pass ([`member_passes`]).
#[derive(Debug, Clone, Copy)]
struct Member {
    index: i64,
    groups: i64,
}

impl Member {
    /// This trial's share of a fused variable (its rows of the first dimension): a view,
    /// through which gradients and running-statistics updates reach the fused variable.
    /// A trained variable is cut once per [`member_passes`] into every trial's share, so
    /// that its gradient is joined once from all of them (a share cut alone would send a
    /// zero-padded gradient of the whole variable back for each trial).
    fn share(self, fused: &Tensor) -> Tensor {
        if !fused.requires_grad() {
            let rows = fused.size()[0] / self.groups;
            return fused.narrow(0, self.index * rows, rows);
        }
        SHARES.with(|shares| {
            let mut shares = shares.borrow_mut();
            let cut = shares.entry(fused.data_ptr() as usize).or_insert_with(|| fused.chunk(self.groups, 0));
            cut[self.index as usize].shallow_clone()
        })
    }
}

thread_local! {
    /// The trial of a fused group this thread computes now (`None`: the whole group, or a
    /// network of its own).
    static MEMBER: std::cell::Cell<Option<Member>> = const { std::cell::Cell::new(None) };
    /// The trained variables cut into shares in the member passes under way, by address.
    static SHARES: RefCell<std::collections::HashMap<usize, Vec<Tensor>>> = RefCell::default();
}

/// The member passes of one forward of a fused group of `groups` trials: `pass(g)` for each
/// trial g in turn, every layer on this thread computing with trial g's share of its fused
/// variables, on that trial's own tensors (not channel-stacked): exactly the calls the trial
/// makes alone ([`FusedLayout::MemberPasses`](super::FusedLayout::MemberPasses)). The passes
/// share one cut of each variable.
pub fn member_passes<T>(groups: i64, mut pass: impl FnMut(i64) -> T) -> Vec<T> {
    /// Forgets the member and the cuts when dropped, panics included.
    struct Reset;
    impl Drop for Reset {
        fn drop(&mut self) {
            MEMBER.with(|m| m.set(None));
            SHARES.with(|shares| shares.borrow_mut().clear());
        }
    }
    let _reset = Reset;
    SHARES.with(|shares| shares.borrow_mut().clear());
    (0..groups)
        .map(|index| {
            MEMBER.with(|m| m.set(Some(Member { index, groups })));
            pass(index)
        })
        .collect()
}

fn member() -> Option<Member> {
    MEMBER.with(std::cell::Cell::get)
}

impl Conv {
    /// `groups` independent convolutions of `cin` to `cout` channels side by side, as one
    /// grouped convolution of `groups * cin` to `groups * cout` channels: the layer of a
    /// fused group of trials, one group per trial.
    #[allow(clippy::too_many_arguments)]
    pub fn grouped(p: nn::Path, groups: i64, cin: i64, cout: i64, k: i64, stride: i64, bias: bool, init: Init) -> Self {
        let total = if stride == 1 { k - 1 } else { (k - stride).max(0) };
        let (before, after) = (total / 2, total - total / 2);
        let symmetric = before == after;
        let config = nn::ConvConfig {
            stride,
            padding: if symmetric { before } else { 0 },
            bias,
            bs_init: nn::Init::Const(0.0),
            groups,
            ..Default::default()
        };
        let mut conv = nn::conv2d(p, groups * cin, groups * cout, k, config);
        init.apply(&mut conv.ws);
        let padding = if symmetric { before } else { 0 };
        Self { conv, pad: (!symmetric).then_some([before, after, before, after]), stride, padding, groups }
    }

    /// A "valid" convolution (no padding) with a bias, `groups` side by side: the 1x1
    /// stride-2 shortcut of a residual block.
    pub fn valid(p: nn::Path, groups: i64, cin: i64, cout: i64, k: i64, stride: i64, init: Init) -> Self {
        let config = nn::ConvConfig { stride, bias: true, bs_init: nn::Init::Const(0.0), groups, ..Default::default() };
        let mut conv = nn::conv2d(p, groups * cin, groups * cout, k, config);
        init.apply(&mut conv.ws);
        Self { conv, pad: None, stride, padding: 0, groups }
    }

    pub fn kernel(&self) -> &Tensor {
        &self.conv.ws
    }
}

impl Module for Conv {
    fn forward(&self, xs: &Tensor) -> Tensor {
        let padded = match self.pad {
            Some(pad) => xs.constant_pad_nd(pad),
            None => xs.shallow_clone(),
        };
        let kind = CONV_KIND.with(std::cell::Cell::get);
        let bias = self.conv.bs.as_ref();
        match member() {
            Some(m) => {
                let bias = bias.map(|b| m.share(b));
                self.convolve(&padded, &m.share(&self.conv.ws), bias.as_ref(), 1, kind)
            }
            None => self.convolve(&padded, &self.conv.ws, bias, self.groups, kind),
        }
    }
}

impl Conv {
    /// The convolution of `xs` by `kernel` (and `bias`) at this layer's stride and padding,
    /// in `kind` when given (inputs, kernel and bias cast to it, the output back to float32).
    fn convolve(&self, xs: &Tensor, kernel: &Tensor, bias: Option<&Tensor>, groups: i64, kind: Option<Kind>) -> Tensor {
        let (stride, padding) = ([self.stride; 2], [self.padding; 2]);
        match kind {
            None => xs.conv2d(kernel, bias, stride, padding, [1, 1], groups),
            Some(kind) => {
                let bias = bias.map(|b| b.to_kind(kind));
                let out =
                    xs.to_kind(kind).conv2d(&kernel.to_kind(kind), bias.as_ref(), stride, padding, [1, 1], groups);
                out.to_kind(Kind::Float)
            }
        }
    }
}

/// A dense layer without bias (Keras `Dense(use_bias=False)`), `groups` side by side: the
/// kernel is `[groups * out, in]`, each trial's `[out, in]` stacked, and the input
/// `[N, groups * in]` holds each trial's features as its block.
#[derive(Debug)]
pub struct GroupedLinear {
    ws: Tensor,
    groups: i64,
}

impl GroupedLinear {
    /// The layer with libtorch's default initial kernel; [`GroupedLinear::init`] draws the
    /// declared one. (Two steps, so that a block draws its layers' numbers in the order it
    /// always has, and a seed keeps giving the same network.)
    pub fn new(p: nn::Path, groups: i64, cin: i64, cout: i64) -> Self {
        let no_bias = nn::LinearConfig { bias: false, ..Default::default() };
        Self { ws: nn::linear(p, cin, groups * cout, no_bias).ws, groups }
    }

    pub fn init(&mut self, init: Init) {
        init.apply(&mut self.ws);
    }
}

impl Module for GroupedLinear {
    fn forward(&self, xs: &Tensor) -> Tensor {
        if let Some(m) = member() {
            return xs.linear::<&Tensor>(&m.share(&self.ws), None);
        }
        if self.groups == 1 {
            return xs.linear::<&Tensor>(&self.ws, None);
        }
        // The whole group in one batched product: [G, N, in] x [G, in, out].
        let (n, g) = (xs.size()[0], self.groups);
        let (cout, cin) = (self.ws.size()[0] / g, self.ws.size()[1]);
        let inputs = xs.view([n, g, cin]).transpose(0, 1);
        let kernels = self.ws.view([g, cout, cin]).transpose(1, 2);
        inputs.bmm(&kernels).transpose(0, 1).reshape([n, g * cout])
    }
}

/// What building a network needs besides its shape: how batch norms run, and where the
/// regularised kernels go.
#[derive(Debug)]
pub struct Build {
    pub batch_norm: BatchNormStyle,
    pub l2: L2Terms,
    /// Trials fused into this network (1: a network of its own). Each layer then holds one
    /// copy per trial side by side along its channels, and trial g's input, activations and
    /// output are channel block g.
    pub groups: i64,
}

/// Batch norm as a Keras `BatchNormalization()` starts: gamma 1, beta 0; it runs as `style`
/// says (the authors' Keras: eps 1e-3, momentum 0.99, which is libtorch's 0.01).
pub fn batch_norm(p: nn::Path, c: i64, style: BatchNormStyle) -> Norm {
    let (eps, momentum) = style.eps_and_momentum();
    let config = nn::BatchNormConfig {
        eps,
        momentum,
        ws_init: nn::Init::Const(1.0),
        bs_init: nn::Init::Const(0.0),
        ..Default::default()
    };
    Norm { bn: nn::batch_norm2d(p, c, config), eps, momentum }
}

/// A 2-d batch norm that, in a member pass ([`member_passes`]), normalises with its trial's share
/// of the scales, shifts and running statistics (and updates that share of the statistics).
#[derive(Debug)]
pub struct Norm {
    bn: nn::BatchNorm,
    eps: f64,
    momentum: f64,
}

impl ModuleT for Norm {
    fn forward_t(&self, xs: &Tensor, train: bool) -> Tensor {
        let Some(m) = member() else { return xs.apply_t(&self.bn, train) };
        let share = |t: &Tensor| m.share(t);
        let (ws, bs) = (self.bn.ws.as_ref().map(share), self.bn.bs.as_ref().map(share));
        let (mean, var) = (share(&self.bn.running_mean), share(&self.bn.running_var));
        // As tch's `BatchNorm` calls it (cuDNN enabled, its default).
        Tensor::batch_norm(xs, ws.as_ref(), bs.as_ref(), Some(&mean), Some(&var), train, self.momentum, self.eps, true)
    }
}

/// Nearest-neighbour up-sampling by an integer factor (Keras `UpSampling2D`).
pub fn upsample(xs: &Tensor, factor: i64) -> Tensor {
    let (h, w) = (xs.size()[2], xs.size()[3]);
    xs.upsample_nearest2d([h * factor, w * factor], None, None)
}

/// Convolution (no bias: the norm's shift replaces it), batch norm, ReLU: the unit of U-Net.
#[derive(Debug)]
pub struct ConvBnRelu {
    conv: Conv,
    bn: Norm,
}

impl ConvBnRelu {
    /// `groups` side by side ([`Conv::grouped`]; batch norm is per channel anyway).
    pub fn grouped(p: nn::Path, groups: i64, cin: i64, cout: i64, k: i64, stride: i64, style: BatchNormStyle) -> Self {
        Self {
            conv: Conv::grouped(&p / "conv", groups, cin, cout, k, stride, false, Init::HeNormal),
            bn: batch_norm(&p / "bn", groups * cout, style),
        }
    }
}

/// Concatenates `parts` along the channels group by group: with `groups` trials side by
/// side, trial g's block of the result is its blocks of the parts, in order (what
/// concatenating each trial's tensors alone gives). One group is a plain concatenation.
pub fn grouped_cat(parts: &[&Tensor], groups: i64) -> Tensor {
    if groups == 1 || member().is_some() {
        return Tensor::cat(parts, 1);
    }
    let split: Vec<Tensor> = parts
        .iter()
        .map(|t| {
            let s = t.size();
            t.view([s[0], groups, s[1] / groups, s[2], s[3]])
        })
        .collect();
    let joined = Tensor::cat(&split, 2);
    let s = joined.size();
    joined.view([s[0], s[1] * s[2], s[3], s[4]])
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

/// The per-step seeds shared by a network's dropout layers: one per trial fused in it (one
/// for a network of its own).
#[derive(Debug, Clone, Default)]
pub struct StepSeed(std::sync::Arc<std::sync::Mutex<Vec<u64>>>);

impl StepSeed {
    pub fn set(&self, seeds: &[u64]) {
        let mut held = self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        held.clear();
        held.extend_from_slice(seeds);
    }

    fn get(&self) -> Vec<u64> {
        self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).clone()
    }
}

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
        let layer = self.layer.wrapping_mul(0xD6E8_FEB8_6659_FD93);
        let seeds = self.step_seed.get();
        let mask = |xs: &Tensor, seed: u64| hashed_uniform(xs, seed ^ layer).ge(self.p).to_kind(xs.kind());
        let keep = match (member(), seeds.as_slice()) {
            // A member pass: this trial's own tensor, its own mask.
            (Some(m), seeds) => mask(xs, seeds.get(m.index as usize).copied().unwrap_or(0)),
            (None, []) => mask(xs, 0),
            (None, [seed]) => mask(xs, *seed),
            // Channel-stacked trials: each trial's block gets the mask it would get alone.
            (None, many) => {
                let blocks = xs.chunk(many.len() as i64, 1);
                let masks: Vec<Tensor> = blocks.iter().zip(many).map(|(block, seed)| mask(block, *seed)).collect();
                Tensor::cat(&masks, 1)
            }
        };
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
        seed.set(&[11]);
        let a = dropout.forward_t(&x, true);
        let b = dropout.forward_t(&x, true);
        assert!(a.equal(&b), "same seed, same mask");
        let kept = a.ne(0.0).to_kind(tch::Kind::Double).mean(None).double_value(&[]);
        assert!((kept - 0.5).abs() < 0.01, "keeps half: {kept}");
        assert!((a.mean(None).double_value(&[]) - 1.0).abs() < 0.02, "scaled to keep the mean");
        seed.set(&[12]);
        assert!(!dropout.forward_t(&x, true).equal(&a), "another step, another mask");
        assert!(dropout.forward_t(&x, false).equal(&x), "identity in eval mode");
    }
}
