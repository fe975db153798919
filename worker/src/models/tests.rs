//! The networks take the paper's input sizes, refuse the others clearly, and can learn.

use tch::nn::OptimizerConfig;
use tch::{nn, Device, Kind, Tensor};

use super::*;
use crate::losses::{Loss, LossConfig, Reduction};

/// Every network here is built under `build_seeded`'s lock: one built beside it drawing from
/// libtorch's shared generator would change the seeded one's weights (and the fit tests').
fn build(arch: Arch, width: i64, channels: i64) -> (nn::VarStore, Segmenter) {
    build_seeded(Device::Cpu, ModelConfig::new(arch, width), channels, 0).expect("valid model")
}

#[test]
fn both_networks_map_the_papers_sizes_to_one_probability_map() {
    for arch in [Arch::Unet, Arch::Focusnet] {
        let (_vs, model) = build(arch, 32, 3);
        for (h, w) in [(48, 48), (128, 128), (192, 256)] {
            // Not from libtorch's shared generator, which the seeded builds beside this test use.
            let input = (Tensor::arange(3 * h * w, (Kind::Float, Device::Cpu)) * 0.37).sin().abs().view([1, 3, h, w]);
            let out = tch::no_grad(|| model.forward_t(&input, false)).expect("valid input");
            assert_eq!(out.size(), [1, 1, h, w], "{arch:?} at {h}x{w}");
            let (min, max) = (out.min().double_value(&[]), out.max().double_value(&[]));
            assert!((0.0..=1.0).contains(&min) && (0.0..=1.0).contains(&max), "{arch:?} outputs probabilities");
        }
    }
}

#[test]
fn parameter_counts_match_the_independent_pytorch_models() {
    // scripts/reference/models.py builds the same networks in PyTorch and prints these.
    let count = |arch, width, channels| models_count(arch, width, channels);
    assert_eq!(count(Arch::Unet, 32, 3), 8_548_389);
    assert_eq!(count(Arch::Focusnet, 32, 3), 19_063_933);
    assert_eq!(count(Arch::Unet, 8, 1), 535_869);
    assert_eq!(count(Arch::Focusnet, 8, 1), 1_195_952);
}

#[test]
fn the_memory_estimator_counts_the_parameters_of_the_built_networks_exactly() {
    for arch in [Arch::Unet, Arch::Focusnet] {
        for (width, channels) in [(8, 1), (16, 3), (24, 2), (32, 3), (40, 1)] {
            let estimated = allsweep_config::memory::parameter_count(&ModelConfig::new(arch, width), channels);
            assert_eq!(
                estimated as i64,
                models_count(arch, width, channels),
                "{arch:?} width {width}, {channels} channel(s)"
            );
        }
    }
}

/// The layer table of the authors' Keras FocusNet (`focusnet()` in TheFocusNetSeries'
/// `models.py`, 3 input channels), written down from its source: per Keras layer group
/// (the tensor a block produces), trainable parameters and batch-norm running statistics.
/// `Residual` blocks count both convolutions, their batch norms and the 1x1 shortcut.
const KERAS_FOCUSNET: [(&str, i64, i64); 44] = [
    ("conv1", 928, 64),     // initial_conv_block: Conv2D(32, 3, use_bias=False) + BN
    ("pool1", 19_680, 128), // is_first_layer=False: BN-ReLU first, stride 2, shortcut
    ("conv2", 57_664, 128),
    ("pool2", 78_272, 256),
    ("conv3", 230_016, 256),
    ("pool3", 312_192, 512),
    ("conv4", 918_784, 512),
    ("up5", 262_400, 0),
    ("conv5", 1_574_144, 512),
    ("up6", 131_200, 0),
    ("conv6", 393_856, 256),
    ("up7", 32_832, 0),
    ("conv7", 98_624, 128),
    ("conv1r", 9_600, 128), // _conv_bn_relu(64, 7x7)
    ("block1", 73_984, 128),
    ("se1", 512, 0),
    ("block1se", 512, 0),
    ("block1b", 78_272, 256),
    ("block2", 230_016, 256),
    ("se2", 2_048, 0),
    ("block2se", 2_048, 0),
    ("block2b", 312_192, 512),
    ("block3", 918_784, 512),
    ("se3", 8_192, 0),
    ("block3se", 8_192, 0),
    ("block3b", 1_246_976, 1_024),
    ("block4", 3_672_576, 1_024),
    ("block4se", 32_768, 0),
    ("block4b", 4_984_320, 2_048),
    ("up2_5", 524_544, 0),
    ("conv2_5", 1_901_824, 512),
    ("out1", 73_793, 0),
    ("up2_6", 131_200, 0),
    ("conv2_6", 475_776, 256),
    ("out2", 36_929, 0),
    ("up2_7", 32_832, 0),
    ("conv2_7", 119_104, 128),
    ("out3", 18_497, 0),
    ("up2_8", 8_224, 0),
    ("conv2_8", 40_096, 64),
    ("conv2_8b", 7_504, 32),
    ("conv2_8c", 804, 8),
    ("out4", 5, 0),
    ("out_concat", 1_217, 0),
];

