//! The segmentation networks: the paper's U-Net and FocusNet, behind one checked entry point.
//!
//! [`ModelConfig`] (crate `allsweep-config`) says which network and how wide; [`Segmenter`] builds it in a `VarStore`
//! path and refuses inputs it cannot take (wrong channel count, sides not multiples of 16)
//! with an error instead of a libtorch panic deep in a concatenation.

mod blocks;
mod focusnet;
mod unet;

pub use focusnet::FocusNet;
pub use unet::UNet;

pub use allsweep_config::model::{Arch, ModelConfig};
use allsweep_config::Precision;
use tch::nn::{self, ModuleT};
use tch::{Kind, Tensor};

/// Input sides must be multiples of this: both networks halve the resolution four times.
pub const SIDE_MULTIPLE: i64 = 16;

/// Why a model could not be built or run.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ModelError {
    #[error("input channels must be 1, 2 or 3, got {0}")]
    Channels(i64),
    #[error("input has shape {0:?}; expected [N, C, H, W]")]
    Rank(Vec<i64>),
    #[error("the model takes {expected} input channel(s), the input has {found}")]
    ChannelMismatch { expected: i64, found: i64 },
    #[error("input size {height}x{width} is not supported: both sides must be positive multiples of 16 (e.g. 48x48, 128x128, 192x256)")]
    Size { height: i64, width: i64 },
    #[error("a fused group of {groups} trials takes {groups} of each: {what}")]
    Group { groups: i64, what: String },
}

/// Checks that a `height x width` input fits the networks.
pub fn check_size(height: i64, width: i64) -> Result<(), ModelError> {
    let ok = |side: i64| side > 0 && side % SIDE_MULTIPLE == 0;
    if ok(height) && ok(width) {
        Ok(())
    } else {
        Err(ModelError::Size { height, width })
    }
}

/// How a fused network ([`Segmenter::fused`]) computes its group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FusedLayout {
    /// One pass over the channel-stacked group: every convolution one grouped convolution,
    /// the dense layers one batched product. The GPU's way: the point of fusing there.
    Kernels,
    /// One pass per trial on that trial's own tensors, each layer computing with its share
    /// of the fused variables ([`blocks::member_passes`]): exactly the calls the trial makes
    /// alone. The CPU's way: its grouped kernels gain nothing on a CPU's few cores, and
    /// moving each trial's channels in and out of the stacked layout cost up to a third of
    /// the step (scripts/bench/fused_step.py), while member passes cost what the trials
    /// cost one after another.
    MemberPasses,
}

impl FusedLayout {
    /// The layout a fused network takes on `device` unless told otherwise.
    pub fn for_device(device: tch::Device) -> Self {
        if device.is_cuda() {
            FusedLayout::Kernels
        } else {
            FusedLayout::MemberPasses
        }
    }
}

/// A built network that checks its inputs.
#[derive(Debug)]
pub struct Segmenter {
    net: Box<dyn ModuleT>,
    /// Seed of the dropout masks of the next forward pass (see [`blocks::SeededDropout`]).
    step_seed: blocks::StepSeed,
    in_channels: i64,
    config: ModelConfig,
    /// The kernels the authors' Keras layers regularise, with their L2 coefficients.
    l2: Vec<(Tensor, f64)>,
    /// The kind the convolutions compute in (`None`: float32, as the weights).
    conv_kind: Option<Kind>,
    /// Trials fused in it (see [`Segmenter::fused`]); 1 for a network of its own.
    groups: i64,
    /// How a fused network computes (`None`: [`FusedLayout::for_device`] of its input).
    layout: Option<FusedLayout>,
    /// The trials of a fused group still computed in member passes (empty: all of them).
    active: Vec<bool>,
}

impl Segmenter {
    /// Builds the network's variables under `path`.
    pub fn new(path: &nn::Path, config: ModelConfig, in_channels: i64) -> Result<Self, ModelError> {
        Self::fused(path, config, in_channels, 1)
    }

