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

/// Found by `coordinator/tests/spec_props.rs`: the sweep id hashed its trial keys in grid
/// order, so the same grid with its axes (or seeds) written in another order was another sweep,
/// and resubmitting it queued every trial again.
#[test]
fn the_order_of_axes_and_seeds_does_not_change_the_sweep() {
    let a = Spec::parse(TABLE1).unwrap();
    let swapped = TABLE1
        .replace(
            "\"loss.omega\" = [6, 8, 10]\n\"loss.epsilon\" = [0.5, 1.0]",
            "\"loss.epsilon\" = [0.5, 1.0]\n\"loss.omega\" = [6, 8, 10]",
        )
        .replace("seeds = [0, 1, 2]", "seeds = [2, 0, 1]");
    let b = Spec::parse(&swapped).unwrap();
    assert_eq!(b.grid[0].key, "loss.epsilon", "the axes were swapped");
    assert_eq!(a.id, b.id);
    let ids = |s: &Spec| s.trials.iter().map(|t| t.id.clone()).collect::<std::collections::BTreeSet<_>>();
    assert_eq!(ids(&a), ids(&b));
    assert_ne!(a.trials[1].id, b.trials[1].id, "the lease order follows the text");
}

/// Found by the `spec` fuzz target (`fuzz/regressions/spec-syntax-error-without-message`):
/// for a control character in a comment the TOML parser gives an empty message, and the user
/// saw `line 1: (syntax): ` and nothing else.
#[test]
fn every_syntax_error_says_what_is_wrong() {
    for (text, line) in [("#\u{1}", 1), ("name = \"x\"\n# tab\u{7f}\n", 2), ("a = \"\u{0}\"", 1)] {
        let err = Spec::parse(text).unwrap_err();
        assert_eq!((err.key.as_str(), err.line), ("(syntax)", Some(line)), "{text:?}: {err}");
        assert!(!err.message.trim().is_empty(), "{text:?}: {err}");
    }
    let err = Spec::parse("#\u{1}").unwrap_err();
    assert_eq!(err.to_string(), "line 1: (syntax): invalid TOML: unexpected character '\\u{1}'");
}

/// Found by the `spec` fuzz target (`fuzz/regressions/spec-long-name-id`): a name with long
/// words made a sweep id, and trial ids, past the 128 bytes the worker API accepts, so the
/// workers of such a sweep could report nothing for its trials.
#[test]
fn every_id_of_a_sweep_with_a_long_name_is_one_the_worker_api_accepts() {
    let name = format!("{} {}", "w".repeat(300), "x".repeat(300));
    let spec = Spec::parse(&TABLE1.replace("Table 1: omega x epsilon", &name)).unwrap();
    let refused = |id: &str| crate::service::edge::id("id", id).err().map(|e| e.message().to_string());
    assert_eq!(refused(&spec.id), None);
    assert!(spec.id.starts_with(&"w".repeat(48)) && !spec.id.contains('x'), "{}", spec.id);
    for trial in &spec.trials {
        assert_eq!((refused(&trial.id), refused(&trial.config_key)), (None, None));
    }
    let other = Spec::parse(&TABLE1.replace("Table 1: omega x epsilon", &format!("{name}!"))).unwrap();
    assert_ne!(spec.id, other.id, "names cut alike are still told apart by the hash");
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
    assert_refused(&cases);
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
        assert!(spec.trials.iter().all(|t| t.config_toml.contains("protocol = \"paper\"")), "{}", spec.name);
    }
}

/// Each table's sound preset is its paper preset with the other protocol: the same grid, seeds
/// and schedule, so the two can only differ where the protocols do.
#[test]
fn every_paper_preset_has_a_sound_twin_that_differs_only_in_its_protocol() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../presets");
    let mut twins = 0;
    for entry in std::fs::read_dir(&dir).expect("presets/") {
        let path = entry.expect("an entry").path();
        if path.extension().is_none_or(|e| e != "toml") {
            continue;
        }
        let paper = std::fs::read_to_string(&path).expect("a preset");
        let sound_path = dir.join("sound").join(path.file_name().expect("a name"));
        let sound = std::fs::read_to_string(&sound_path).unwrap_or_else(|e| panic!("{}: {e}", sound_path.display()));
        let normalise = |text: &str| -> Vec<String> {
            text.lines()
                .filter(|l| !l.starts_with("protocol = ") && !l.starts_with("name = "))
                .map(str::to_string)
                .collect()
        };
        assert_eq!(normalise(&paper), normalise(&sound), "{} and its sound twin drifted apart", path.display());
        let (paper, sound) = (Spec::parse(&paper).expect("paper"), Spec::parse(&sound).expect("sound"));
        assert_eq!(paper.trials.len(), sound.trials.len());
        assert!(sound.trials.iter().all(|t| t.config_toml.contains("protocol = \"sound\"")), "{}", sound.name);
        twins += 1;
    }
    assert_eq!(twins, 6, "one sound preset per table");
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
    assert_refused(&cases);
    // Values that differ in earnest are still a grid.
    assert_eq!(Spec::parse(&grid("\"loss.omega\" = [10, 10.5]")).unwrap().trials.len(), 2 * 3);
}