#[test]
fn focusnet_has_the_keras_models_layer_table() {
    let (vs, _model) = build(Arch::Focusnet, 32, 3);
    let mut table: std::collections::BTreeMap<String, (i64, i64)> = Default::default();
    for (name, tensor) in vs.variables() {
        // A layer's batch norm is its own variable group here (`conv1_bn`); Keras lists it
        // with the layer.
        let layer = name.split('.').next().unwrap_or_default().trim_end_matches("_bn").to_string();
        let entry = table.entry(layer).or_default();
        if name.contains("running_") {
            entry.1 += tensor.numel() as i64;
        } else {
            entry.0 += tensor.numel() as i64;
        }
    }
    let keras: std::collections::BTreeMap<String, (i64, i64)> =
        KERAS_FOCUSNET.iter().map(|(name, trainable, stats)| (name.to_string(), (*trainable, *stats))).collect();
    assert_eq!(table, keras, "FocusNet's layers against the Keras model's");
    let trainable: i64 = KERAS_FOCUSNET.iter().map(|l| l.1).sum();
    let stats: i64 = KERAS_FOCUSNET.iter().map(|l| l.2).sum();
    assert_eq!((trainable, stats, trainable + stats), (19_063_933, 9_640, 19_073_573), "Keras's summary");
    assert_eq!(parameter_count(&vs), 19_063_933);
    let batch_norms = vs.variables().keys().filter(|k| k.ends_with("running_mean")).count();
    assert_eq!(batch_norms, 32, "32 batch norms, as the Keras model has");
}

#[test]
fn focusnet_regularises_the_kernels_the_keras_layers_do() {
    let (vs, model) = build(Arch::Focusnet, 32, 3);
    let kernels = |name: &str| vs.variables()[name].square().sum(Kind::Double).double_value(&[]);
    let residual_kernels: f64 = vs
        .variables()
        .iter()
        .filter(|(name, _)| {
            name.ends_with(".conv1.weight") || name.ends_with(".conv2.weight") || name.ends_with(".shortcut.weight")
        })
        .map(|(_, t)| t.square().sum(Kind::Double).double_value(&[]))
        .sum();
    let expected = 5e-4 * kernels("conv1.weight") + 1e-4 * (kernels("conv1r.weight") + residual_kernels);
    let penalty = model.l2_penalty(1.0).expect("FocusNet has regularisers").double_value(&[]);
    assert!((penalty - expected).abs() <= 1e-4 * expected, "penalty {penalty}, Keras's l2 terms {expected}");
    let half = model.l2_penalty(0.5).expect("scaled").double_value(&[]);
    assert!((half - penalty / 2.0).abs() <= 1e-4 * penalty);
    assert!(model.l2_penalty(0.0).is_none(), "l2_scale 0 adds nothing");
    let (_vs, unet) = build(Arch::Unet, 8, 3);
    assert!(unet.l2_penalty(1.0).is_none(), "the authors' unet() declares no regulariser");
}

