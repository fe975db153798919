//! The `allsweep-worker inspect` commands, run as a user runs them: the real binary, real
//! .npy files, JSON out; bad input gets a clear message and a failing exit status.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use tch::{Kind, Tensor};

fn worker(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_allsweep-worker")).args(args).output().expect("binary runs")
}

fn json_of(output: &Output) -> serde_json::Value {
    assert!(output.status.success(), "stderr: {}", String::from_utf8_lossy(&output.stderr));
    serde_json::from_slice(&output.stdout).expect("one JSON object")
}

fn stderr_of(output: &Output) -> String {
    assert!(!output.status.success(), "should have failed; stdout: {}", String::from_utf8_lossy(&output.stdout));
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn vector(path: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/vectors").join(path).display().to_string()
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("allsweep-inspect-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir.join(name)
}

#[test]
fn model_reports_parameters_and_output_shape() {
    let out = json_of(&worker(&["inspect", "model", "--arch", "focusnet", "--size", "192x256", "--json"]));
    assert_eq!(out["parameters"], 19_063_933);
    assert_eq!(out["output"], serde_json::json!([1, 1, 192, 256]));
    let out = json_of(&worker(&[
        "inspect",
        "model",
        "--arch",
        "unet",
        "--size",
        "48x48",
        "--channels",
        "1",
        "--width",
        "8",
        "--json",
    ]));
    assert_eq!(out["parameters"], 535_869);
    let err = stderr_of(&worker(&["inspect", "model", "--arch", "unet", "--size", "50x48"]));
    assert!(err.contains("50x48") && err.contains("multiples of 16"), "{err}");
}

#[test]
fn loss_value_and_gradient_file_match_the_reference() {
    let grad_out = scratch("all_image.grad.npy");
    let out = json_of(&worker(&[
        "inspect",
        "loss",
        "--kind",
        "all",
        "--param",
        "reduction=image",
        "--pred",
        &vector("good_mixed_fg30/pred.npy"),
        "--target",
        &vector("good_mixed_fg30/target.npy"),
        "--grad-out",
        grad_out.to_str().expect("utf-8 path"),
        "--json",
    ]));
    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(vector("manifest.json")).expect("manifest")).expect("json");
    let case =
        manifest["cases"].as_array().expect("cases").iter().find(|c| c["name"] == "good_mixed_fg30").expect("case");
    let expected =
        case["losses"].as_array().expect("losses").iter().find(|l| l["id"] == "all_image").expect("all_image");
    let value = out["value"].as_f64().expect("value");
    assert!((value - expected["value"].as_f64().expect("f64")).abs() < 1e-9, "{value} vs {}", expected["value"]);
    let grad = Tensor::read_npy(&grad_out).expect("gradient written");
    let reference = Tensor::read_npy(vector("good_mixed_fg30/all_image.grad.npy")).expect("reference");
    assert_eq!(grad.kind(), Kind::Double, "the prediction's dtype");
    assert!((grad - reference).abs().max().double_value(&[]) < 1e-9);
}

#[test]
fn float32_inputs_give_a_float32_gradient() {
    let pred = scratch("pred32.npy");
    let target = scratch("target32.npy");
    Tensor::read_npy(vector("sparse_fg2/pred.npy"))
        .expect("read")
        .to_kind(Kind::Float)
        .write_npy(&pred)
        .expect("write");
    Tensor::read_npy(vector("sparse_fg2/target.npy"))
        .expect("read")
        .to_kind(Kind::Float)
        .write_npy(&target)
        .expect("write");
    let grad_out = scratch("grad32.npy");
    let args = [
        "inspect",
        "loss",
        "--kind",
        "focal",
        "--pred",
        pred.to_str().unwrap_or_default(),
        "--target",
        target.to_str().unwrap_or_default(),
        "--grad-out",
        grad_out.to_str().unwrap_or_default(),
        "--json",
    ];
    json_of(&worker(&args));
    assert_eq!(Tensor::read_npy(&grad_out).expect("written").kind(), Kind::Float);
}

#[test]
fn metrics_match_the_reference_and_report_undefined_auc_as_null() {
    let out = json_of(&worker(&[
        "inspect",
        "metrics",
        "--pred",
        &vector("all_negative/pred.npy"),
        "--target",
        &vector("all_negative/target.npy"),
        "--json",
        "--roc-points",
        "20",
    ]));
    assert!(out["metrics"]["auc"].is_null(), "no positives: AUC undefined");
    assert_eq!(out["metrics"]["recall"], 1.0);
    assert!(out["roc"].as_array().expect("roc").len() <= 20);
    let out = json_of(&worker(&[
        "inspect",
        "metrics",
        "--pred",
        &vector("moderate_fg10/pred.npy"),
        "--target",
        &vector("moderate_fg10/target.npy"),
        "--json",
        "--batch-size",
        "3",
    ]));
    assert!((out["metrics"]["auc"].as_f64().expect("auc") - 0.9801).abs() < 1e-3);
    // The authors' metrics over batches of 3 and 1 samples, as NumPy computed them.
    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(vector("manifest.json")).expect("manifest")).expect("JSON");
    let case =
        manifest["cases"].as_array().expect("cases").iter().find(|c| c["name"] == "moderate_fg10").expect("case");
    assert_eq!(case["keras"]["batches"], serde_json::json!([3, 1]));
    for name in ["jaccard", "dice", "recall", "tnr"] {
        let (got, want) =
            (out["keras_metrics"][name].as_f64().expect(name), case["keras"]["metrics"][name].as_f64().expect(name));
        assert!((got - want).abs() < 1e-6, "keras {name}: {got} vs {want}");
    }
}

