//! Early stopping end to end, with the real coordinator and real worker processes: an ASHA
//! search over learning rates stops its losing trials at the rungs, promoted trials resume
//! from their rung checkpoints (never from scratch), the decisions are the ones the rule
//! makes from the stored metrics, `allsweep report` shows the rung table, and a coordinator
//! SIGKILLed mid-sweep makes the same decisions as one that never stopped.

#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use allsweep_coordinator::scheduler::early_stopping::{self, Rule, TrialSeen, Verdict};
use allsweep_coordinator::store::{Store, TrialState};
use allsweep_proto::v1 as pb;
use allsweep_testkit::SyntheticSpec;
use common::*;

const LONG: Duration = Duration::from_secs(300);

/// Six learning rates in no order of merit, 4 epochs, ASHA with eta 2 on validation Dice:
/// rungs at epochs 1 and 2.
fn asha_spec(name: &str) -> String {
    let mut text =
        SyntheticSpec::new(name).epochs(4).grid("train.lr", "[3e-3, 1e-5, 1e-3, 3e-5, 3e-4, 1e-4]").to_toml();
    text.push_str(
        "\n[search.early_stopping]\nkind = \"asha\"\nmetric = \"dice\"\nmin_epochs = 1\nreduction_factor = 2\n",
    );
    text
}

/// (ordinal, rung, verdict) of every decision recorded for `sweep`.
async fn recorded(store: &Arc<dyn Store>, sweep: &str) -> Vec<(u32, u32, String)> {
    let decisions = store.decisions(sweep).await.unwrap();
    let mut out: Vec<_> = decisions.into_iter().map(|d| (d.ordinal, d.rung, d.verdict)).collect();
    out.sort();
    out
}

