//! The load generator (`coordinator/examples/load`) runs a small load on both databases and
//! verifies its own results, so that the benchmark the README quotes keeps working as the
//! worker API's checks grow (it once sent metric names the coordinator had learned to refuse).

#![allow(clippy::unwrap_used)]

use std::path::PathBuf;
use std::process::Command;

/// `target/release/examples/load`, built by `cargo test` beside this test's own binary.
fn load_binary() -> PathBuf {
    let test = std::env::current_exe().expect("this test's path");
    let deps = test.parent().expect("deps");
    deps.parent().expect("the profile directory").join("examples").join("load")
}

fn run(db: &str) -> serde_json::Value {
    let binary = load_binary();
    assert!(
        binary.exists(),
        "{} is missing: run `cargo test` without a filter, which builds examples",
        binary.display()
    );
    let out = Command::new(&binary)
        .args(["--db", db, "--workers", "8", "--trials", "40", "--points", "20", "--heartbeat-ms", "50"])
        .output()
        .expect("run the load generator");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "load --db {db} failed: {stderr}");
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("one JSON line: {e}: {stderr}"))
}

#[test]
fn the_load_generator_completes_every_trial_on_both_databases() {
    for db in ["sqlite", "postgres"] {
        let line = run(db);
        assert_eq!(line["trials"], 40, "{line}");
        assert_eq!(line["sweep_state"], "finished", "{line}");
        assert_eq!(line["calls"]["complete"]["n"], 40, "{line}");
        assert_eq!(line["points"], 800, "{line}");
    }
}