#[test]
fn kernels_start_as_keras_he_normal_and_batch_norms_at_gamma_one() {
    let (vs, _model) = build_seeded(Device::Cpu, ModelConfig::new(Arch::Focusnet, 32), 3, 7).expect("model");
    let variables = vs.variables();
    // block4b.conv2: 512 x 512 x 3 x 3, fan_in 4608: sd sqrt(2 / 4608) = 0.02083, cut at 2 sd
    // of the untruncated normal (0.02083 / 0.8796 = 0.02368).
    let kernel = variables["block4b.conv2.weight"].to_kind(Kind::Double);
    let sd = kernel.std(true).double_value(&[]);
    assert!((sd - (2.0f64 / 4608.0).sqrt()).abs() < 2e-4, "he_normal sd {sd}");
    let bound = 2.0 * (2.0f64 / 4608.0).sqrt() / 0.879_625_661_034_239_8;
    assert!(kernel.abs().max().double_value(&[]) <= bound + 1e-7, "truncated at 2 sd");
    assert_eq!(variables["block4b.conv2.bias"].abs().max().double_value(&[]), 0.0, "zero biases");
    assert_eq!(variables["block4b.bn2.weight"].min().double_value(&[]), 1.0, "gamma starts at 1");
    assert_eq!(variables["block4b.bn2.weight"].max().double_value(&[]), 1.0, "gamma starts at 1");
    assert_eq!(variables["block4b.bn2.bias"].abs().max().double_value(&[]), 0.0, "beta starts at 0");
}

fn models_count(arch: Arch, width: i64, channels: i64) -> i64 {
    let (vs, _model) = build(arch, width, channels);
    parameter_count(&vs)
}

#[test]
fn unsupported_inputs_are_errors_not_panics() {
    let (_vs, model) = build(Arch::Focusnet, 8, 1);
    let run = |shape: &[i64]| {
        let input = Tensor::zeros(shape, (Kind::Float, Device::Cpu));
        tch::no_grad(|| model.forward_t(&input, false)).map(|_| ())
    };
    assert_eq!(run(&[1, 1, 50, 48]), Err(ModelError::Size { height: 50, width: 48 }));
    assert_eq!(run(&[1, 1, 40, 48]), Err(ModelError::Size { height: 40, width: 48 }));
    assert_eq!(run(&[1, 3, 48, 48]), Err(ModelError::ChannelMismatch { expected: 1, found: 3 }));
    assert_eq!(run(&[1, 48, 48]), Err(ModelError::Rank(vec![1, 48, 48])));
    let vs = nn::VarStore::new(Device::Cpu);
    let err = Segmenter::new(&vs.root(), ModelConfig::new(Arch::Unet, 8), 4).expect_err("4 channels");
    assert_eq!(err, ModelError::Channels(4));
}

/// Round blobs on a dark background: a target a network can fit exactly.
fn blob_batch(n: i64, side: i64) -> (Tensor, Tensor) {
    let coords = Tensor::arange(side, (Kind::Float, Device::Cpu));
    let (ys, xs) = (coords.view([side, 1]), coords.view([1, side]));
    let targets: Vec<Tensor> = (0..n)
        .map(|i| {
            let (cy, cx, r) = (8.0 + 4.0 * i as f64, 20.0 - 3.0 * i as f64, 5.0 + i as f64);
            let d2 = (&ys - cy).square() + (&xs - cx).square();
            d2.le(r * r).to_kind(Kind::Float).view([1, 1, side, side])
        })
        .collect();
    let target = Tensor::cat(&targets, 0);
    // Fixed noise: libtorch's shared generator is drawn from by the tests beside this one.
    let noise =
        (Tensor::arange(n * side * side, (Kind::Float, Device::Cpu)) * 12.9898).sin().abs().view([n, 1, side, side])
            * 0.2;
    (&target * 0.6 + noise + 0.1, target)
}

