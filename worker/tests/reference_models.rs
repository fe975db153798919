//! Cross-check of the networks against the independent PyTorch reference
//! (`scripts/reference/models.py`): both fill every variable from the same formula, run one
//! training-mode pass (batch statistics, the same dropout masks) with a squared-error loss and
//! its backward, then an eval-mode pass; `scripts/reference/model_vectors.py` wrote what
//! PyTorch computed. Every output pixel, the loss, each parameter's gradient and each running
//! statistic must agree to 1e-9: the same function, not only the same parameter count. Both
//! sides compute in float64 (from float32 values): float32 convolutions round differently
//! from one CPU to another, by more than 1e-5 after FocusNet's thirty training-mode batch norms.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;
use tch::{nn, Device, Kind, Tensor};

use allsweep_worker::models::{Arch, ModelConfig, Segmenter};

#[derive(Deserialize)]
struct Vectors {
    arch: String,
    width: i64,
    in_channels: i64,
    input_shape: Vec<i64>,
    step_seed: u64,
    train: TrainPass,
    eval: EvalPass,
}

#[derive(Deserialize)]
struct TrainPass {
    output: Vec<f64>,
    loss: f64,
    /// Per parameter: sum, sum of absolute values, L2 norm of its gradient.
    grads: BTreeMap<String, [f64; 3]>,
    /// Per running statistic after the pass: sum, sum of absolute values.
    running: BTreeMap<String, [f64; 2]>,
}

#[derive(Deserialize)]
struct EvalPass {
    output: Vec<f64>,
}

const TOLERANCE: f64 = 1e-9;

fn vectors(name: &str) -> Vectors {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/vectors/models").join(format!("{name}.json"));
    let text = std::fs::read_to_string(&path).expect("the model vectors are committed");
    serde_json::from_str(&text).expect("the model vectors parse")
}

/// `model_vectors.py`'s `formula`: the value of every element of the variable `name`.
fn formula(name: &str, shape: &[i64]) -> Tensor {
    let n: i64 = shape.iter().product();
    let phase = f64::from(name.bytes().map(u32::from).sum::<u32>() % 97) / 10.0;
    let base = (Tensor::arange(n, (Kind::Double, Device::Cpu)) * 0.731 + phase).sin();
    let values = if name.ends_with("running_var") {
        base.abs() * 0.5 + 1.0
    } else if name.ends_with("running_mean") {
        base * 0.1
    } else if shape.len() == 1 && name.ends_with(".weight") {
        base * 0.2 + 1.0
    } else if shape.len() == 1 {
        base * 0.1
    } else {
        let fan_in = (shape[1] * shape[2..].iter().product::<i64>()) as f64;
        base * (6.0 / fan_in).sqrt()
    };
    values.reshape(shape).to_kind(Kind::Float)
}

fn pattern(shape: &[i64], scale: f64, shift: f64) -> Tensor {
    let n: i64 = shape.iter().product();
    ((Tensor::arange(n, (Kind::Double, Device::Cpu)) * scale + shift).sin()).reshape(shape)
}

fn close(actual: f64, expected: f64, scale: f64) -> bool {
    (actual - expected).abs() <= TOLERANCE * scale.max(1.0)
}

fn cross_check(name: &str) {
    let v = vectors(name);
    let arch = match v.arch.as_str() {
        "unet" => Arch::Unet,
        _ => Arch::Focusnet,
    };
    let mut vs = nn::VarStore::new(Device::Cpu);
    let model = Segmenter::new(&vs.root(), ModelConfig::new(arch, v.width), v.in_channels).expect("valid model");
    tch::no_grad(|| {
        for (var, mut tensor) in vs.variables() {
            tensor.copy_(&formula(&var, &tensor.size()));
        }
    });
    vs.double();
    let variables = vs.variables();
    assert_eq!(
        variables.keys().filter(|k| !k.contains("running_")).count(),
        v.train.grads.len(),
        "{name}: the same parameters on both sides"
    );
    let shape = &v.input_shape;
    let input = (pattern(shape, 0.1, 0.3) * 0.5 + 0.5).to_kind(Kind::Float).to_kind(Kind::Double);
    let target = pattern(&[shape[0], 1, shape[2], shape[3]], 0.05, 0.0).gt(0.0).to_kind(Kind::Double);

    model.set_step_seed(v.step_seed);
    let out = model.forward_t(&input, true).expect("input fits");
    let loss = (&out - &target).square().mean(Kind::Double);
    loss.backward();
    assert!(
        close(loss.double_value(&[]), v.train.loss, 1.0),
        "{name}: loss {} vs {}",
        loss.double_value(&[]),
        v.train.loss
    );
    compare_outputs(name, "training pass", &out, &v.train.output);

    for (var, expected) in &v.train.grads {
        let tensor = variables.get(var).unwrap_or_else(|| panic!("{name}: no variable {var}"));
        let g = tensor.grad().to_kind(Kind::Double);
        let actual = [g.sum(Kind::Double), g.abs().sum(Kind::Double), g.norm()].map(|t| t.double_value(&[]));
        assert!(
            close(actual[0], expected[0], expected[1])
                && close(actual[1], expected[1], expected[1])
                && close(actual[2], expected[2], expected[2]),
            "{name}: gradient of {var}: {actual:?}, PyTorch {expected:?}"
        );
    }
    for (var, expected) in &v.train.running {
        let t = variables.get(var).unwrap_or_else(|| panic!("{name}: no variable {var}")).to_kind(Kind::Double);
        let actual = [t.sum(Kind::Double), t.abs().sum(Kind::Double)].map(|t| t.double_value(&[]));
        assert!(
            close(actual[0], expected[0], expected[1]) && close(actual[1], expected[1], expected[1]),
            "{name}: {var} after the pass: {actual:?}, PyTorch {expected:?} (momentum)"
        );
    }
    let eval = tch::no_grad(|| model.forward_t(&input, false)).expect("input fits");
    compare_outputs(name, "eval pass", &eval, &v.eval.output);
}

fn compare_outputs(name: &str, pass: &str, out: &Tensor, expected: &[f64]) {
    let actual = Vec::<f64>::try_from(out.detach().to_kind(Kind::Double).flatten(0, -1)).expect("output reads");
    assert_eq!(actual.len(), expected.len(), "{name}: {pass} output size");
    let worst = actual.iter().zip(expected).map(|(a, e)| (a - e).abs()).fold(0.0, f64::max);
    assert!(worst <= TOLERANCE, "{name}: {pass}: largest difference from PyTorch {worst:e}");
}

#[test]
fn focusnet_computes_what_the_pytorch_reference_computes() {
    cross_check("focusnet_w8");
}

#[test]
fn unet_computes_what_the_pytorch_reference_computes() {
    cross_check("unet_w4");
}