/// TABLE1's trial sections with `axes` as its grid, one seed: each axis `"dataset.aN"` (a key
/// no dataset takes, so expanding even one point would fail with "unknown key") of `values`.
fn unknown_axes(axes: usize, values: usize) -> String {
    let mut text = TABLE1[..TABLE1.find("[grid]").unwrap()].replace("seeds = [0, 1, 2]", "seeds = [0]");
    text.push_str("[grid]\n");
    let list = (0..values).map(|v| v.to_string()).collect::<Vec<_>>().join(", ");
    for a in 0..axes {
        text.push_str(&format!("\"dataset.a{a}\" = [{list}]\n"));
    }
    text
}

fn shown(err: &ConfigError) -> String {
    format!("{}: {}", err.key, err.message)
}

/// A million grid points in under 1 KB: refused before a single point is expanded (the
/// points would fail as unknown keys; the error is the limit's), naming the count, the limit
/// and the flag that raises it.
#[test]
fn a_grid_beyond_the_trial_limit_is_refused_before_expansion() {
    let text = unknown_axes(6, 10);
    assert!(text.len() < 1024, "{} bytes", text.len());
    let err = Spec::parse(&text).expect_err("a million trials");
    assert_eq!(
        shown(&err),
        "grid: the sweep makes 1000000 trials (10 x 10 x 10 x 10 x 10 x 10 grid points x 1 seed); this \
         coordinator accepts at most 10000 trials; split the sweep, or raise the limit with `allsweep serve \
         --max-trials N`"
    );
    assert_eq!(err.line, Some(19), "the [grid] header");
    // 20,000 points, twice the default: refused too (before this limit it was expanded and stored).
    let err = Spec::parse(&TABLE1.replace("[6, 8, 10]", &format!("{:?}", (1..=10_000).collect::<Vec<_>>())))
        .expect_err("20,000 trials");
    assert!(shown(&err).starts_with("grid: the sweep makes 60000 trials (10000 x 2 grid points x 3 seeds)"), "{err}");
}

/// The product of the axis lengths is counted without overflow: 64 axes of two values are
/// 2^64 points, one more than a u64 holds.
#[test]
fn a_grid_too_large_to_count_is_refused() {
    let err = Spec::parse(&unknown_axes(64, 2)).expect_err("2^64 trials");
    assert!(
        shown(&err).starts_with(&format!("grid: the sweep makes more than {} trials (2 x 2 x 2", u64::MAX)),
        "{err}"
    );
}

#[test]
fn a_grid_beyond_the_axis_limit_is_refused_before_expansion() {
    let err = Spec::parse(&unknown_axes(65, 1)).expect_err("65 axes");
    assert_eq!(
        shown(&err),
        "grid: the grid has 65 axes; this coordinator accepts at most 64 axes; split the sweep, or raise the limit \
         with `allsweep serve --max-axes N`"
    );
    assert_eq!(err.line, Some(19));
    // At the limit, the spec is expanded (and its first point is what fails).
    let err = Spec::parse(&unknown_axes(64, 1)).expect_err("unknown keys");
    assert!(shown(&err).starts_with("grid.\"dataset.a0\": with dataset.a0 = 0: dataset.a0: unknown key"), "{err}");
}

/// An oversized text is refused before it is parsed: the syntax error at its end is never seen.
#[test]
fn a_spec_beyond_the_size_limit_is_refused_before_parsing() {
    let mut text = TABLE1.to_string();
    text.push_str(&"# padding\n".repeat(SpecLimits::DEFAULT_MAX_SPEC_BYTES / 10));
    text.push_str("[broken\n");
    let err = Spec::parse(&text).expect_err("too big");
    assert_eq!(
        shown(&err),
        format!(
            "spec: the spec is {} bytes; this coordinator accepts at most 262144 bytes; split the sweep, or raise \
             the limit with `allsweep serve --max-spec-bytes N`",
            text.len()
        )
    );
    assert_eq!(err.line, None);
}

