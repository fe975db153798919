//! Cross-check against an independent implementation: every loss, its gradient and every
//! metric on the test vectors that `scripts/reference/make_vectors.py` computed with PyTorch
//! (AUC also with scikit-learn), and the authors' Keras-style metrics that it computed with
//! NumPy on the same batches. Losses and gradients agree to 1e-5 relative, AUC to 1e-4, the
//! Keras-style metrics to 1e-6.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use tch::{Kind, Tensor};

use allsweep_worker::losses::{Loss, LossConfig};
use allsweep_worker::metrics::MetricsAccumulator;
use allsweep_worker::npy;

#[derive(Deserialize)]
struct Manifest {
    cases: Vec<Case>,
    keras_cases: Vec<InlineKerasCase>,
}

/// The authors' metrics of a case over consecutive batches of these sizes.
#[derive(Deserialize)]
struct KerasVector {
    batches: Vec<i64>,
    metrics: BTreeMap<String, f64>,
}

/// A case small enough to write inline: predictions on the rounding edge.
#[derive(Deserialize)]
struct InlineKerasCase {
    name: String,
    shape: Vec<i64>,
    pred: Vec<f64>,
    target: Vec<f64>,
    batches: Vec<i64>,
    metrics: BTreeMap<String, f64>,
}

#[derive(Deserialize)]
struct Case {
    name: String,
    pred: PathBuf,
    target: PathBuf,
    losses: Vec<LossVector>,
    metrics: serde_json::Map<String, serde_json::Value>,
    keras: KerasVector,
}

#[derive(Deserialize)]
struct LossVector {
    id: String,
    config: serde_json::Value,
    value: f64,
    grad: PathBuf,
}

fn vectors_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/vectors")
}

fn manifest() -> Manifest {
    let text = std::fs::read_to_string(vectors_dir().join("manifest.json")).expect("manifest.json is committed");
    serde_json::from_str(&text).expect("manifest.json parses")
}

fn load(relative: &Path) -> Tensor {
    npy::read_float(&vectors_dir().join(relative)).expect("vector file reads")
}

fn relative_error(actual: f64, expected: f64) -> f64 {
    (actual - expected).abs() / expected.abs().max(1e-12)
}

#[test]
fn manifest_covers_every_loss_kind_and_both_alls_branches() {
    let m = manifest();
    assert!(m.cases.len() >= 6, "several sizes and imbalances");
    let kinds: std::collections::BTreeSet<String> =
        m.cases[0].losses.iter().map(|l| l.config["kind"].as_str().expect("kind").to_string()).collect();
    for kind in ["all", "dice", "jaccard", "tversky", "focal_tversky", "focal", "combo"] {
        assert!(kinds.contains(kind), "{kind} is cross-checked");
    }
    let dice_values: Vec<f64> =
        m.cases.iter().flat_map(|c| c.losses.iter().filter(|l| l.id == "dice").map(|l| l.value)).collect();
    assert!(dice_values.iter().any(|&d| d < 0.1) && dice_values.iter().any(|&d| d > 0.1));
}

#[test]
fn losses_and_gradients_agree_with_pytorch() {
    let mut checked = 0;
    for case in manifest().cases {
        let pred = load(&case.pred);
        let target = load(&case.target);
        for vector in &case.losses {
            let what = format!("{} / {}", case.name, vector.id);
            let table = toml::Table::try_from(&vector.config).expect("config converts to a table");
            let config = LossConfig::from_table(&table, "loss").unwrap_or_else(|e| panic!("{what}: {e}"));
            let p = pred.copy().set_requires_grad(true);
            let loss = Loss::new(config).compute(&p, &target).unwrap_or_else(|e| panic!("{what}: {e}"));
            let value = loss.double_value(&[]);
            assert!(relative_error(value, vector.value) < 1e-5, "{what}: {value} vs PyTorch {}", vector.value);
            loss.backward();
            let grad = p.grad();
            let expected = load(&vector.grad);
            let scale = expected.abs().max().double_value(&[]).max(1e-12);
            let worst = (&grad - &expected).abs().max().double_value(&[]) / scale;
            assert!(worst < 1e-5, "{what}: gradient differs by {worst:e} of its largest entry");
            checked += 1;
        }
    }
    assert!(checked >= 90, "checked {checked} loss vectors");
}

