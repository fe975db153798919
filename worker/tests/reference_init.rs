//! Cross-check of how the networks *start* against the independent PyTorch reference
//! (`scripts/reference/models.py`). `reference_models.rs` loads the same weights into both
//! sides before it compares, so it cannot see an initialisation difference: libtorch's
//! default batch-norm gamma (uniform in [0, 1), not Keras's 1), a `he_normal` with the wrong
//! scale or without its truncation, a non-zero bias. The two sides draw from different
//! generators, so the values cannot match; their statistics can.
//! `scripts/reference/init_stats.py` wrote, per network and seed, every reference parameter
//! and batch-norm buffer under its Rust name: shape, count, mean, population standard
//! deviation, min, max and the initialiser that drew it. Here each network is built from the
//! same seed with `build_seeded`, and every variable of its VarStore must be in the vectors
//! (and every vector's tensor in the VarStore), with the same shape; constants must be exactly
//! their value; random tensors must agree with PyTorch's statistically, and both sides must
//! agree with the distribution their shape implies, so a mistake made on both sides fails too.
//! `the_checks_catch_wrong_initialisers` shows that these tolerances see real mistakes.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use serde::Deserialize;
use tch::{Device, Kind, Tensor};

use allsweep_worker::models::{build_seeded, Arch, ModelConfig};

#[derive(Deserialize)]
struct Case {
    arch: String,
    width: i64,
    in_channels: i64,
    seed: u64,
    tensors: BTreeMap<String, Stats>,
}

/// What PyTorch measured on one tensor (statistics in float64 of its float32 values).
#[derive(Deserialize)]
struct Stats {
    shape: Vec<i64>,
    count: i64,
    #[serde(flatten)]
    measured: Measured,
    init: Family,
    /// A batch-norm running statistic: in the VarStore, but not trained.
    buffer: bool,
}

#[derive(Deserialize, Debug, Clone, Copy)]
struct Measured {
    mean: f64,
    /// Population standard deviation.
    std: f64,
    min: f64,
    max: f64,
}

/// The initialiser that drew a tensor in the reference.
#[derive(Deserialize, Debug, Clone, Copy, PartialEq)]
#[serde(rename_all = "snake_case")]
enum Family {
    Zeros,
    Ones,
    /// A normal truncated at 2 sd, scaled to variance 2 / fan_in.
    HeNormalTruncated,
    /// Uniform in +-sqrt(6 / (fan_in + fan_out)).
    GlorotUniform,
}

/// The standard deviation of a standard normal truncated at +-2.
const TRUNCATED_STD: f64 = 0.879_625_661_034_239_8;
/// Statistical bounds are this many standard errors wide: a correct initialiser fails one
/// with probability about 2e-9 per check.
const SIGMAS: f64 = 6.0;
/// Float32 rounding of values drawn in float64 at the bound.
const BOUND_SLACK: f64 = 1e-6;
/// Extremes must reach this share of the bound when a correct draw could miss it only with
/// probability under 1e-9 (a uniform with he_normal's variance stops at 1.73 sd, not 2.27).
const TAIL: f64 = 0.9;

impl Family {
    fn constant(self) -> Option<f64> {
        match self {
            Family::Zeros => Some(0.0),
            Family::Ones => Some(1.0),
            Family::HeNormalTruncated | Family::GlorotUniform => None,
        }
    }

    /// (standard deviation, bound on |x|, share of the values beyond `TAIL` of the bound) of
    /// the distribution a random family draws a kernel of `shape` (`[out, in, kh, kw]` or
    /// `[out, in]`) from, computed from the shape alone.
    fn distribution(self, shape: &[i64]) -> (f64, f64, f64) {
        let receptive: i64 = shape[2..].iter().product();
        let (fan_in, fan_out) = ((shape[1] * receptive) as f64, (shape[0] * receptive) as f64);
        match self {
            Family::GlorotUniform => {
                let limit = (6.0 / (fan_in + fan_out)).sqrt();
                (limit / 3f64.sqrt(), limit, 1.0 - TAIL)
            }
            // 2 (Phi(2) - Phi(1.8)) / (2 Phi(2) - 1) of a normal truncated at 2 sd lies
            // between 1.8 and 2 sd.
            _ => {
                let sd = (2.0 / fan_in).sqrt();
                (sd, 2.0 * sd / TRUNCATED_STD, 0.027_616_952_978_005_933)
            }
        }
    }
}

fn cases() -> BTreeMap<String, Case> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/vectors/models/init_stats.json");
    let text = std::fs::read_to_string(&path).expect("the initialisation statistics are committed");
    serde_json::from_str(&text).expect("the initialisation statistics parse")
}