#[test]
fn bad_inputs_name_what_is_wrong_and_write_nothing() {
    let grad_out = scratch("never.npy");
    let mismatched = worker(&[
        "inspect",
        "loss",
        "--kind",
        "dice",
        "--pred",
        &vector("random_fg50/pred.npy"),
        "--target",
        &vector("sparse_fg2/target.npy"),
        "--grad-out",
        grad_out.to_str().unwrap_or_default(),
    ]);
    let err = stderr_of(&mismatched);
    assert!(err.contains("[2, 1, 16, 16]") && err.contains("[1, 1, 48, 48]"), "{err}");
    assert!(!grad_out.exists(), "no gradient file after an error");

    let err = stderr_of(&worker(&[
        "inspect",
        "loss",
        "--kind",
        "all",
        "--param",
        "epsilon=0",
        "--pred",
        &vector("random_fg50/pred.npy"),
        "--target",
        &vector("random_fg50/target.npy"),
    ]));
    assert!(err.contains("loss.epsilon: must be > 0"), "{err}");

    let err =
        stderr_of(&worker(&["inspect", "metrics", "--pred", "/nonexistent/p.npy", "--target", "/nonexistent/t.npy"]));
    assert!(err.contains("/nonexistent/p.npy"), "{err}");

    // Labels stored as 0/255, the usual mistake.
    let target255 = scratch("t255.npy");
    (Tensor::read_npy(vector("random_fg50/target.npy")).expect("read") * 255.0).write_npy(&target255).expect("write");
    let err = stderr_of(&worker(&[
        "inspect",
        "metrics",
        "--pred",
        &vector("random_fg50/pred.npy"),
        "--target",
        target255.to_str().unwrap_or_default(),
    ]));
    assert!(err.contains("other than 0 and 1") && err.contains("255"), "{err}");

    let not_npy = scratch("garbage.npy");
    std::fs::write(&not_npy, b"not an npy file").expect("write");
    let err = stderr_of(&worker(&[
        "inspect",
        "metrics",
        "--pred",
        not_npy.to_str().unwrap_or_default(),
        "--target",
        &vector("random_fg50/target.npy"),
    ]));
    assert!(err.contains("garbage.npy"), "{err}");
}

#[test]
fn step_times_a_small_training_step() {
    let out = json_of(&worker(&[
        "inspect",
        "step",
        "--arch",
        "unet",
        "--size",
        "32x32",
        "--batch",
        "2",
        "--channels",
        "1",
        "--width",
        "8",
        "--steps",
        "2",
        "--warmup",
        "1",
        "--device",
        "cpu",
        "--json",
    ]));
    assert_eq!(out["impl"], "allsweep");
    assert_eq!(out["steps"], 2);
    assert!(out["seconds_per_step_median"].as_f64().expect("seconds") > 0.0);
}

/// The memory estimator against the peak a real training step reaches, each network in its
/// own process (the peak resident size is the process's): on the CPU it must not fall short,
/// and not ask for more than twice what is used beyond its fixed margin (a GPU would then
/// idle half its memory). The peak varies with the machine's load (U-Net's from 361 to 467
/// MiB here), against which the fixed 256 MiB of the margin weighs most on a small network.
#[test]
fn the_memory_estimate_covers_the_measured_peak_of_a_step_without_doubling_it() {
    for (arch, batch) in [("unet", "16"), ("focusnet", "8")] {
        let args = ["inspect", "step", "--arch", arch, "--size", "48x48", "--batch", batch, "--steps", "1"];
        let out = json_of(&worker(&[&args[..], &["--warmup", "1", "--device", "cpu", "--json"]].concat()));
        let measured = out["peak_memory_bytes"].as_f64().expect("measured on the CPU");
        let estimated = out["estimated_memory_bytes"].as_f64().expect("estimated");
        let ratio = estimated / measured;
        let fixed = allsweep_config::memory::FIXED_MARGIN_BYTES as f64;
        assert!(
            measured <= estimated && estimated < 2.0 * measured + fixed,
            "{arch}: estimated {estimated}, measured {measured} (x{ratio:.2})"
        );
    }
}
