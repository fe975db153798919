//! Report layouts pinned by golden text, built from fixed results.

use super::render::{render, Format};
use super::*;
use crate::store::{FinalMetrics, TrialRow, TrialState};

fn trial(config_toml: &str, seed: u64, jaccard: f64, recall: f64) -> TrialResult {
    TrialResult {
        trial: TrialRow {
            id: format!("t-{seed}-{jaccard}"),
            sweep_id: "s".into(),
            ordinal: 0,
            label: String::new(),
            params_json: "{}".into(),
            config_key: config_toml.into(),
            config_toml: format!("seed = {seed}\n{config_toml}"),
            seed,
            state: TrialState::Completed,
            attempt: 1,
            worker_id: None,
            lease_expires_at: None,
            epoch: 2,
            epochs: 2,
            error: None,
            memory_bytes: 0,
            group_id: None,
            hold: None,
            stopped_epoch: None,
            stop_rule: None,
            note: None,
        },
        metrics: Some(FinalMetrics {
            jaccard,
            dice: 2.0 * jaccard / (1.0 + jaccard),
            recall,
            tnr: 0.95,
            accuracy: 0.9,
            precision: 0.8,
            auc: Some(0.9),
            // The authors' soft metrics run a few points off the pooled ones.
            keras: Some(crate::store::KerasMetrics {
                jaccard: jaccard - 0.05,
                dice: 0.7,
                recall: recall + 0.01,
                tnr: 0.96,
            }),
        }),
        split: Some("by image: 4 train / 1 held out".into()),
    }
}

/// Four configs: loss dice/all x arch unet/focusnet, two seeds each.
fn table3() -> Vec<ConfigGroup> {
    let configs = [
        ("[loss]\nkind = \"dice\"\n[model]\narch = \"unet\"\n", [0.60, 0.62], [0.70, 0.74]),
        ("[loss]\nkind = \"all\"\ngamma = 0.1\n[model]\narch = \"unet\"\n", [0.66, 0.69], [0.75, 0.77]),
        ("[loss]\nkind = \"dice\"\n[model]\narch = \"focusnet\"\n", [0.58, 0.61], [0.72, 0.70]),
        ("[loss]\nkind = \"all\"\ngamma = 0.1\n[model]\narch = \"focusnet\"\n", [0.70, 0.71], [0.80, 0.79]),
    ];
    let mut groups: Vec<ConfigGroup> = configs
        .iter()
        .map(|(toml, jaccard, recall)| ConfigGroup {
            sweep_id: "s".into(),
            config_key: toml.to_string(),
            coordinates: groups::coordinates(toml),
            label: String::new(),
            trials: (0..2).map(|s| trial(toml, s as u64, jaccard[s], recall[s])).collect(),
        })
        .collect();
    groups::label_for_tests(&mut groups);
    groups
}

fn options(metrics: &[Metric]) -> ReportOptions {
    ReportOptions { metrics: metrics.to_vec(), pivot: None, baseline: None }
}

#[test]
fn per_config_table_in_markdown() {
    let report = build("Table 3", &table3(), &options(&[Metric::Recall, Metric::Jaccard])).unwrap();
    let expected = "\
**Table 3**

| config | n | Recall % | Jaccard % |
|---|---|---|---|
| loss.kind=dice model.arch=unet | 2 | 72.00 ± 2.83 | 61.00 ± 1.41 |
| loss.kind=all loss.gamma=0.1 model.arch=unet | 2 | 76.00 ± 1.41 | 67.50 ± 2.12 |
| loss.kind=dice model.arch=focusnet | 2 | 71.00 ± 1.41 | 59.50 ± 2.12 |
| loss.kind=all loss.gamma=0.1 model.arch=focusnet | 2 | **79.50 ± 0.71** | **70.50 ± 0.71** |

- mean ± sample standard deviation over seeds; the best mean of each column is marked
- split: by image: 4 train / 1 held out
";
    assert_eq!(render(&report, Format::Markdown), expected);
}

