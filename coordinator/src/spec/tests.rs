//! Specs as users write them: grids, lists of whole tables, seeds, stable keys, and the
//! mistakes that must be refused with the key and line at fault.

use super::*;

const TABLE1: &str = r#"name = "Table 1: omega x epsilon"
seeds = [0, 1, 2]

[dataset]
kind = "synthetic"
shape = "nuclei"

[model]
arch = "focusnet"
width = 8

[train]
epochs = 2

[loss]
kind = "all"
gamma = 0.1

[grid]
"loss.omega" = [6, 8, 10]
"loss.epsilon" = [0.5, 1.0]
"#;

#[test]
fn a_grid_expands_to_its_product_times_the_seeds() {
    let spec = Spec::parse(TABLE1).unwrap();
    assert_eq!(spec.trials.len(), 3 * 2 * 3);
    let ids: std::collections::BTreeSet<&str> = spec.trials.iter().map(|t| t.id.as_str()).collect();
    assert_eq!(ids.len(), 18, "every trial has its own key");
    let configs: std::collections::BTreeSet<&str> = spec.trials.iter().map(|t| t.config_key.as_str()).collect();
    assert_eq!(configs.len(), 6, "seeds repeat a config");
    let first = &spec.trials[0];
    assert_eq!(first.label, "loss.omega=6 loss.epsilon=0.5 seed=0");
    assert_eq!(first.columns.omega, Some(6.0));
    assert_eq!(first.columns.arch, "focusnet");
    let config = TrialConfig::from_toml_str(&first.config_toml).unwrap();
    assert_eq!(config.seed, 0);
    assert!(first.params_json.contains("\"loss.omega\":6"), "{}", first.params_json);
}

#[test]
fn keys_are_stable_under_formatting_and_change_with_content() {
    let a = Spec::parse(TABLE1).unwrap();
    let reformatted = TABLE1.replace("gamma = 0.1", "gamma = 0.10   # the paper's").replace("width = 8", "width=8");
    let b = Spec::parse(&reformatted).unwrap();
    assert_eq!(a.id, b.id);
    assert_eq!(a.trials[5].id, b.trials[5].id);
    let c = Spec::parse(&TABLE1.replace("[6, 8, 10]", "[6, 8, 12]")).unwrap();
    assert_ne!(a.id, c.id);
    assert_eq!(a.trials[0].id, c.trials[0].id.replacen(&c.id, &a.id, 1), "unchanged trials keep their key");
}

#[test]
fn lists_of_whole_tables_compare_losses_with_different_parameters() {
    let spec = Spec::parse(&TABLE1.replace(
        "\"loss.omega\" = [6, 8, 10]\n\"loss.epsilon\" = [0.5, 1.0]",
        "loss = [{kind = \"dice\"}, {kind = \"all\", gamma = 0.2}, {kind = \"tversky\", alpha = 0.6}]\n\"model.arch\" = [\"unet\", \"focusnet\"]",
    ))
    .unwrap();
    assert_eq!(spec.trials.len(), 3 * 2 * 3);
    assert_eq!(spec.trials[0].columns.loss, "dice");
    assert_eq!(spec.trials[0].columns.gamma, None);
    assert_eq!(spec.trials[6].columns.gamma, Some(0.2));
    assert_eq!(spec.trials[12].columns.loss, "tversky");
    assert_eq!(spec.trials[3].columns.arch, "focusnet");
}

#[test]
fn a_spec_without_grid_is_one_config_per_seed() {
    let spec = Spec::parse(&TABLE1[..TABLE1.find("[grid]").unwrap()]).unwrap();
    assert_eq!(spec.trials.len(), 3);
    assert_eq!(spec.max_attempts, 3);
}

/// Each invalid spec, the start of its message and its line.
#[test]
fn invalid_specs_are_refused_with_the_key_and_line_at_fault() {
    let cases: Vec<(String, &str, Option<usize>)> = vec![
        (TABLE1.replace("seeds = [0, 1, 2]", "seeds = []"), "seeds: empty list", Some(2)),
        (TABLE1.replace("seeds = [0, 1, 2]", "seeds = [0, 0]"), "seeds: seed 0 is listed twice", Some(2)),
        (TABLE1.replace("seeds = [0, 1, 2]", "seeds = \"three\""), "seeds: expected a list", Some(2)),
        (TABLE1.replace("name = \"Table 1: omega x epsilon\"\n", ""), "name: missing", None),
        (TABLE1.replace("[6, 8, 10]", "[]"), "grid.\"loss.omega\": empty list", Some(20)),
        (
            TABLE1.replace("[6, 8, 10]", "[6, -8, 10]"),
            "grid.\"loss.omega\": with loss.omega = -8: loss.omega: must be > 0",
            Some(20),
        ),
        (TABLE1.replace("[6, 8, 10]", "6"), "grid.\"loss.omega\": expected a list", Some(20)),
        (
            TABLE1.replace("\"loss.omega\"", "\"optimizer.lr\""),
            "grid.\"optimizer.lr\": a grid key is a dotted path",
            Some(20),
        ),
        (
            TABLE1.replace("kind = \"all\"\ngamma = 0.1", "kind = \"dice\""),
            "grid.\"loss.omega\": with loss.omega = 6: loss.omega: unknown key",
            Some(19),
        ),
        (TABLE1.replace("width = 8", "width = 8\ndepth = 5"), "model.depth: unknown key", Some(11)),
        (TABLE1.replace("epochs = 2", "epochs = \"two\""), "train.epochs: expected an integer", Some(13)),
        (TABLE1.replace("gamma = 0.1", "gamma = 1.5"), "loss.gamma: must be in (0, 1]", Some(17)),
        (TABLE1.replace("arch = \"focusnet\"", "arch = \"resnet\""), "model.arch: unknown value \"resnet\"", Some(9)),
        (
            TABLE1.replace("[dataset]", "max_attempts = 0\n[dataset]"),
            "max_attempts: expected an integer from 1 to 100",
            Some(4),
        ),
        (TABLE1.replace("[dataset]", "sedes = [1]\n[dataset]"), "sedes: unknown key", Some(4)),
        (
            TABLE1.replace("shape = \"nuclei\"", "shape = \"nuclei\"\nroot = 5"),
            "dataset.root: expected a folder path",
            Some(7),
        ),
        (TABLE1.replace("[model]", "[model\n"), "(syntax)", Some(8)),
    ];
    assert!(cases.len() >= 10);
    for (text, expected, line) in cases {
        let err = Spec::parse(&text).expect_err(expected);
        let shown = format!("{}: {}", err.key, err.message);
        assert!(shown.starts_with(expected), "expected {expected:?}, got {shown:?}");
        assert_eq!(err.line, line, "line of {expected:?}");
    }
}