/// Each limit lets a spec exactly at it through and refuses one past it; seeds count as trials.
#[test]
fn limits_are_inclusive_and_configurable() {
    let exact = SpecLimits { max_trials: 18, max_axes: 2, max_spec_bytes: TABLE1.len() };
    assert_eq!(Spec::parse_with(TABLE1, &exact).unwrap().trials.len(), 18);
    let size = TABLE1.len();
    let refusals: [(SpecLimits, String); 3] = [
        (
            SpecLimits { max_trials: 17, ..exact },
            "grid: the sweep makes 18 trials (3 x 2 grid points x 3 seeds)".into(),
        ),
        (
            SpecLimits { max_axes: 1, ..exact },
            "grid: the grid has 2 axes; this coordinator accepts at most 1 axes".into(),
        ),
        (
            SpecLimits { max_spec_bytes: size - 1, ..exact },
            format!("spec: the spec is {size} bytes; this coordinator accepts at most {} bytes", size - 1),
        ),
    ];
    for (limits, expected) in refusals {
        let err = Spec::parse_with(TABLE1, &limits).expect_err(&expected);
        assert!(shown(&err).starts_with(&expected), "expected {expected:?}, got {err}");
    }
    let seeds_only = &TABLE1[..TABLE1.find("[grid]").unwrap()];
    let err = Spec::parse_with(seeds_only, &SpecLimits { max_trials: 2, ..exact }).expect_err("3 seeds");
    assert!(shown(&err).starts_with("seeds: the sweep makes 3 trials (1 grid points x 3 seeds)"), "{err}");
    assert_eq!(err.line, Some(2));
}

/// A submitted spec is parsed on one of the coordinator's blocking threads (2 MiB of stack):
/// tables nested as deep as the size limit allows must be refused (the TOML parser limits
/// nesting), not overflow that stack and take the coordinator down.
#[test]
fn a_spec_nested_as_deep_as_its_size_allows_is_refused_within_a_small_stack() {
    let depth = SpecLimits::DEFAULT_MAX_SPEC_BYTES / 2 - 64;
    for text in [
        format!("name = \"deep\"\n[grid.{}]\n", vec!["a"; depth].join(".")),
        format!("name = \"deep\"\n[grid]\n{} = [1]\n", vec!["a"; depth].join(".")),
    ] {
        let parsed = std::thread::Builder::new()
            .stack_size(2 << 20)
            .spawn(move || Spec::parse(&text).map(|_| ()))
            .expect("a thread")
            .join()
            .expect("no panic");
        let err = parsed.expect_err("refused");
        assert_eq!((err.key.as_str(), err.line.is_some()), ("(syntax)", true), "{err}");
    }
}

/// The coordinator keeps a trial's epochs as a u32 (the epoch checks of its reports); a
/// count past that must be refused, not cut to another number.
#[test]
fn epochs_past_what_the_coordinator_counts_are_refused() {
    let err = Spec::parse(&TABLE1.replace("epochs = 2", "epochs = 4294967297")).unwrap_err();
    assert_eq!(err.to_string(), "line 13: train.epochs: at most 4294967295, got 4294967297");
    let spec = Spec::parse(&TABLE1.replace("epochs = 2", "epochs = 4294967295")).unwrap();
    assert_eq!(spec.trials[0].epochs, u32::MAX);
}

/// A loss comparison (a grid of losses) with a random learning rate and ALL's omega for
/// each loss: the draws are in range, the same on every parse, and another search seed or
/// sweep name draws others.
const RANDOM: &str = r#"name = "random lr"
seeds = [0, 1]

[dataset]
kind = "synthetic"

[model]
arch = "unet"
width = 8

[train]
epochs = 2

[loss]
kind = "all"

[grid]
"loss.base" = ["dice", "jaccard"]

[search]
kind = "random"
trials = 5
"train.lr" = { loguniform = [1e-5, 1e-2] }
"loss.omega" = { uniform = [2, 12] }
"train.batch_size" = { int = [2, 8] }
"#;