#[test]
fn baseline_comparison_pairs_configs_that_differ_only_in_the_loss() {
    let mut o = options(&[Metric::Jaccard]);
    o.baseline = Some(("loss.kind".into(), "dice".into()));
    let report = build("DRIVE", &table3(), &o).unwrap();
    let text = render(&report, Format::Table);
    // Differences (6, 7) and (12, 10) points: t = 13 and 11 with 1 degree of freedom,
    // p = 1 - 2 atan(t) / pi, CI = mean +- 12.706 x se (se 0.5 and 1.0), worked by hand.
    let expected = "\
DRIVE
┌──────────────────────────────────────────────────┬───┬────────────────┬───────────────────────────────────────────┐
│ config                                           ┆ n ┆ Jaccard %      ┆ Δ Jaccard % vs loss.kind=dice [95% CI], p │
╞══════════════════════════════════════════════════╪═══╪════════════════╪═══════════════════════════════════════════╡
│ loss.kind=dice model.arch=unet                   ┆ 2 ┆ 61.00 ± 1.41   ┆ baseline                                  │
│ loss.kind=all loss.gamma=0.1 model.arch=unet     ┆ 2 ┆ 67.50 ± 2.12   ┆ +6.50 [+0.15, +12.85] p=0.0489            │
│ loss.kind=dice model.arch=focusnet               ┆ 2 ┆ 59.50 ± 2.12   ┆ baseline                                  │
│ loss.kind=all loss.gamma=0.1 model.arch=focusnet ┆ 2 ┆ 70.50 ± 0.71 * ┆ +11.00 [-1.71, +23.71] p=0.0577           │
└──────────────────────────────────────────────────┴───┴────────────────┴───────────────────────────────────────────┘
  mean ± sample standard deviation over seeds; the best mean of each column is marked
  test: paired t-test over seeds (pairs share seed and data split), two-sided; 95% CI from Student's t with n-1 degrees of freedom
  split: by image: 4 train / 1 held out
";
    assert_eq!(text, expected, "\n{text}");
    let csv = render(&report, Format::Csv);
    assert_eq!(
        csv.lines().next().unwrap(),
        "config,n,Jaccard % mean,Jaccard % sd,Jaccard % n,\"Δ Jaccard % vs loss.kind=dice [95% CI], p difference\",ci_low,ci_high,p"
    );
    assert!(csv.contains("loss.kind=all loss.gamma=0.1 model.arch=unet,2,67.5,"), "{csv}");
    let json: serde_json::Value = serde_json::from_str(&render(&report, Format::Json)).unwrap();
    assert_eq!(json["rows"][1][3]["n"], 2);
}

#[test]
fn pivot_of_one_metric_over_two_keys() {
    let mut o = options(&[Metric::Jaccard]);
    o.pivot = Some(("model.arch".into(), "loss.kind".into()));
    let report = build("Table", &table3(), &o).unwrap();
    let md = render(&report, Format::Markdown);
    let expected_rows = "\
| model.arch \\ loss.kind | all | dice |
|---|---|---|
| focusnet | **70.50 ± 0.71** | 59.50 ± 2.12 |
| unet | 67.50 ± 2.12 | 61.00 ± 1.41 |
";
    assert!(md.contains(expected_rows), "{md}");
    o.pivot = Some(("loss.omega".into(), "loss.kind".into()));
    assert!(build("Table", &table3(), &o).unwrap_err().to_string().contains("pivot key loss.omega"));
}

#[test]
fn a_baseline_that_matches_nothing_names_the_values_seen() {
    let mut o = options(&[Metric::Jaccard]);
    o.baseline = Some(("loss.kind".into(), "tversky".into()));
    let err = build("x", &table3(), &o).unwrap_err().to_string();
    assert_eq!(err, "no config has loss.kind = tversky; the values reported are: all, dice");
}

#[test]
fn the_authors_metrics_are_reported_beside_the_pooled_ones_and_named_so() {
    let asked = [Metric::Recall, Metric::Jaccard, Metric::Auc];
    let both = Metric::of_family(&asked, Family::Both).unwrap();
    assert_eq!(both, [Metric::Recall, Metric::KerasRecall, Metric::Jaccard, Metric::KerasJaccard, Metric::Auc]);
    let keras = Metric::of_family(&asked, Family::Keras).unwrap();
    assert_eq!(keras, [Metric::KerasRecall, Metric::KerasJaccard], "AUC has no Keras form");
    assert!(Metric::of_family(&[Metric::Auc], Family::Keras).unwrap_err().contains("jaccard, dice, recall and tnr"));

    let report = build("Table 3", &table3(), &options(&both)).unwrap();
    assert_eq!(report.columns[2..], ["Recall %", "Keras Recall %", "Jaccard %", "Keras Jaccard %", "AUC"]);
    // unet with dice: recall 72.00 pooled and 73.00 Keras-style, Jaccard 61.00 and 56.00.
    let row = report.rows.iter().find(|r| r[0] == Cell::Text("loss.kind=dice model.arch=unet".into())).expect("row");
    let means: Vec<f64> = row[2..6]
        .iter()
        .map(|c| match c {
            Cell::Stat(s) => s.mean,
            other => panic!("a statistic, got {other:?}"),
        })
        .collect();
    for (got, want) in means.iter().zip([72.0, 73.0, 61.0, 56.0]) {
        assert!((got - want).abs() < 1e-9, "{means:?}");
    }
    assert!(report.notes.iter().any(|n| n.starts_with("pooled: thresholded")), "{:?}", report.notes);
    assert!(report.notes.iter().any(|n| n.starts_with("Keras: the authors' metrics")), "{:?}", report.notes);
    let pooled = build("Table 3", &table3(), &options(&asked)).unwrap();
    assert!(!pooled.notes.iter().any(|n| n.contains("Keras")), "a pooled report stays as it was");
}

#[test]
fn results_stored_before_the_keras_metrics_show_empty_cells_not_zeros() {
    let mut groups = table3();
    for t in groups.iter_mut().flat_map(|g| g.trials.iter_mut()) {
        t.metrics.as_mut().expect("completed").keras = None;
    }
    let report = build("old", &groups, &options(&[Metric::KerasJaccard])).unwrap();
    assert!(report.rows.iter().all(|row| row[2] == Cell::Empty), "{:?}", report.rows);
}
