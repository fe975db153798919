//! `allsweep plot` end to end: a real `allsweep run` (real `allsweep-worker` processes
//! training a tiny synthetic Dice-vs-ALL sweep on the CPU) fills a SQLite database, then the
//! real binary draws every figure as PNG and SVG from it, and refuses bad inputs by name.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use allsweep_coordinator::store::{self, NewSweep, NewTrial, TrialColumns};
use allsweep_testkit::SyntheticSpec;

fn allsweep(args: &[&str]) -> Output {
    Command::new(common::coordinator_binary()).args(args).env("RUST_LOG", "warn").output().expect("allsweep starts")
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Runs `allsweep plot ARGS`, asserts it succeeded, and returns `out`'s bytes.
fn plot_ok(args: &[&str], out: &Path) -> Vec<u8> {
    let mut all = vec!["plot"];
    all.extend_from_slice(args);
    let out_text = out.to_string_lossy().into_owned();
    all.extend_from_slice(&["--out", &out_text]);
    let output = allsweep(&all);
    assert!(output.status.success(), "allsweep {all:?} failed: {}", stderr(&output));
    std::fs::read(out).unwrap_or_else(|e| panic!("{} was not written: {e}", out.display()))
}

/// Runs `allsweep plot ARGS`, asserts it failed, and returns its error output.
fn plot_err(args: &[&str]) -> String {
    let mut all = vec!["plot"];
    all.extend_from_slice(args);
    let output = allsweep(&all);
    assert!(!output.status.success(), "allsweep {all:?} should have failed");
    let text = stderr(&output);
    assert!(!text.contains("panicked"), "{text}");
    text
}

/// The width and height of a PNG, after checking its signature and IHDR chunk.
fn png_size(bytes: &[u8]) -> (u32, u32) {
    assert!(bytes.len() > 33, "too short for a PNG");
    assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n", "PNG signature");
    assert_eq!(&bytes[12..16], b"IHDR", "IHDR chunk first");
    let be = |b: &[u8]| u32::from_be_bytes([b[0], b[1], b[2], b[3]]);
    (be(&bytes[16..20]), be(&bytes[20..24]))
}

fn svg_text(bytes: &[u8]) -> String {
    let text = String::from_utf8(bytes.to_vec()).expect("SVG is UTF-8");
    assert!(text.contains("<svg") && text.trim_end().ends_with("</svg>"), "not a whole SVG document");
    text
}

/// Trains the sweep with the real binaries; returns (sweep id, database URL).
fn run_sweep(dir: &Path) -> (String, String) {
    common::worker_binary();
    let spec = SyntheticSpec::new("plot e2e")
        .seeds([0, 1])
        .epochs(2)
        .grid("loss", r#"[{kind = "dice"}, {kind = "all"}]"#)
        .to_toml();
    let spec_path = dir.join("spec.toml");
    std::fs::write(&spec_path, spec).expect("the spec is written");
    let run_dir = dir.join("run");
    let output = Command::new(common::coordinator_binary())
        .arg("run")
        .arg(&spec_path)
        .args(["--local-workers", "1", "--device", "cpu", "--dir"])
        .arg(&run_dir)
        .env("RUST_LOG", "warn")
        .output()
        .expect("allsweep run starts");
    let log = stderr(&output);
    assert!(output.status.success(), "allsweep run failed: {log}\n{}", String::from_utf8_lossy(&output.stdout));
    let id = log
        .lines()
        .find_map(|l| l.strip_prefix("sweep ").and_then(|rest| rest.split(':').next()))
        .unwrap_or_else(|| panic!("no sweep id in {log}"))
        .to_string();
    (id, format!("sqlite://{}", run_dir.join("allsweep.db").display()))
}

#[test]
fn every_figure_draws_from_a_real_sweep_and_bad_inputs_are_named() {
    let tmp = common::temp_dir();
    let (sweep, db) = run_sweep(tmp.path());
    let out = tmp.path().join("figures");
    let file = |name: &str| -> PathBuf { out.join(name) };

    // Figure 1 needs no database at all.
    let png = plot_ok(&["--kind", "derivative"], &file("derivative.png"));
    assert_eq!(png_size(&png), (1200, 600));
    let svg = svg_text(&plot_ok(&["--kind", "derivative", "--gamma", "0.1,0.3"], &file("derivative.svg")));
    for text in ["ALL, γ = 0.1", "ALL, γ = 0.3", "γ = 0.3", "Dice loss DL", "dALL/dDL"] {
        assert!(svg.contains(text), "derivative SVG lacks {text:?}");
    }

    // Figure 2: one curve per config, AUC in the legend, the chance line.
    let png = plot_ok(&[&sweep, "--kind", "roc", "--db", &db], &file("roc.png"));
    assert_eq!(png_size(&png), (860, 820));
    let svg = svg_text(&plot_ok(&[&sweep, "--kind", "roc", "--db", &db], &file("roc.svg")));
    for text in ["loss.kind=dice (AUC 0.", "loss.kind=all (AUC 0.", "chance (AUC 0.5)", "False positive rate"] {
        assert!(svg.contains(text), "ROC SVG lacks {text:?}");
    }
    let one = svg_text(&plot_ok(&["--kind", "roc", "--db", &db, "--config", "DICE"], &file("roc-dice.svg")));
    assert!(one.contains("loss.kind=dice (AUC") && !one.contains("loss.kind=all (AUC"), "--config picks configs");

    // Figure 3: the database's only sweep by default; mean line and min-max band per config.
    let png = plot_ok(&["--kind", "curves", "--db", &db], &file("curves.png"));
    assert_eq!(png_size(&png), (960, 640));
    let svg =
        svg_text(&plot_ok(&["--kind", "curves", "--db", &db, "--title", "Jaccard by epoch"], &file("curves.svg")));
    for text in [
        "Jaccard by epoch",
        "Validation Jaccard index (%)",
        "Epoch",
        "loss.kind=all (mean of 2 seeds)",
        "lowest to highest seed",
    ] {
        assert!(svg.contains(text), "curves SVG lacks {text:?}");
    }
    let loss = svg_text(&plot_ok(&["--kind", "curves", "--db", &db, "--metric", "validation_loss"], &file("loss.svg")));
    assert!(loss.contains("Validation loss"));

    // Bad inputs: each error names what is wrong, and no figure appears.
    let missing = file("missing.png").to_string_lossy().into_owned();
    let err = plot_err(&["nope", "--kind", "roc", "--db", &db, "--out", &missing]);
    assert!(err.contains("sweep \"nope\" not found") && err.contains(&sweep), "{err}");
    let err = plot_err(&["--kind", "roc", "--db", &db, "--out", "x.jpg"]);
    assert!(err.contains("x.jpg") && err.contains(".png or .svg"), "{err}");
    let err = plot_err(&["--kind", "curves", "--db", &db, "--metric", "nosuch", "--out", &missing]);
    assert!(err.contains("no metric points named \"nosuch\"") && err.contains("jaccard"), "{err}");
    let err = plot_err(&["--kind", "roc", "--db", &db, "--config", "tversky", "--out", &missing]);
    assert!(err.contains("\"tversky\" matches no config") && err.contains("loss.kind=dice"), "{err}");
    let absent = format!("sqlite://{}", tmp.path().join("absent.db").display());
    let err = plot_err(&["--kind", "roc", "--db", &absent, "--out", &missing]);
    assert!(err.contains("absent.db does not exist"), "{err}");
    let err = plot_err(&["--kind", "derivative", "--gamma", "1.5", "--out", &missing]);
    assert!(err.contains("--gamma must be in (0, 1], got 1.5"), "{err}");
    assert!(!Path::new(&missing).exists() && !tmp.path().join("absent.db").exists());
    let leftovers: Vec<_> = std::fs::read_dir(&out)
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with('.'))
        .collect();
    assert!(leftovers.is_empty(), "temporary files left: {leftovers:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_sweep_without_completed_trials_is_refused_by_name() {
    let tmp = common::temp_dir();
    let db = format!("sqlite://{}", tmp.path().join("queued.db").display());
    let store = store::open(&db).await.unwrap();
    let trial = NewTrial {
        id: "queued-t0".into(),
        ordinal: 0,
        label: "seed=0".into(),
        params_json: "{}".into(),
        config_key: "queued-c0".into(),
        config_toml: "seed = 0\n[loss]\nkind = \"dice\"\n".into(),
        seed: 0,
        epochs: 2,
        columns: TrialColumns::default(),
        memory: Default::default(),
    };
    let sweep = NewSweep {
        id: "queued".into(),
        name: "queued sweep".into(),
        spec_toml: "name = \"queued sweep\"\n".into(),
        keep_checkpoints: false,
        max_attempts: 3,
        early_stopping: None,
        trials: vec![trial],
    };
    assert!(store.insert_sweep(&sweep, store::now_ms()).await.unwrap());
    drop(store);
    let out = tmp.path().join("roc.png").to_string_lossy().into_owned();
    for kind in ["roc", "curves"] {
        let err = plot_err(&["queued", "--kind", kind, "--db", &db, "--out", &out]);
        assert!(err.contains("sweep queued has no completed trials"), "{err}");
    }
    assert!(!Path::new(&out).exists());
}