    /// `groups` copies of the network trained as one (horizontal fusion): on a GPU every
    /// convolution is one grouped convolution over the copies, batch norm and dropout act per
    /// channel ([`FusedLayout`] says how a CPU computes it), and copy g reads channel block g
    /// of the input (`[N, groups * C, H, W]`) and writes channel
    /// g of the output (`[N, groups, H, W]`). Its variables have the single network's names,
    /// each the copies' tensors stacked along the first dimension ([`fuse_weights`],
    /// [`member_weights`]).
    pub fn fused(path: &nn::Path, config: ModelConfig, in_channels: i64, groups: i64) -> Result<Self, ModelError> {
        if !(1..=3).contains(&in_channels) {
            return Err(ModelError::Channels(in_channels));
        }
        if groups < 1 {
            return Err(ModelError::Group { groups, what: "at least one trial".into() });
        }
        let step_seed = blocks::StepSeed::default();
        let build = blocks::Build { batch_norm: config.batch_norm, l2: blocks::L2Terms::default(), groups };
        let net: Box<dyn ModuleT> = match config.arch {
            Arch::Unet => Box::new(UNet::new(path, in_channels, config.width, &step_seed, &build)),
            Arch::Focusnet => Box::new(FocusNet::new(path, in_channels, config.width, &step_seed, &build)),
        };
        Ok(Self {
            net,
            step_seed,
            in_channels,
            config,
            l2: build.l2.into_inner(),
            conv_kind: None,
            groups,
            layout: None,
            active: Vec::new(),
        })
    }

    /// Trials fused in this network.
    pub fn groups(&self) -> i64 {
        self.groups
    }

    /// Computes a fused group in `layout` whatever the device (tests check both layouts'
    /// arithmetic on the CPU).
    pub fn set_layout(&mut self, layout: FusedLayout) {
        self.layout = Some(layout);
    }

    /// Which trials of a fused group are still computed, one flag per trial: in member passes
    /// a trial that has left its group (diverged, stopped) is skipped and its output channel
    /// is zeros; grouped kernels compute every trial whatever its flag.
    pub fn set_active_members(&mut self, active: &[bool]) -> Result<(), ModelError> {
        if active.len() as i64 != self.groups {
            return Err(ModelError::Group {
                groups: self.groups,
                what: format!("{} member flags given", active.len()),
            });
        }
        self.active = active.to_vec();
        Ok(())
    }

    pub fn config(&self) -> ModelConfig {
        self.config
    }

    /// The Keras L2 regularisation term, `scale` times the sum over the regularised kernels of
    /// coefficient * sum(kernel^2); `None` when there is nothing to add (`scale` 0, or a
    /// network whose authors declared no regulariser).
    pub fn l2_penalty(&self, scale: f64) -> Option<Tensor> {
        if scale == 0.0 || self.l2.is_empty() {
            return None;
        }
        let terms: Vec<Tensor> =
            self.l2.iter().map(|(kernel, c)| kernel.square().sum(kernel.kind()) * (c * scale)).collect();
        Some(Tensor::stack(&terms, 0).sum(terms[0].kind()))
    }

    /// Runs the convolutions in `precision` from now on (see [`blocks::with_conv_kind`]).
    pub fn set_precision(&mut self, precision: Precision) {
        self.conv_kind = match precision {
            Precision::Fp32 => None,
            Precision::Bf16 => Some(Kind::BFloat16),
        };
    }

    /// Sets the seed of the dropout masks for the following training passes.
    pub fn set_step_seed(&self, seed: u64) {
        self.step_seed.set(&[seed]);
    }

    /// [`Segmenter::set_step_seed`] for a fused network: one seed per trial, in group order.
    pub fn set_step_seeds(&self, seeds: &[u64]) -> Result<(), ModelError> {
        if seeds.len() as i64 != self.groups {
            return Err(ModelError::Group { groups: self.groups, what: format!("{} step seeds given", seeds.len()) });
        }
        self.step_seed.set(seeds);
        Ok(())
    }

    /// Checks that `input` fits: `[N, C, H, W]` with the model's C and sides multiples of 16.
    pub fn check_input(&self, input: &Tensor) -> Result<(), ModelError> {
        let size = input.size();
        let [_, c, h, w] = size[..] else { return Err(ModelError::Rank(size)) };
        if c != self.in_channels * self.groups {
            return Err(ModelError::ChannelMismatch { expected: self.in_channels * self.groups, found: c });
        }
        check_size(h, w)
    }

    /// Probabilities `[N, 1, H, W]` for `input` (`[N, groups, H, W]` for a fused group);
    /// `train` enables dropout and batch statistics.
    pub fn forward_t(&self, input: &Tensor, train: bool) -> Result<Tensor, ModelError> {
        self.check_input(input)?;
        let layout = self.layout.unwrap_or_else(|| FusedLayout::for_device(input.device()));
        Ok(blocks::with_conv_kind(self.conv_kind, || {
            if self.groups == 1 || layout == FusedLayout::Kernels {
                return self.net.forward_t(input, train);
            }
            let inputs = input.chunk(self.groups, 1);
            let outputs = blocks::member_passes(self.groups, |g| {
                let own = &inputs[g as usize];
                if self.active.get(g as usize) == Some(&false) {
                    let s = own.size();
                    return Tensor::zeros([s[0], 1, s[2], s[3]], (own.kind(), own.device()));
                }
                self.net.forward_t(&own.contiguous(), train)
            });
            Tensor::cat(&outputs, 1)
        }))
    }
}