#[test]
fn a_random_search_draws_its_trials_for_each_grid_point_the_same_way_every_time() {
    let spec = Spec::parse(RANDOM).unwrap();
    assert_eq!(spec.trials.len(), 2 * 5 * 2, "grid points x draws x seeds");
    assert_eq!(spec.search.draws_per_point(), 5);
    let configs: std::collections::BTreeSet<&str> = spec.trials.iter().map(|t| t.config_key.as_str()).collect();
    assert_eq!(configs.len(), 10, "seeds repeat a drawn config");
    for t in &spec.trials {
        let config = TrialConfig::from_toml_str(&t.config_toml).unwrap();
        assert!((1e-5..=1e-2).contains(&config.train.lr), "{}", config.train.lr);
        assert!((2..=8).contains(&config.train.batch_size), "{}", config.train.batch_size);
        let omega = t.columns.omega.unwrap();
        assert!((2.0..=12.0).contains(&omega), "{omega}");
        let params: serde_json::Value = serde_json::from_str(&t.params_json).unwrap();
        assert_eq!(params["train.lr"].as_f64(), Some(config.train.lr), "the drawn value is the trial's parameter");
        assert!(t.label.starts_with("loss.base="), "{}", t.label);
        assert!(t.label.contains(" train.lr=") && t.label.ends_with(&format!("seed={}", config.seed)), "{}", t.label);
    }
    let lrs: std::collections::BTreeSet<String> = spec.trials.iter().map(|t| t.columns.lr.to_string()).collect();
    assert_eq!(lrs.len(), 10, "every draw its own learning rate");

    let again = Spec::parse(RANDOM).unwrap();
    assert_eq!(again.id, spec.id, "resubmitted: the same sweep");
    let ids = |s: &Spec| s.trials.iter().map(|t| t.id.clone()).collect::<Vec<_>>();
    assert_eq!(ids(&again), ids(&spec), "and the same trials, in the same order");
    let reseeded = Spec::parse(&RANDOM.replace("trials = 5", "trials = 5\nseed = 1")).unwrap();
    assert_ne!(reseeded.id, spec.id, "another search seed, other draws");
    let renamed = Spec::parse(&RANDOM.replace("name = \"random lr\"", "name = \"random lr 2\"")).unwrap();
    assert_ne!(renamed.trials[0].columns.lr, spec.trials[0].columns.lr, "another sweep, other draws");
    let swapped_axes = RANDOM.replace(
        "\"train.lr\" = { loguniform = [1e-5, 1e-2] }\n\"loss.omega\" = { uniform = [2, 12] }",
        "\"loss.omega\" = { uniform = [2, 12] }\n\"train.lr\" = { loguniform = [1e-5, 1e-2] }",
    );
    assert_ne!(swapped_axes, RANDOM);
    assert_eq!(Spec::parse(&swapped_axes).unwrap().id, spec.id, "the order keys are written in does not matter");
}

#[test]
fn a_random_search_can_choose_whole_tables_and_nest_its_keys() {
    let text = r#"name = "choose"
[dataset]
kind = "synthetic"
[model]
arch = "unet"
width = 8
[search]
kind = "random"
trials = 3
loss = { choice = [{kind = "dice"}, {kind = "all", omega = 6.0}, {kind = "jaccard"}] }
[search.train]
lr = { uniform = [0.001, 0.01] }
"#;
    let spec = Spec::parse(text).unwrap();
    assert_eq!(spec.trials.len(), 3);
    assert_eq!(spec.search.keys(), ["loss", "train.lr"]);
    for t in &spec.trials {
        assert!(["dice", "all", "jaccard"].contains(&t.columns.loss.as_str()));
        assert!((0.001..=0.01).contains(&t.columns.lr));
    }
}

/// A space of 2 x 2 configs cannot give 5 different ones: refused, naming what to change.
#[test]
fn a_random_search_that_runs_out_of_configs_says_so() {
    let text = RANDOM
        .replace("\"train.lr\" = { loguniform = [1e-5, 1e-2] }\n\"loss.omega\" = { uniform = [2, 12] }\n", "")
        .replace("{ int = [2, 8] }", "{ int = [2, 3] }");
    let err = Spec::parse(&text).expect_err("two configs per grid point");
    assert_eq!(err.key, "search.trials");
    assert!(err.message.contains("asked for 5 configs per grid point, but 150 draws gave only 2"), "{err}");
    assert_eq!(err.line, Some(22));
    Spec::parse(&text.replace("trials = 5", "trials = 2")).expect("two fit");
}