/// Eval-mode Dice loss on a fixed batch before and after 300 Adam steps on it.
fn train_until_fit(arch: Arch) -> (f64, f64) {
    // Seeded initial weights, drawn under the lock that keeps other tests' draws out.
    let (vs, model) = build_seeded(Device::Cpu, ModelConfig::new(arch, 8), 1, 0).expect("valid model");
    let (input, target) = blob_batch(4, 32);
    let loss = Loss::new(LossConfig::Dice { smooth: 1.0, reduction: Reduction::Batch });
    // Judged as a user would use the model: eval mode (no dropout, running BN statistics).
    let judge = || {
        let pred = tch::no_grad(|| model.forward_t(&input, false)).expect("fits");
        loss.compute_checked_shapes(&pred, &target).expect("loss").double_value(&[])
    };
    let before = judge();
    let mut adam = nn::Adam::default().build(&vs, 3e-3).expect("optimizer");
    for _ in 0..300 {
        let value = loss.compute_checked_shapes(&model.forward_t(&input, true).expect("fits"), &target).expect("loss");
        adam.backward_step(&value);
    }
    (before, judge())
}

#[test]
fn unet_fits_a_fixed_batch() {
    // The authors' head squeezes the last 32 channels through 2 ReLU channels: at width 8 it
    // fits this batch more slowly than FocusNet (0.79 to 0.21 here; 0.05 before the head).
    let (before, after) = train_until_fit(Arch::Unet);
    assert!(after < 0.25 && after < before / 3.0, "U-Net Dice loss {before} before, {after} after 300 Adam steps");
}

#[test]
fn focusnet_fits_a_fixed_batch() {
    let (before, after) = train_until_fit(Arch::Focusnet);
    // 0.81 to 0.04-0.06 here, as the CPU's kernels round (0.0593 on one machine, under 0.05 on another).
    assert!(after < 0.1 && after < before / 8.0, "FocusNet Dice loss {before} before, {after} after 300 Adam steps");
}

/// bf16 convolutions: the same network computes nearly what it does in float32 (bfloat16
/// keeps 8 bits of mantissa), its output stays float32 probabilities, and the gradients
/// reach the float32 weights through the casts.
#[test]
fn bf16_convolutions_track_float32_and_train_float32_weights() {
    for arch in [Arch::Unet, Arch::Focusnet] {
        let (vs, mut model) = build(arch, 8, 3);
        let input =
            (Tensor::arange(2 * 3 * 32 * 32, (Kind::Float, Device::Cpu)) * 0.37).sin().abs().view([2, 3, 32, 32]);
        let fp32 = tch::no_grad(|| model.forward_t(&input, false)).expect("fp32");
        model.set_precision(Precision::Bf16);
        let bf16 = model.forward_t(&input, false).expect("bf16");
        assert_eq!(bf16.kind(), Kind::Float, "{arch:?}: probabilities come back as float32");
        let gap = (&bf16 - &fp32).abs().max().double_value(&[]);
        assert!(gap > 0.0, "{arch:?}: the convolutions did run in bfloat16");
        assert!(gap < 0.05, "{arch:?}: bf16 and fp32 outputs differ by {gap}");
        bf16.mean(Kind::Float).backward();
        for (name, var) in vs.trainable_variables().iter().enumerate() {
            assert_eq!(var.kind(), Kind::Float, "{arch:?}: master weight {name} stays float32");
        }
        let with_grad = vs.trainable_variables().iter().filter(|v| v.grad().defined()).count();
        assert_eq!(with_grad, vs.trainable_variables().len(), "{arch:?}: every weight gets a gradient");
        model.set_precision(Precision::Fp32);
        let back = tch::no_grad(|| model.forward_t(&input, false)).expect("fp32 again");
        assert_eq!(back, fp32, "{arch:?}: fp32 again computes exactly as before");
    }
}

#[test]
fn a_channels_last_input_gives_the_same_output() {
    let (_vs, model) = build(Arch::Unet, 8, 3);
    let input = (Tensor::arange(2 * 3 * 32 * 32, (Kind::Float, Device::Cpu)) * 0.11).sin().view([2, 3, 32, 32]);
    let nhwc = channels_last(&input);
    assert_eq!(nhwc.stride(), [3 * 32 * 32, 1, 32 * 3, 3], "NHWC in memory");
    assert!(nhwc.equal(&input), "the same values");
    let a = tch::no_grad(|| model.forward_t(&input, false)).expect("valid");
    let b = tch::no_grad(|| model.forward_t(&nhwc, false)).expect("valid");
    let worst = (&a - &b).abs().max().double_value(&[]);
    assert!(worst < 1e-5, "outputs differ by {worst}");
}