/// The decisions the rule makes from the metrics stored for `sweep`, recomputed here.
async fn recomputed(store: &Arc<dyn Store>, sweep: &str) -> Vec<(u32, u32, String)> {
    let row = store.sweep(sweep).await.unwrap().unwrap();
    let rule: Rule = serde_json::from_str(row.early_stopping.as_deref().unwrap()).unwrap();
    let mut seen = Vec::new();
    for t in store.trials(sweep).await.unwrap() {
        let values: BTreeMap<u32, f64> = store
            .metric_points(&t.id)
            .await
            .unwrap()
            .into_iter()
            .filter(|p| p.name == rule.metric())
            .map(|p| (p.epoch, p.value))
            .collect();
        let ended = matches!(t.state, TrialState::Failed | TrialState::Cancelled);
        seen.push(TrialSeen { ordinal: t.ordinal, values, ended });
    }
    let mut out: Vec<_> = early_stopping::decide(&rule, &seen)
        .into_iter()
        .filter(|d| d.verdict != Verdict::Waiting)
        .map(|d| (d.ordinal, d.rung, d.verdict.as_str().to_string()))
        .collect();
    out.sort();
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn asha_stops_losing_trials_at_rungs_and_promoted_ones_resume_from_their_rung_checkpoints() {
    let cluster = Cluster::sqlite("asha", &[]);
    let _worker = cluster.worker("worker", &[]);
    let mut client = cluster.client().await;
    let submitted = submit(&mut client, &asha_spec("asha lr")).await;
    assert_eq!(submitted.trials, 6);
    let done = wait_for(&mut client, &submitted.sweep_id, LONG, |s| s.state() == pb::SweepState::Finished).await;
    assert_eq!(done.failed, 0, "{done:?}\n{}", cluster.log("worker"));
    assert!(done.stopped >= 2, "losing trials stop: {done:?}");
    assert!(done.completed >= 1, "the search finishes a trial: {done:?}");
    assert_eq!(done.completed + done.stopped, 6);

    let store = cluster.store().await;
    let id = &submitted.sweep_id;
    assert_eq!(recorded(&store, id).await, recomputed(&store, id).await, "the rule's decisions, from the metrics");
    let (mut trained, mut full) = (0, 0);
    for t in store.trials(id).await.unwrap() {
        full += t.epochs;
        let epochs: Vec<u32> =
            store.metric_points(&t.id).await.unwrap().iter().filter(|p| p.name == "dice").map(|p| p.epoch).collect();
        let reached = *epochs.last().unwrap();
        assert_eq!(epochs, (1..=reached).collect::<Vec<_>>(), "{}: every epoch once", t.label);
        trained += reached;
        match t.state {
            TrialState::Stopped => {
                let stopped = t.stopped_epoch.unwrap();
                assert!([1, 2].contains(&stopped) && stopped == reached, "{}: stopped at a rung", t.label);
                assert_eq!(t.stop_rule.as_deref(), Some("asha"));
            }
            TrialState::Completed => assert_eq!(reached, 4, "{}", t.label),
            other => panic!("{}: {other}", t.label),
        }
        // Each attempt after the first resumed from the rung its trial paused at: none
        // trained from scratch again.
        let attempts = store.attempts(&t.id).await.unwrap();
        for pair in attempts.windows(2) {
            let resumed = pair[1].resumed_from_epoch;
            assert!(
                matches!(resumed, Some(1) | Some(2)),
                "{}: attempt {} resumed from {resumed:?}",
                t.label,
                pair[1].attempt
            );
        }
        if t.state == TrialState::Completed {
            assert!(attempts.len() >= 3, "{}: paused at both rungs, resumed twice: {attempts:?}", t.label);
        }
    }
    assert!(trained < full, "ASHA trained {trained} of the grid's {full} epochs");

    let report =
        std::process::Command::new(coordinator_binary()).args(["report", id, "--db", &cluster.db]).output().unwrap();
    let text = String::from_utf8_lossy(&report.stdout);
    assert!(report.status.success(), "{}", String::from_utf8_lossy(&report.stderr));
    assert!(text.contains("early stopping") && text.contains("promoted"), "{text}");
    assert!(text.contains("stopped early (not failures), 0 failed"), "{text}");
    assert!(text.contains(&format!("epochs trained: {trained} of the {full}")), "{text}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_coordinator_killed_mid_sweep_under_asha_makes_the_same_decisions() {
    // The reference: a sweep that runs undisturbed.
    let reference = Cluster::sqlite("reference", &[]);
    let reference_decisions = {
        let _worker = reference.worker("worker", &[]);
        let mut client = reference.client().await;
        let id = submit(&mut client, &asha_spec("asha restart")).await.sweep_id;
        wait_for(&mut client, &id, LONG, |s| s.state() == pb::SweepState::Finished).await;
        recorded(&reference.store().await, &id).await
    };

    // The same sweep on two workers, its coordinator SIGKILLed once the first decisions are in.
    let mut cluster = Cluster::sqlite("killed", &[]);
    let _a = cluster.worker("a", &[]);
    let _b = cluster.worker("b", &[]);
    let mut client = cluster.client().await;
    let id = submit(&mut client, &asha_spec("asha restart")).await.sweep_id;
    let store = cluster.store().await;
    let start = Instant::now();
    while store.decisions(&id).await.unwrap().is_empty() {
        assert!(start.elapsed() < LONG, "no decision yet\n{}", cluster.log("coordinator"));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let before = store.decisions(&id).await.unwrap().len();
    cluster.restart().await;
    let mut client = cluster.client().await;
    let done = wait_for(&mut client, &id, LONG, |s| s.state() == pb::SweepState::Finished).await;
    assert_eq!(done.failed, 0, "{done:?}");
    let decisions = recorded(&store, &id).await;
    assert_eq!(decisions, recomputed(&store, &id).await, "the rule's decisions, from the metrics");
    assert!(before < decisions.len(), "killed mid-sweep: {before} of {} decisions made before", decisions.len());
    assert_eq!(decisions, reference_decisions, "the same decisions as the sweep that was never interrupted");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_race_over_seeds_stops_giving_seeds_to_a_config_shown_worse() {
    let cluster = Cluster::sqlite("race", &[]);
    let _worker = cluster.worker("worker", &[]);
    let mut client = cluster.client().await;
    // A learning rate too small to learn against one that learns, 6 seeds each, judged on
    // the training loss of the last epoch (4 epochs of 16 images barely move the validation
    // metrics of either).
    let mut text = SyntheticSpec::new("race lr").epochs(4).seeds(0..6).grid("train.lr", "[1e-7, 1e-2]").to_toml();
    text.push_str("\n[search.early_stopping]\nkind = \"race\"\nmetric = \"train_loss\"\nmin_seeds = 3\n");
    let submitted = submit(&mut client, &text).await;
    assert_eq!(submitted.trials, 12);
    let done = wait_for(&mut client, &submitted.sweep_id, LONG, |s| s.state() == pb::SweepState::Finished).await;
    assert_eq!(done.failed, 0, "{done:?}\n{}", cluster.log("worker"));
    let store = cluster.store().await;
    let trials = store.trials(&submitted.sweep_id).await.unwrap();
    let (slow, fast): (Vec<_>, Vec<_>) = trials.iter().partition(|t| t.label.contains("train.lr=0.0000001"));
    assert!(fast.iter().all(|t| t.state == TrialState::Completed), "the better config gets every seed");
    let slow_run = slow.iter().filter(|t| t.state == TrialState::Completed).count();
    assert!((3..6).contains(&slow_run), "the worse config stops after a wave from the third: {slow_run} seeds run");
    assert!(
        slow.iter().filter(|t| t.state == TrialState::Stopped).all(|t| t.stopped_epoch == Some(0)),
        "never started"
    );
    let report = std::process::Command::new(coordinator_binary())
        .args(["report", &submitted.sweep_id, "--db", &cluster.db])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&report.stdout);
    assert!(text.contains("race over seeds") && text.contains("eliminated after wave"), "{text}");
    assert!(text.contains(&format!("seeds run: {} of the 12", 6 + slow_run)), "{text}");
}
