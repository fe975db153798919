//! `allsweep report` on a database filled by a real small sweep: `allsweep run` with real
//! worker processes, then the report as a user types it.

#![allow(clippy::unwrap_used)]

mod common;

use std::process::Command;

use allsweep_testkit::SyntheticSpec;
use common::*;

#[test]
fn a_real_sweep_is_reported_against_its_baseline_in_every_format() {
    let dir = temp_dir();
    let spec_path = dir.path().join("compare.toml");
    let text = SyntheticSpec::new("compare")
        .seeds([0, 1])
        .epochs(2)
        .grid("loss", r#"[{kind = "dice"}, {kind = "all", gamma = 0.3}]"#)
        .to_toml();
    std::fs::write(&spec_path, text).unwrap();
    let run = Command::new(coordinator_binary())
        .args([
            "run",
            spec_path.to_str().unwrap(),
            "--local-workers",
            "2",
            "--device",
            "cpu",
            "--memory-budget",
            "4GiB",
        ])
        .arg("--dir")
        .arg(dir.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(run.status.success(), "allsweep run failed: {stdout}\n{}", String::from_utf8_lossy(&run.stderr));
    assert!(stdout.contains("4 completed, 0 failed"), "{stdout}");
    let worker_log = std::fs::read_to_string(dir.path().join("worker-0.log")).unwrap();
    assert!(worker_log.contains("Cpu: 4.0 GiB"), "the local workers lease by the memory budget: {worker_log}");
    let db = format!("sqlite://{}", dir.path().join("allsweep.db").display());
    let report = |extra: &[&str]| {
        let out = Command::new(coordinator_binary())
            .args(["report", spec_path.to_str().unwrap(), "--db", &db, "--baseline", "loss.kind=dice"])
            .args(extra)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap()
    };

    let json: serde_json::Value =
        serde_json::from_str(&report(&["--format", "json", "--metric", "jaccard,recall"])).unwrap();
    let rows = json["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 2, "one row per config: {json}");
    assert_eq!(rows[0][0], "loss.kind=dice");
    assert_eq!(rows[0][1], 2, "two seeds");
    assert_eq!(rows[0][4], "baseline");
    assert_eq!(rows[1][4]["n"], 2, "paired over both seeds");
    let jaccard = rows[1][2]["mean"].as_f64().unwrap();
    assert!((0.0..=100.0).contains(&jaccard), "Jaccard in %: {jaccard}");
    assert!(json["notes"].to_string().contains("paired t-test"));

    let markdown = report(&["--format", "markdown"]);
    assert!(
        markdown.contains(
            "| config | n | Jaccard % | F1 % | Recall % | TNR % | AUC | Δ Jaccard % vs loss.kind=dice [95% CI], p |"
        ),
        "{markdown}"
    );
    let csv = report(&["--format", "csv", "--metric", "dice"]);
    assert_eq!(csv.lines().count(), 3, "{csv}");
    assert!(csv.lines().next().unwrap().starts_with("config,n,F1 % mean,F1 % sd,F1 % n,"), "{csv}");

    let pivot = Command::new(coordinator_binary())
        .args(["report", spec_path.to_str().unwrap(), "--db", &db, "--pivot", "loss.kind,loss.gamma"])
        .output()
        .unwrap();
    assert!(pivot.status.success(), "{}", String::from_utf8_lossy(&pivot.stderr));

    let unknown = Command::new(coordinator_binary()).args(["report", "no-such-sweep", "--db", &db]).output().unwrap();
    assert!(!unknown.status.success());
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("sweep no-such-sweep not found"));
    let bad_metric = Command::new(coordinator_binary())
        .args(["report", spec_path.to_str().unwrap(), "--db", &db, "--metric", "iou,speed"])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&bad_metric.stderr).contains("unknown metric \"speed\""));
}
