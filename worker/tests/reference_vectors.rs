//! Cross-check against an independent implementation: every loss, its gradient and every
//! metric on the test vectors that `scripts/reference/make_vectors.py` computed with PyTorch
//! (AUC also with scikit-learn). Losses and gradients agree to 1e-5 relative, AUC to 1e-4.

use std::path::{Path, PathBuf};

use serde::Deserialize;
use tch::{Kind, Tensor};

use allsweep_worker::losses::{Loss, LossConfig};
use allsweep_worker::metrics::MetricsAccumulator;
use allsweep_worker::npy;

#[derive(Deserialize)]
struct Manifest {
    cases: Vec<Case>,
}

#[derive(Deserialize)]
struct Case {
    name: String,
    pred: PathBuf,
    target: PathBuf,
    losses: Vec<LossVector>,
    metrics: serde_json::Map<String, serde_json::Value>,
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
