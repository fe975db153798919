//! Spec normalisation, as properties: one sweep written in two different ways (see
//! `spec_props/render.rs` for every way) is one sweep, with one id and the same trials, so
//! resubmitting a reformatted spec adds nothing; and a spec with one value changed is
//! another sweep, with another id. `PROPTEST_CASES` raises the case count (default 128).

#[path = "spec_props/render.rs"]
mod render;

use std::collections::BTreeSet;

use allsweep_coordinator::spec::Spec;
use proptest::prelude::*;
use proptest::sample::{select, subsequence};
use render::{dec, render, Axis, Decimal, SpecValue, Val};

fn config() -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(128);
    ProptestConfig { cases, max_shrink_iters: 512, ..ProptestConfig::default() }
}

/// Every axis the grid may take, with the values it may take them from.
fn catalog() -> Vec<Axis> {
    let decimals = |key, values: &[Decimal]| Axis { key, values: values.iter().map(|&d| Val::Dec(d)).collect() };
    vec![
        decimals("loss.gamma", &[dec(1, -1), dec(2, -1), dec(5, -1), dec(1, 0)]),
        decimals("loss.omega", &[dec(6, 0), dec(8, 0), dec(10, 0), dec(125, -1)]),
        decimals("loss.epsilon", &[dec(5, -1), dec(1, 0), dec(25, -1)]),
        decimals("train.lr", &[dec(1, -3), dec(3, -3), dec(1, -4), dec(25, -5)]),
        Axis { key: "model.width", values: vec![Val::Int(8), Val::Int(16), Val::Int(24)] },
        Axis { key: "model.arch", values: vec![Val::Str("unet"), Val::Str("focusnet")] },
        Axis { key: "train.epochs", values: vec![Val::Int(1), Val::Int(2), Val::Int(3)] },
    ]
}

fn axis(axis: Axis) -> impl Strategy<Value = Axis> {
    let n = axis.values.len();
    subsequence(axis.values, 1..=n).prop_shuffle().prop_map(move |values| Axis { key: axis.key, values })
}

fn grid() -> impl Strategy<Value = Vec<Axis>> {
    subsequence(catalog(), 0..=3).prop_flat_map(|axes| axes.into_iter().map(axis).collect::<Vec<_>>())
}

fn spec_value() -> impl Strategy<Value = SpecValue> {
    let names = select(vec!["sweep", "Table 1: omega x epsilon", "DRIVE: U-Net, Dice vs ALL", "ñame, with ünïcode"]);
    let seeds = subsequence(vec![0, 1, 2, 7, 42], 1..=3).prop_shuffle();
    let policy = (1..=5_u32, any::<bool>());
    let data = (select(vec![16_u32, 24, 32]), select(vec![dec(2, -1), dec(25, -2), dec(15, -2)]));
    let model = (select(vec!["unet", "focusnet"]), select(vec![8_u32, 16]));
    let train = (1..=4_u32, select(vec![2_u32, 4, 16]), select(vec![dec(1, -3), dec(1, -4), dec(25, -5)]));
    let loss = (select(vec![dec(1, -1), dec(3, -1), dec(1, 0)]), select(vec![dec(10, 0), dec(6, 0), dec(85, -1)]));
    (names, seeds, policy, data, model, train, loss, grid()).prop_map(
        |(
            name,
            seeds,
            (max_attempts, keep),
            (images, fg),
            (arch, width),
            (epochs, batch, lr),
            (gamma, omega),
            grid,
        )| {
            SpecValue {
                name,
                seeds,
                max_attempts,
                keep_checkpoints: keep,
                images,
                foreground: fg,
                arch,
                width,
                epochs,
                batch_size: batch,
                lr,
                gamma,
                omega,
                grid,
            }
        },
    )
}

fn parsed(text: &str) -> Result<Spec, TestCaseError> {
    Spec::parse(text).map_err(|e| TestCaseError::fail(format!("refused: {e}\n--- the spec:\n{text}")))
}

fn trial_ids(spec: &Spec) -> BTreeSet<&str> {
    spec.trials.iter().map(|t| t.id.as_str()).collect()
}

/// One edit of a spec's values.
type Change = Box<dyn Fn(&mut SpecValue)>;