/// `xs` (`[N, C, H, W]`) with channels-last strides (NHWC in memory), the same values: the
/// convolutions, norms and activations that follow keep the layout, which the GPU's tensor
/// cores prefer.
pub fn channels_last(xs: &Tensor) -> Tensor {
    xs.permute([0, 2, 3, 1]).contiguous().permute([0, 3, 1, 2])
}

/// Sets a fused network's variables (`fused`, of [`Segmenter::fused`]) to its members' own:
/// each variable becomes the members' same-named tensors stacked along the first dimension,
/// member g as group g. Built from each trial's seeded network, a fused group starts exactly
/// where its trials would start alone.
pub fn fuse_weights(fused: &nn::VarStore, members: &[&nn::VarStore]) -> Result<(), ModelError> {
    let groups = members.len() as i64;
    let theirs: Vec<_> = members.iter().map(|m| m.variables()).collect();
    tch::no_grad(|| {
        for (name, mut variable) in fused.variables() {
            let parts: Option<Vec<Tensor>> =
                theirs.iter().map(|vars| vars.get(&name).map(|t| t.to_device(variable.device()))).collect();
            let Some(parts) = parts else {
                return Err(ModelError::Group { groups, what: format!("networks with a variable {name}") });
            };
            let stacked = Tensor::cat(&parts, 0);
            if stacked.size() != variable.size() {
                return Err(ModelError::Group {
                    groups,
                    what: format!("{name} of shape {:?} each, stacked {:?}", parts[0].size(), variable.size()),
                });
            }
            variable.copy_(&stacked);
        }
        Ok(())
    })
}

/// Member `member`'s own variables in a fused network of `groups`, by the single network's
/// names: its share of each variable's first dimension (views, not copies).
pub fn member_weights(fused: &nn::VarStore, groups: i64, member: i64) -> std::collections::HashMap<String, Tensor> {
    fused
        .variables()
        .into_iter()
        .map(|(name, t)| {
            let share = t.size()[0] / groups;
            (name, t.narrow(0, member * share, share))
        })
        .collect()
}

/// Serialises every draw of initial weights from libtorch's process-wide generator.
static INIT: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// A fused network of one trial per seed in `seeds`, each starting with exactly the weights
/// [`build_seeded`] gives it alone.
pub fn build_fused(
    device: tch::Device,
    config: ModelConfig,
    in_channels: i64,
    seeds: &[u64],
) -> Result<(nn::VarStore, Segmenter), ModelError> {
    let members =
        seeds.iter().map(|&seed| build_seeded(device, config, in_channels, seed)).collect::<Result<Vec<_>, _>>()?;
    let (vs, model) = {
        // Building draws initial weights too, overwritten below but drawn all the same.
        let _serialised = INIT.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let vs = nn::VarStore::new(device);
        let model = Segmenter::fused(&vs.root(), config, in_channels, seeds.len() as i64)?;
        (vs, model)
    };
    let members: Vec<&nn::VarStore> = members.iter().map(|(vs, _)| vs).collect();
    fuse_weights(&vs, &members)?;
    Ok((vs, model))
}

/// Builds a network whose initial weights depend on `seed` alone. libtorch draws them from
/// its process-wide generator, so construction is serialised: trials starting together on
/// one worker's threads each get exactly the weights their seed gives.
pub fn build_seeded(
    device: tch::Device,
    config: ModelConfig,
    in_channels: i64,
    seed: u64,
) -> Result<(nn::VarStore, Segmenter), ModelError> {
    let _serialised = INIT.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    tch::manual_seed(seed as i64);
    let vs = nn::VarStore::new(device);
    let model = Segmenter::new(&vs.root(), config, in_channels)?;
    Ok((vs, model))
}

/// Number of trainable parameters in a `VarStore` (batch-norm running statistics excluded,
/// as PyTorch's `parameters()` excludes buffers).
pub fn parameter_count(vs: &nn::VarStore) -> i64 {
    vs.trainable_variables().iter().map(|t| t.numel() as i64).sum()
}

#[cfg(test)]
mod tests;