/// Three networks with their own seeds, and the same three fused into one network, all in
/// float64: there the grouped convolutions' other summation order costs ~1e-15, and what is
/// compared is the fusion's arithmetic, not float32's rounding.
fn three_alone_and_fused(
    arch: Arch,
    batch_norm: allsweep_config::model::BatchNormStyle,
) -> (Vec<(nn::VarStore, Segmenter)>, nn::VarStore, Segmenter) {
    let config = ModelConfig { batch_norm, ..ModelConfig::new(arch, 8) };
    let seeds = [11, 22, 33];
    let alone: Vec<_> = seeds
        .iter()
        .map(|&seed| {
            let (mut vs, model) = build_seeded(Device::Cpu, config, 3, seed).expect("valid");
            vs.double();
            (vs, model)
        })
        .collect();
    let (mut fused_vs, fused) = build_fused(Device::Cpu, config, 3, &seeds).expect("both networks fuse");
    fused_vs.double();
    (alone, fused_vs, fused)
}

#[test]
fn a_fused_unet_computes_what_each_trial_computes_alone() {
    fused_group_computes_what_each_trial_computes_alone(Arch::Unet);
}

#[test]
fn a_fused_focusnet_computes_what_each_trial_computes_alone() {
    fused_group_computes_what_each_trial_computes_alone(Arch::Focusnet);
}

/// Outputs, gradients and batch-norm statistics of every trial in a fused group of three
/// against the trial alone, in training and in evaluation mode, in both layouts.
fn fused_group_computes_what_each_trial_computes_alone(arch: Arch) {
    for layout in [FusedLayout::Kernels, FusedLayout::MemberPasses] {
        println!("{layout:?}");
        fused_layout_computes_what_each_trial_computes_alone(arch, layout);
    }
}

fn fused_layout_computes_what_each_trial_computes_alone(arch: Arch, layout: FusedLayout) {
    let (alone, fused_vs, mut fused) = three_alone_and_fused(arch, allsweep_config::model::BatchNormStyle::Pytorch);
    fused.set_layout(layout);
    let inputs: Vec<Tensor> = (0..3)
        .map(|g| {
            ((Tensor::arange(4 * 3 * 32 * 32, (Kind::Double, Device::Cpu)) * (0.13 + 0.05 * g as f64)).sin().abs())
                .view([4, 3, 32, 32])
        })
        .collect();
    let targets: Vec<Tensor> = inputs.iter().map(|x| x.narrow(1, 0, 1).gt(0.5).to_kind(Kind::Double)).collect();
    let seeds = [7_u64, 8, 9];
    fused.set_step_seeds(&seeds).expect("three seeds");
    let loss = Loss::new(LossConfig::Dice { smooth: 1.0, reduction: Reduction::Batch });

    // Training mode: dropout masks from each trial's seed, batch statistics per trial.
    let out = fused.forward_t(&Tensor::cat(&inputs, 1), true).expect("nine channels");
    assert_eq!(out.size(), [4, 3, 32, 32]);
    let fused_loss: Tensor = (0..3).map(|g| loss.compute(&out.narrow(1, g, 1), &targets[g as usize]).unwrap()).sum();
    fused_loss.backward();
    for (g, (vs, model)) in alone.iter().enumerate() {
        model.set_step_seed(seeds[g]);
        let own = model.forward_t(&inputs[g], true).expect("valid");
        let worst = (&own - out.narrow(1, g as i64, 1)).abs().max().double_value(&[]);
        assert!(worst < 1e-12, "trial {g}: outputs differ by {worst}");
        loss.compute(&own, &targets[g]).unwrap().backward();
        let share = member_weights(&fused_vs, 3, g as i64);
        for (name, theirs) in vs.variables() {
            let ours = &share[&name];
            let worst = (ours - &theirs).abs().max().double_value(&[]);
            assert!(worst < 1e-12, "trial {g} {name}: running statistics or weights differ by {worst}");
            if theirs.requires_grad() {
                let fused_grad = fused_vs.variables()[&name].grad();
                let share = fused_grad.size()[0] / 3;
                let ours_grad = fused_grad.narrow(0, g as i64 * share, share);
                // Against a floor of 1e-6: float64's rounding of the larger gradients upstream
                // reaches a bias whose gradient is near zero (FocusNet: 3e-18 on one of 1e-12).
                let scale = theirs.grad().abs().max().double_value(&[]).max(1e-6);
                let worst = (ours_grad - theirs.grad()).abs().max().double_value(&[]);
                assert!(worst / scale < 1e-9, "trial {g} {name}: gradients differ by {worst} (of {scale})");
            }
        }
    }
    // Evaluation mode too.
    let out = tch::no_grad(|| fused.forward_t(&Tensor::cat(&inputs, 1), false)).expect("valid");
    for (g, (_, model)) in alone.iter().enumerate() {
        let own = tch::no_grad(|| model.forward_t(&inputs[g], false)).expect("valid");
        let worst = (&own - out.narrow(1, g as i64, 1)).abs().max().double_value(&[]);
        assert!(worst < 1e-12, "trial {g} in eval mode: outputs differ by {worst}");
    }
}

