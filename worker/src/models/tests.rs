//! The networks take the paper's input sizes, refuse the others clearly, and can learn.

use tch::nn::OptimizerConfig;
use tch::{nn, Device, Kind, Tensor};

use super::*;
use crate::losses::{Loss, LossConfig, Reduction};

fn build(arch: Arch, width: i64, channels: i64) -> (nn::VarStore, Segmenter) {
    let vs = nn::VarStore::new(Device::Cpu);
    let model = Segmenter::new(&vs.root(), ModelConfig { arch, width }, channels).expect("valid model");
    (vs, model)
}

#[test]
fn both_networks_map_the_papers_sizes_to_one_probability_map() {
    for arch in [Arch::Unet, Arch::Focusnet] {
        let (_vs, model) = build(arch, 32, 3);
        for (h, w) in [(48, 48), (128, 128), (192, 256)] {
            let input = Tensor::rand([1, 3, h, w], (Kind::Float, Device::Cpu));
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
    assert_eq!(count(Arch::Unet, 32, 3), 8_547_841);
    assert_eq!(count(Arch::Focusnet, 32, 3), 19_068_669);
    assert_eq!(count(Arch::Unet, 8, 1), 535_729);
    assert_eq!(count(Arch::Focusnet, 8, 1), 1_197_136);
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
    let err = Segmenter::new(&vs.root(), ModelConfig { arch: Arch::Unet, width: 8 }, 4).expect_err("4 channels");
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

fn train_until_fit(arch: Arch) -> f64 {
    // Seeded initial weights, drawn under the lock that keeps other tests' draws out.
    let (vs, model) = build_seeded(Device::Cpu, ModelConfig { arch, width: 8 }, 1, 0).expect("valid model");
    let (input, target) = blob_batch(4, 32);
    let loss = Loss::new(LossConfig::Dice { smooth: 1.0, reduction: Reduction::Batch });
    let mut adam = nn::Adam::default().build(&vs, 3e-3).expect("optimizer");
    for _ in 0..300 {
        let value = loss.compute_checked_shapes(&model.forward_t(&input, true).expect("fits"), &target).expect("loss");
        adam.backward_step(&value);
    }
    // Judged as a user would use the model: eval mode (no dropout, running BN statistics).
    let pred = tch::no_grad(|| model.forward_t(&input, false)).expect("fits");
    loss.compute_checked_shapes(&pred, &target).expect("loss").double_value(&[])
}

#[test]
fn unet_fits_a_fixed_batch() {
    let last = train_until_fit(Arch::Unet);
    assert!(last < 0.05, "U-Net Dice loss after 300 Adam steps: {last}");
}

#[test]
fn focusnet_fits_a_fixed_batch() {
    let last = train_until_fit(Arch::Focusnet);
    assert!(last < 0.05, "FocusNet Dice loss after 300 Adam steps: {last}");
}