fn measure(tensor: &Tensor) -> Measured {
    let t = tensor.detach().to_kind(Kind::Double);
    Measured {
        mean: t.mean(Kind::Double).double_value(&[]),
        std: t.std(false).double_value(&[]),
        min: t.min().double_value(&[]),
        max: t.max().double_value(&[]),
    }
}

/// Every way `actual` (the Rust tensor `name` of `network`) does not start as the reference's
/// `expected` does; empty when it does. Each message names the network and the tensor.
fn check(network: &str, name: &str, expected: &Stats, actual: &Tensor) -> Vec<String> {
    let family = expected.init;
    let mut failures = Vec::new();
    let mut fail = |what: String| failures.push(format!("{network}: {name} ({family:?}): {what}"));
    if actual.size() != expected.shape {
        fail(format!("shape {:?} in Rust, {:?} in PyTorch", actual.size(), expected.shape));
        return failures;
    }
    let n = expected.count;
    if n != expected.shape.iter().product::<i64>() {
        fail(format!("the vectors count {n} values in a {:?}", expected.shape));
        return failures;
    }
    let rust = measure(actual);
    let python = expected.measured;
    if let Some(value) = family.constant() {
        if python.min != value || python.max != value {
            fail(format!("PyTorch's values span [{}, {}], not exactly {value}", python.min, python.max));
        }
        if rust.min != value || rust.max != value {
            fail(format!("Rust's values span [{}, {}], not exactly {value}", rust.min, rust.max));
        }
        return failures;
    }
    let nf = n as f64;
    let (sd, bound, tail_share) = family.distribution(&expected.shape);
    // Each side against the distribution the shape implies. The relative standard error of a
    // sample standard deviation is sqrt((kurtosis - 1) / 4n), at most 1/sqrt(2n) (normal's);
    // the truncated normal and the uniform have less.
    let mean_tolerance = SIGMAS * sd / nf.sqrt() + 1e-7;
    let std_tolerance = SIGMAS / (2.0 * nf).sqrt() + 1e-3;
    let tail_sure = (1.0 - tail_share).powf(nf) < 1e-9;
    for (side, m) in [("Rust", rust), ("PyTorch", python)] {
        let extreme = m.max.max(-m.min);
        if extreme > bound * (1.0 + BOUND_SLACK) {
            fail(format!("{side}'s values span [{}, {}], beyond the bound +-{bound}", m.min, m.max));
        }
        if tail_sure && extreme < TAIL * bound {
            fail(format!("{side}'s values span [{}, {}]: {n} draws all short of {TAIL} x {bound}", m.min, m.max));
        }
        if m.mean.abs() > mean_tolerance {
            fail(format!("{side}'s mean {} is not 0 (+-{mean_tolerance}, sd {sd}, n {n})", m.mean));
        }
        if (m.std / sd - 1.0).abs() > std_tolerance {
            fail(format!("{side}'s std {} vs {sd} from the shape: ratio {} (1 +-{std_tolerance})", m.std, m.std / sd));
        }
    }
    // Rust against PyTorch: two independent estimates, so sqrt(2) times the errors.
    let mean_tolerance = SIGMAS * 2f64.sqrt() * sd / nf.sqrt() + 1e-7;
    let std_tolerance = (SIGMAS / nf.sqrt() + 1e-3) * sd;
    if (rust.mean - python.mean).abs() > mean_tolerance {
        fail(format!("mean {} in Rust, {} in PyTorch (+-{mean_tolerance})", rust.mean, python.mean));
    }
    if (rust.std - python.std).abs() > std_tolerance {
        fail(format!("std {} in Rust, {} in PyTorch (+-{std_tolerance})", rust.std, python.std));
    }
    failures
}

fn build(network: &str, case: &Case) -> tch::nn::VarStore {
    let arch = match case.arch.as_str() {
        "unet" => Arch::Unet,
        "focusnet" => Arch::Focusnet,
        other => panic!("{network}: unknown arch {other}"),
    };
    let config = ModelConfig::new(arch, case.width);
    let (vs, _model) = build_seeded(Device::Cpu, config, case.in_channels, case.seed).expect("valid model");
    vs
}