#[test]
fn a_fused_group_is_refused_what_it_cannot_take() {
    let (_, _, fused) = three_alone_and_fused(Arch::Unet, allsweep_config::model::BatchNormStyle::Keras);
    assert!(fused.set_step_seeds(&[1, 2]).unwrap_err().to_string().contains("3 of each: 2 step seeds given"));
    let one_trial_input = Tensor::zeros([1, 3, 32, 32], (Kind::Float, Device::Cpu));
    assert_eq!(
        fused.forward_t(&one_trial_input, true).unwrap_err(),
        ModelError::ChannelMismatch { expected: 9, found: 3 }
    );
    let none = build_fused(Device::Cpu, ModelConfig::new(Arch::Focusnet, 8), 3, &[]);
    assert!(none.map(|_| ()).unwrap_err().to_string().contains("at least one trial"));
}

/// In member passes a trial that left its group is not computed: its output channel is
/// zeros, and the others' outputs are what they are with it.
#[test]
fn a_member_that_left_is_skipped_in_member_passes() {
    let (_, _, mut fused) = three_alone_and_fused(Arch::Unet, allsweep_config::model::BatchNormStyle::Keras);
    fused.set_layout(FusedLayout::MemberPasses);
    let input = (Tensor::arange(2 * 9 * 32 * 32, (Kind::Double, Device::Cpu)) * 0.17).sin().view([2, 9, 32, 32]);
    let all = tch::no_grad(|| fused.forward_t(&input, false)).expect("valid");
    fused.set_active_members(&[true, false, true]).expect("three flags");
    let two = tch::no_grad(|| fused.forward_t(&input, false)).expect("valid");
    assert!(two.narrow(1, 1, 1).eq(0.0).all().int64_value(&[]) == 1, "the member that left gives zeros");
    assert!(all.narrow(1, 1, 1).ne(0.0).any().int64_value(&[]) == 1, "it computed before");
    for g in [0, 2] {
        assert!(two.narrow(1, g, 1).equal(&all.narrow(1, g, 1)), "member {g} unchanged");
    }
    assert!(fused.set_active_members(&[true]).unwrap_err().to_string().contains("3 of each: 1 member flags given"));
}

/// Horizontal fusion's promise, on the CPU: three trials of different seeds, losses and
/// learning rates, trained as one fused network for a few Adam steps, end with each
/// trial's own weights as if trained alone (in float64, as above: in float32 the grouped
/// kernels' rounding, ~1e-6 of a gradient, can flip the sign of Adam's first update of a
/// weight whose gradient is near zero, a difference of one learning rate).
#[test]
fn fused_unets_train_to_the_weights_each_reaches_alone() {
    fused_trials_train_to_the_weights_each_reaches_alone(Arch::Unet);
}

#[test]
fn fused_focusnets_train_to_the_weights_each_reaches_alone() {
    fused_trials_train_to_the_weights_each_reaches_alone(Arch::Focusnet);
}