#[test]
fn invalid_searches_are_refused_with_the_key_and_line_at_fault() {
    let cases: Vec<(String, &str, Option<usize>)> = vec![
        (
            RANDOM.replace("kind = \"random\"", "kind = \"bayes\""),
            "search.kind: expected \"grid\" or \"random\"",
            Some(21),
        ),
        (RANDOM.replace("trials = 5\n", ""), "search.trials: missing", Some(20)),
        (
            RANDOM.replace("trials = 5", "trials = 0"),
            "search.trials: expected a whole number from 1 to 10000",
            Some(22),
        ),
        (RANDOM.replace("trials = 5", "trials = 5\nseed = -1"), "search.seed: expected a whole number >= 0", Some(23)),
        (RANDOM.replace("[1e-5, 1e-2]", "[0, 1e-2]"), "search.\"train.lr\": loguniform: low must be above 0", Some(23)),
        (
            RANDOM.replace("[2, 12]", "[12, 2]"),
            "search.\"loss.omega\": uniform: low (12) must be below high (2)",
            Some(24),
        ),
        (
            RANDOM.replace("{ int = [2, 8] }", "{ int = [2.5, 8] }"),
            "search.\"train.batch_size\": int takes [low, high]",
            Some(25),
        ),
        (
            RANDOM.replace("{ uniform = [2, 12] }", "{ normal = [2, 12] }"),
            "search.\"loss.omega\": unknown distribution \"normal\"; expected one of { uniform",
            Some(24),
        ),
        (RANDOM.replace("{ uniform = [2, 12] }", "7"), "search.\"loss.omega\": expected one of", Some(24)),
        (
            RANDOM.replace("\"loss.omega\"", "\"optimizer.omega\""),
            "search.\"optimizer.omega\": unknown key; [search] takes kind, trials, seed",
            Some(24),
        ),
        (RANDOM.replace("\"loss.omega\"", "\"loss.base\""), "search.\"loss.base\": also in [grid]", Some(24)),
        (
            RANDOM.replace("{ int = [2, 8] }", "{ int = [-8, 0] }"),
            "search.\"train.batch_size\": drawn train.batch_size = ",
            Some(25),
        ),
        (
            RANDOM.replace("kind = \"random\"\ntrials = 5\n", "kind = \"grid\"\n"),
            "search.\"train.lr\": a grid search draws nothing",
            Some(22),
        ),
        (
            RANDOM.replace("kind = \"random\"", "kind = \"grid\""),
            "search.trials: a grid search takes no trials",
            Some(22),
        ),
    ];
    assert_refused(&cases);
}

/// Draws multiply the trials: refused before anything is drawn, naming the search's count.
#[test]
fn a_random_search_beyond_the_trial_limit_is_refused_before_drawing() {
    let err = Spec::parse(&RANDOM.replace("trials = 5", "trials = 5000")).expect_err("20,000 trials");
    assert_eq!(
        shown(&err),
        "search.trials: the sweep makes 20000 trials (2 grid points x 5000 random draws x 2 seeds); this \
         coordinator accepts at most 10000 trials; split the sweep, or raise the limit with `allsweep serve \
         --max-trials N`"
    );
    assert_eq!(err.line, Some(22));
}

/// Each spec is refused with an error that reads `key: message` starting with its expected
/// text, on its expected line.
fn assert_refused(cases: &[(String, &str, Option<usize>)]) {
    for (text, expected, line) in cases {
        let err = Spec::parse(text).expect_err(expected);
        let shown = format!("{}: {}", err.key, err.message);
        assert!(shown.starts_with(expected), "expected {expected:?}, got {shown:?}");
        assert_eq!(err.line, *line, "line of {expected:?}");
    }
}

const ASHA: &str = "\n[search.early_stopping]\nkind = \"asha\"\nmetric = \"dice\"\nmin_epochs = 1\n";

#[test]
fn an_early_stopping_rule_is_part_of_the_sweep_and_checked_with_its_line() {
    let plain = Spec::parse(RANDOM).unwrap();
    let ruled = Spec::parse(&format!("{RANDOM}{ASHA}")).unwrap();
    assert_eq!(plain.early_stopping, None);
    let rule = ruled.early_stopping.clone().expect("a rule");
    assert_eq!(rule.name(), "asha");
    assert_eq!(ruled.trials.len(), plain.trials.len(), "a rule adds no trial");
    assert_ne!(ruled.id, plain.id, "the same trials under a rule are another sweep");
    assert_eq!(Spec::parse(&format!("{RANDOM}{ASHA}")).unwrap().id, ruled.id, "resubmitted: the same sweep");
    let stored = ruled.to_new_sweep("text").early_stopping.expect("stored");
    assert_eq!(serde_json::from_str::<crate::scheduler::early_stopping::Rule>(&stored).unwrap(), rule);
    let bad = format!("{RANDOM}{}", ASHA.replace("min_epochs = 1", "min_epochs = 0"));
    let line = bad.lines().position(|l| l.starts_with("min_epochs")).map(|i| i + 1);
    assert_refused(&[(bad, "search.early_stopping.min_epochs: expected a whole number from 1", line)]);
}