fn cross_check(network: &str) {
    let cases = cases();
    let case = cases.get(network).unwrap_or_else(|| panic!("{network}: not in init_stats.json"));
    let vs = build(network, case);
    let variables = vs.variables();
    let rust: BTreeSet<&str> = variables.keys().map(String::as_str).collect();
    let python: BTreeSet<&str> = case.tensors.keys().map(String::as_str).collect();
    let missing: Vec<_> = python.difference(&rust).collect();
    let extra: Vec<_> = rust.difference(&python).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "{network}: in PyTorch but not in Rust: {missing:?}; in Rust but not in PyTorch: {extra:?}"
    );
    let mut failures = Vec::new();
    for (name, expected) in &case.tensors {
        let tensor = &variables[name];
        if tensor.requires_grad() == expected.buffer {
            let (rust, python) = if expected.buffer { ("trained", "a buffer") } else { ("a buffer", "trained") };
            failures.push(format!("{network}: {name}: {rust} in Rust, {python} in PyTorch"));
        }
        failures.extend(check(network, name, expected, tensor));
    }
    assert!(
        failures.is_empty(),
        "{network}: {} failure(s) over {} tensors:\n{}",
        failures.len(),
        case.tensors.len(),
        failures.join("\n")
    );
}

#[test]
fn unet_starts_as_the_pytorch_reference_starts() {
    cross_check("unet_w4");
}

#[test]
fn focusnet_starts_as_the_pytorch_reference_starts() {
    cross_check("focusnet_w8");
}

#[test]
fn unet_at_the_papers_width_starts_as_the_pytorch_reference_starts() {
    cross_check("unet_w32");
}

#[test]
fn focusnet_at_the_papers_width_starts_as_the_pytorch_reference_starts() {
    cross_check("focusnet_w32");
}

/// Numbers in (0, 1) from splitmix64: not from libtorch's generator, which only
/// `build_seeded` may draw from while other tests build networks beside this one.
fn uniform(shape: &[i64], seed: u64) -> Tensor {
    let mut state = seed;
    let values: Vec<f64> = (0..shape.iter().product::<i64>())
        .map(|_| {
            state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = state;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^= z >> 31;
            ((z >> 11) as f64 + 0.5) / (1_u64 << 53) as f64
        })
        .collect();
    Tensor::from_slice(&values).reshape(shape)
}

fn standard_normal(shape: &[i64], seed: u64) -> Tensor {
    (uniform(shape, seed) * 2.0 - 1.0).erfinv() * std::f64::consts::SQRT_2
}

/// The mistakes this test exists for, each made in one tensor of U-Net (width 4) after a
/// correct build: every one must fail `check`, naming the network and the tensor.
#[test]
fn the_checks_catch_wrong_initialisers() {
    let network = "unet_w4";
    let cases = cases();
    let case = &cases[network];
    let variables = build(network, case).variables();
    // 64 x 64 x 3 x 3: fan_in 576, 36,864 values.
    let kernel = "bottom.conv2.conv.weight";
    let gamma = "bottom.conv2.bn.weight";
    let bias = "head_conv.bias";
    let running_var = "up0.up_bn.running_var";
    let drawn = &variables[kernel];
    let (size, sd) = (drawn.size(), (2.0f64 / 576.0).sqrt());
    let mutants = [
        ("gamma uniform in [0, 1) (libtorch's default)", gamma, uniform(&variables[gamma].size(), 1)),
        ("he_normal not truncated", kernel, standard_normal(&size, 2) * sd),
        ("he_normal not truncated, scaled as if it were", kernel, standard_normal(&size, 3) * (sd / TRUNCATED_STD)),
        ("he_normal at variance 1 / fan_in", kernel, drawn * 0.5f64.sqrt()),
        ("he_normal truncated without rescaling", kernel, drawn * TRUNCATED_STD),
        ("he_normal's variance drawn uniformly", kernel, (uniform(&size, 4) * 2.0 - 1.0) * (3f64.sqrt() * sd)),
        ("libtorch's default kernel (Kaiming uniform, a = sqrt(5))", kernel, (uniform(&size, 5) * 2.0 - 1.0) / 24.0),
        ("a kernel off-centre by 0.1 sd", kernel, drawn + 0.1 * sd),
        ("a bias of 1e-6", bias, variables[bias].ones_like() * 1e-6),
        ("a running variance of 0", running_var, variables[running_var].zeros_like()),
    ];
    for (mistake, name, values) in mutants {
        let expected = &case.tensors[name];
        let correct = check(network, name, expected, &variables[name]);
        assert!(correct.is_empty(), "the correct {name} fails: {correct:?}");
        let failures = check(network, name, expected, &values);
        assert!(!failures.is_empty(), "{mistake}: {name} passes the checks");
        let prefix = format!("{network}: {name} (");
        assert!(failures.iter().all(|f| f.starts_with(&prefix)), "{mistake}: {failures:?}");
    }
}