/// Every preset parses, and makes the number of trials its README promises.
#[test]
fn presets_expand_to_the_documented_trial_counts() {
    let presets = [
        (include_str!("../../../presets/table1-omega-epsilon.toml"), 72),
        (include_str!("../../../presets/table2-gamma.toml"), 21),
        (include_str!("../../../presets/table3-isic.toml"), 60),
        (include_str!("../../../presets/table3-dsb.toml"), 36),
        (include_str!("../../../presets/table3-drive.toml"), 24),
        (include_str!("../../../presets/table4-isic-focal-tversky-split.toml"), 12),
    ];
    for (text, trials) in presets {
        let spec = Spec::parse(text).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(spec.trials.len(), trials, "{}", spec.name);
        assert!(spec.trials.iter().all(|t| t.epochs == 50), "the paper's protocol");
    }
}

/// Two grid points that resolve to the same trial config (a default written out, or one
/// number written two ways) would be one trial twice: the spec is refused, naming both entries.
#[test]
fn grid_entries_that_resolve_to_the_same_config_are_refused() {
    let grid = |lines: &str| TABLE1.replace("\"loss.omega\" = [6, 8, 10]\n\"loss.epsilon\" = [0.5, 1.0]", lines);
    let cases = [
        (
            grid("loss = [{kind = \"all\"}, {kind = \"all\", gamma = 0.1}]"),
            "grid.\"loss\": loss = { kind = \"all\" } (line 20) and loss = { kind = \"all\", gamma = 0.1 } (line 20) \
             resolve to the same trial config",
            Some(20),
        ),
        (
            grid("\"loss.omega\" = [10, 10.0]"),
            "grid.\"loss.omega\": loss.omega = 10 (line 20) and loss.omega = 10.0 (line 20) resolve to the same \
             trial config",
            Some(20),
        ),
        (
            grid("loss = [\n  {kind = \"dice\"},\n  {kind = \"dice\", smooth = 1.0},\n]\n\"model.width\" = [8, 16]"),
            "grid.\"loss\": loss = { kind = \"dice\" } (line 21) and loss = { kind = \"dice\", smooth = 1.0 } (line 22) \
             resolve to the same trial config",
            Some(22),
        ),
    ];
    for (text, expected, line) in cases {
        let err = Spec::parse(&text).expect_err(expected);
        let shown = format!("{}: {}", err.key, err.message);
        assert!(shown.starts_with(expected), "expected {expected:?}, got {shown:?}");
        assert_eq!(err.line, line, "line of {expected:?}");
    }
    // Values that differ in earnest are still a grid.
    assert_eq!(Spec::parse(&grid("\"loss.omega\" = [10, 10.5]")).unwrap().trials.len(), 2 * 3);
}

#[test]
fn zz_timing_scratch() {
    for n in [2000usize, 4000, 8000, 16000] {
        let mut text = TABLE1[..TABLE1.find("[grid]").unwrap()].to_string();
        text.push_str("[grid]\n");
        for i in 0..n {
            text.push_str(&format!("\"dataset.a{i}\" = [1]\n"));
        }
        let t = std::time::Instant::now();
        let table: Table = text.parse().unwrap();
        let parse = t.elapsed();
        let axes = grid::axes(&text, table.get("grid")).unwrap();
        let ax = t.elapsed();
        let pts = grid::points(&axes);
        let p = t.elapsed();
        let r = Spec::parse(&text);
        eprintln!("n={n} bytes={} toml={parse:?} axes={ax:?} points={p:?} ({}) total={:?} err={:?}", text.len(), pts.len(), t.elapsed(), r.err().map(|e| e.to_string().chars().take(80).collect::<String>()));
    }
}

#[test]
fn zz_deep_scratch() {
    for depth in [100usize, 1000, 10000, 100000] {
        let mut text = TABLE1[..TABLE1.find("[grid]").unwrap()].to_string();
        text.push_str("[grid]\nloss");
        for _ in 0..depth { text.push_str(".a"); }
        text.push_str(" = [1]\n");
        let t = std::time::Instant::now();
        let r = Spec::parse(&text);
        eprintln!("depth={depth} bytes={} {:?} {:?}", text.len(), t.elapsed(), r.err().map(|e| e.to_string().chars().take(100).collect::<String>()));
    }
}
