//! Random search end to end, with the real coordinator and a real worker process: a loss
//! comparison whose learning rate is drawn for each loss is stored as the configs it drew
//! (resubmitting it adds nothing), every drawn config trains, and each result carries the
//! value it was drawn with, inside its distribution.

#![allow(clippy::unwrap_used)]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use allsweep_proto::v1 as pb;
use allsweep_testkit::SyntheticSpec;
use common::*;

const LONG: Duration = Duration::from_secs(240);

#[tokio::test(flavor = "multi_thread")]
async fn a_random_search_trains_the_configs_it_drew_and_a_resubmission_adds_nothing() {
    let cluster = Cluster::sqlite("search", &[]);
    let _worker = cluster.worker("worker", &[]);
    let mut client = cluster.client().await;
    let mut text = SyntheticSpec::new("random lr").seeds(0..2).grid("loss.base", r#"["dice", "jaccard"]"#).to_toml();
    text.push_str("\n[search]\nkind = \"random\"\ntrials = 2\n\"train.lr\" = { loguniform = [1e-4, 1e-2] }\n");
    let submitted = submit(&mut client, &text).await;
    assert_eq!((submitted.trials, submitted.created), (2 * 2 * 2, true), "losses x draws x seeds");
    let again = submit(&mut client, &text).await;
    assert_eq!((again.sweep_id.as_str(), again.created), (submitted.sweep_id.as_str(), false), "the same draws");

    let done = wait_for(&mut client, &submitted.sweep_id, LONG, |s| s.state() == pb::SweepState::Finished).await;
    assert_eq!((done.completed, done.failed), (8, 0), "{done:?}\n{}", cluster.log("worker"));
    let results = results(&mut client, &submitted.sweep_id).await;
    assert_eq!(results.len(), 8);
    // Each drawn learning rate is a config of its own, trained with both seeds.
    let mut seeds_of: BTreeMap<(String, String), BTreeSet<u64>> = BTreeMap::new();
    for r in &results {
        let params: serde_json::Value = serde_json::from_str(&r.params_json).unwrap();
        let lr = params["train.lr"].as_f64().unwrap_or_else(|| panic!("{}: no drawn lr in {}", r.label, r.params_json));
        assert!((1e-4..=1e-2).contains(&lr), "{}: lr {lr}", r.label);
        assert!(r.label.contains(&format!("train.lr={lr}")), "the label shows the draw: {}", r.label);
        assert!(r.test.is_some(), "{}: tested", r.label);
        let base = params["loss.base"].as_str().unwrap().to_string();
        seeds_of.entry((base, lr.to_string())).or_default().insert(r.seed);
    }
    assert_eq!(seeds_of.len(), 4, "two draws for each loss: {seeds_of:?}");
    assert!(seeds_of.values().all(|s| s.len() == 2), "each with both seeds: {seeds_of:?}");
}