fn fused_trials_train_to_the_weights_each_reaches_alone(arch: Arch) {
    for layout in [FusedLayout::Kernels, FusedLayout::MemberPasses] {
        fused_layout_trains_to_the_weights_each_reaches_alone(arch, layout);
    }
}

fn fused_layout_trains_to_the_weights_each_reaches_alone(arch: Arch, layout: FusedLayout) {
    use crate::train::adam::Adam;
    let config =
        ModelConfig { batch_norm: allsweep_config::model::BatchNormStyle::Pytorch, ..ModelConfig::new(arch, 8) };
    let seeds = [5_u64, 6, 7];
    let lrs = [1e-3, 3e-4, 3e-3];
    let loss_of = |text: &str| {
        let table: toml::Table = text.parse().expect("TOML");
        Loss::new(LossConfig::from_table(&table, "loss").expect("a loss"))
    };
    let losses = [
        loss_of("kind = \"dice\""),
        loss_of("kind = \"all\"\nbase = \"dice\"\nomega = 6.0\nepsilon = 0.5"),
        loss_of("kind = \"focal_tversky\""),
    ];
    let batch = |g: usize, step: i64| {
        let x = ((Tensor::arange(4 * 3 * 32 * 32, (Kind::Double, Device::Cpu))
            * (0.07 * (g as f64 + 1.0) + 0.01 * step as f64))
            .sin()
            .abs())
        .view([4, 3, 32, 32]);
        let y = x.narrow(1, 1, 1).gt(0.6).to_kind(Kind::Double);
        (x, y)
    };
    let steps = 3;

    let mut alone_weights = Vec::new();
    for (g, &seed) in seeds.iter().enumerate() {
        let (mut vs, model) = build_seeded(Device::Cpu, config, 3, seed).expect("valid");
        vs.double();
        let mut adam = Adam::new(&vs, lrs[g]);
        for step in 0..steps {
            let (x, y) = batch(g, step);
            model.set_step_seed(1000 * seed + step as u64);
            let value = losses[g].compute(&model.forward_t(&x, true).expect("valid"), &y).expect("valid");
            adam.zero_grad();
            value.backward();
            adam.step();
        }
        alone_weights.push(vs);
    }

    let (mut vs, mut fused) = build_fused(Device::Cpu, config, 3, &seeds).expect("both networks fuse");
    vs.double();
    fused.set_layout(layout);
    let mut adam = Adam::new(&vs, 0.0);
    adam.set_group_lrs(&lrs);
    for step in 0..steps {
        let (inputs, targets): (Vec<Tensor>, Vec<Tensor>) = (0..3).map(|g| batch(g, step)).unzip();
        let step_seeds: Vec<u64> = seeds.iter().map(|s| 1000 * s + step as u64).collect();
        fused.set_step_seeds(&step_seeds).expect("three");
        let out = fused.forward_t(&Tensor::cat(&inputs, 1), true).expect("valid");
        let total: Tensor = (0..3)
            .map(|g| losses[g].compute(&out.narrow(1, g as i64, 1).contiguous(), &targets[g]).expect("valid"))
            .sum();
        adam.zero_grad();
        total.backward();
        adam.step();
    }
    for (g, alone) in alone_weights.iter().enumerate() {
        let share = member_weights(&vs, 3, g as i64);
        let mut worst = 0.0_f64;
        for (name, theirs) in alone.variables() {
            let scale = theirs.abs().max().double_value(&[]).max(1e-3);
            let d = (&share[&name] - &theirs).abs().max().double_value(&[]) / scale;
            worst = worst.max(d);
        }
        // Member passes make the trial's own calls: equal. Grouped kernels sum in another
        // order, and Adam's step is about the learning rate for a near-zero gradient whatever
        // its size, so float64's rounding of one moves the weight (measured: U-Net 0,
        // FocusNet up to 1.8e-8 of the weight's size).
        let bound = match layout {
            FusedLayout::MemberPasses => 0.0,
            FusedLayout::Kernels => 1e-7,
        };
        println!("{arch:?} {layout:?} trial {g}: weights differ from training alone by {worst:e} (relative)");
        assert!(worst <= bound, "{layout:?} trial {g}: weights differ from training alone by {worst:e} (relative)");
    }
}