/// One change of one value that the spec's trials or policy see (a base value that a grid
/// axis overrides in every trial changes nothing, so it is not among them).
fn changed(spec: &SpecValue, pick: usize) -> SpecValue {
    let mut other = spec.clone();
    let in_grid = |key: &str| spec.grid.iter().any(|a| a.key == key);
    let mut changes: Vec<Change> = vec![
        Box::new(|s| s.name = "another name"),
        Box::new(|s| s.max_attempts = s.max_attempts % 5 + 1),
        Box::new(|s| s.keep_checkpoints = !s.keep_checkpoints),
        Box::new(|s| s.images += 8),
        Box::new(|s| s.foreground.mantissa += 1),
        Box::new(|s| s.seeds.push(99)),
        Box::new(|s| s.seeds[0] = 98),
    ];
    if spec.seeds.len() > 1 {
        changes.push(Box::new(|s| {
            s.seeds.pop();
        }));
    }
    for (key, change) in [
        ("train.epochs", Box::new(|s: &mut SpecValue| s.epochs += 1) as Change),
        ("train.lr", Box::new(|s| s.lr.mantissa += 1)),
        ("loss.omega", Box::new(|s| s.omega.mantissa += 1)),
        ("model.width", Box::new(|s| s.width += 8)),
        ("model.arch", Box::new(|s| s.arch = if s.arch == "unet" { "focusnet" } else { "unet" })),
    ] {
        if !in_grid(key) {
            changes.push(change);
        }
    }
    if let Some(first) = spec.grid.first() {
        let unused = catalog().into_iter().find(|a| a.key == first.key).expect("a catalogued axis").values;
        if let Some(&v) = unused.iter().find(|v| !first.values.contains(v)) {
            changes.push(Box::new(move |s| s.grid[0].values[0] = v));
            changes.push(Box::new(move |s| s.grid[0].values.push(v)));
        }
        // Fewer values, or no axis: fewer trials. (An axis of one value may give the base value
        // back, and removing it changes nothing.)
        if first.values.len() > 1 {
            changes.push(Box::new(|s| {
                s.grid[0].values.pop();
            }));
            changes.push(Box::new(|s| drop(s.grid.remove(0))));
        }
    }
    changes[pick % changes.len()](&mut other);
    other
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn one_spec_written_two_ways_is_one_sweep(spec in spec_value(), a in any::<u64>(), b in any::<u64>()) {
        let (text_a, text_b) = (render(&spec, a), render(&spec, b));
        let (first, second) = (parsed(&text_a)?, parsed(&text_b)?);
        let expected = spec.seeds.len() * spec.grid.iter().map(|axis| axis.values.len()).product::<usize>();
        prop_assert_eq!(first.trials.len(), expected);
        prop_assert_eq!(
            &first.id, &second.id,
            "one spec, two ids\n--- written one way:\n{}\n--- and another:\n{}", text_a, text_b
        );
        prop_assert_eq!(trial_ids(&first), trial_ids(&second));
    }

    #[test]
    fn a_spec_with_one_value_changed_is_another_sweep(
        spec in spec_value(),
        pick in any::<usize>(),
        a in any::<u64>(),
        b in any::<u64>(),
    ) {
        let other = changed(&spec, pick);
        let (text_a, text_b) = (render(&spec, a), render(&other, b));
        let (first, second) = (parsed(&text_a)?, parsed(&text_b)?);
        prop_assert_ne!(
            &first.id, &second.id,
            "two specs, one id\n--- one:\n{}\n--- the other:\n{}", text_a, text_b
        );
    }
}

/// The renderer's notations of one number all read as that number, so that the property
/// above tests the spec code and not the renderer.
#[test]
fn every_notation_of_a_decimal_reads_as_its_value() {
    for (d, value) in [(dec(25, -5), 0.00025), (dec(1, -3), 0.001), (dec(125, -1), 12.5), (dec(10, 0), 10.0)] {
        let spec = SpecValue { lr: d, ..base() };
        for seed in 0..200 {
            let text = render(&spec, seed);
            let table: toml::Table = text.parse().unwrap_or_else(|e| panic!("{e}\n{text}"));
            let lr = table["train"]
                .get("lr")
                .map_or(1e-4, |v| v.as_float().unwrap_or_else(|| v.as_integer().unwrap() as f64));
            assert_eq!(lr, if d == dec(1, -4) { 1e-4 } else { value }, "{text}");
        }
    }
}

fn base() -> SpecValue {
    SpecValue {
        name: "base",
        seeds: vec![0],
        max_attempts: 3,
        keep_checkpoints: false,
        images: 16,
        foreground: dec(2, -1),
        arch: "unet",
        width: 8,
        epochs: 1,
        batch_size: 4,
        lr: dec(1, -3),
        gamma: dec(1, -1),
        omega: dec(10, 0),
        grid: Vec::new(),
    }
}