#[test]
fn metrics_agree_with_pytorch_and_scikit_learn() {
    for case in manifest().cases {
        for kind in [Kind::Double, Kind::Float] {
            let mut acc = MetricsAccumulator::new();
            let pred = load(&case.pred).to_kind(kind);
            let target = load(&case.target).to_kind(kind);
            // Two batches, to exercise accumulation.
            let n = pred.size()[0];
            let split = (n / 2).max(1);
            acc.update(&pred.narrow(0, 0, split), &target.narrow(0, 0, split)).expect("valid");
            if n > split {
                acc.update(&pred.narrow(0, split, n - split), &target.narrow(0, split, n - split)).expect("valid");
            }
            let metrics = acc.metrics();
            for (name, expected) in &case.metrics {
                let what = format!("{} / {name} ({kind:?})", case.name);
                match (metrics.get(name), expected.as_f64()) {
                    (Some(actual), Some(expected)) if name == "auc" => {
                        assert!((actual - expected).abs() < 1e-4, "{what}: {actual} vs {expected}")
                    }
                    (Some(actual), Some(expected)) => {
                        assert!(relative_error(actual, expected) < 1e-5, "{what}: {actual} vs {expected}")
                    }
                    (None, None) => {}
                    (actual, expected) => panic!("{what}: {actual:?} vs {expected:?}"),
                }
            }
        }
    }
}

/// Feeds `pred` and `target` to the trainer's accumulator in consecutive batches of `batches`
/// and checks its Keras-style metrics against NumPy's.
fn check_keras(
    what: &str,
    pred: &Tensor,
    target: &Tensor,
    batches: &[i64],
    expected: &BTreeMap<String, f64>,
    tolerance: f64,
) {
    let mut acc = MetricsAccumulator::new();
    let mut start = 0;
    for &size in batches {
        acc.update(&pred.narrow(0, start, size), &target.narrow(0, start, size)).expect("valid");
        start += size;
    }
    assert_eq!(start, pred.size()[0], "{what}: the batches cover the samples");
    let m = acc.keras_metrics();
    let actual = [("jaccard", m.jaccard), ("dice", m.dice), ("recall", m.recall), ("tnr", m.tnr)];
    assert_eq!(expected.len(), actual.len(), "{what}: {expected:?}");
    for (name, value) in actual {
        let want = expected[name];
        assert!((value - want).abs() < tolerance, "{what} / keras {name}: {value} vs NumPy {want}");
    }
}

#[test]
fn keras_style_metrics_agree_with_numpy_on_the_same_batches() {
    let manifest = manifest();
    for case in &manifest.cases {
        let (pred, target) = (load(&case.pred), load(&case.target));
        check_keras(&case.name, &pred, &target, &case.keras.batches, &case.keras.metrics, 1e-6);
        // float32 predictions, as the trainer's: the inputs round, the sums stay in float64.
        let what = format!("{} (float32)", case.name);
        check_keras(
            &what,
            &pred.to_kind(Kind::Float),
            &target.to_kind(Kind::Float),
            &case.keras.batches,
            &case.keras.metrics,
            1e-5,
        );
    }
    assert!(manifest.cases.iter().any(|c| c.keras.batches.len() > 1 && c.keras.batches[0] != c.keras.batches[1]));
    for case in &manifest.keras_cases {
        let pred = Tensor::from_slice(&case.pred).reshape(case.shape.as_slice());
        let target = Tensor::from_slice(&case.target).reshape(case.shape.as_slice());
        check_keras(&case.name, &pred, &target, &case.batches, &case.metrics, 1e-6);
    }
    assert!(!manifest.keras_cases.is_empty(), "the rounding-edge case is in the manifest");
}
