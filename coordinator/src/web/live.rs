//! What the pages show while trials run, and the server-sent event streams that keep them
//! current without a reload. Each stream reads the database every second (the database is
//! the only state, and other coordinators may write to it), renders the page's fragments
//! with the functions the page used ([`super::fragments`]), and sends them only when they
//! changed. A sweep's stream ends, with an `end` event, once the sweep is over.

use std::collections::{BTreeMap, BTreeSet};
use std::convert::Infallible;
use std::time::Duration;

use axum::extract::{Path, Query, State};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures::Stream;
use serde::Serialize;

use super::fragments::{self, Counts, WorkerView};
use super::input::{self, BadInput};
use super::pages::{store_error, SweepQuery};
use super::WebState;
use crate::plot::curves::{epoch_stats, metric_axis, seed_points};
use crate::plot::roc::best_seed;
use crate::report::{self, groups, Metric, ReportOptions};
use crate::store::{now_ms, Store, StoreError, SweepRow, SweepState, TrialState};

/// How often a stream reads the database.
const EVERY: Duration = Duration::from_secs(1);

/// The metrics of the per-config table (those of `allsweep report`).
pub const REPORT_METRICS: [Metric; 5] = [Metric::Jaccard, Metric::Dice, Metric::Recall, Metric::Tnr, Metric::Auc];

/// What a sweep's page shows: fragments by element id, and the figures' data.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct SweepUpdate {
    pub html: BTreeMap<&'static str, String>,
    pub curves: CurvesData,
    pub roc: RocData,
    pub active: bool,
}

/// Fig. 3 for the chart: per config, the metric's mean over the seeds that reported each
/// epoch, and the lowest and highest seed (the band). Running trials count as far as they got.
#[derive(Debug, Clone, Serialize, PartialEq, Default)]
pub struct CurvesData {
    pub metric: String,
    pub label: String,
    pub epochs: Vec<u32>,
    pub series: Vec<CurveSeries>,
    /// Metric names stored for this sweep, for the chooser.
    pub available: Vec<String>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct CurveSeries {
    pub label: String,
    pub mean: Vec<Option<f64>>,
    pub low: Vec<Option<f64>>,
    pub high: Vec<Option<f64>>,
}

/// Fig. 2 for the chart: each config's best seed (by test Jaccard), its TPR on a common
/// grid of false positive rates (the highest TPR reached at or below each).
#[derive(Debug, Clone, Serialize, PartialEq, Default)]
pub struct RocData {
    pub fpr: Vec<f64>,
    pub series: Vec<RocSeries>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct RocSeries {
    pub label: String,
    pub auc: Option<f64>,
    pub tpr: Vec<f64>,
}

/// Builds a sweep's update from the database.
pub async fn sweep_update(
    store: &std::sync::Arc<dyn Store>,
    sweep: &SweepRow,
    metric: &str,
    baseline: &Option<(String, String)>,
) -> Result<SweepUpdate, StoreError> {
    let trials = store.trials(&sweep.id).await?;
    let counts = Counts::of(&trials);
    let groups = groups::load(store, std::slice::from_ref(&sweep.id)).await?;
    let options = ReportOptions { metrics: REPORT_METRICS.to_vec(), pivot: None, baseline: baseline.clone() };
    let report = report::build(&sweep.name, &groups, &options).map_err(|e| e.to_string());
    let mut html = BTreeMap::new();
    html.insert("summary", fragments::sweep_summary(sweep, &counts).into_string());
    html.insert("trials", fragments::trials_table(&trials).into_string());
    html.insert("report", fragments::report_table(&report).into_string());
    let curves = curves(store, &groups, metric).await?;
    let roc = roc(store, &groups).await?;
    Ok(SweepUpdate { html, curves, roc, active: sweep.state == SweepState::Active })
}

async fn curves(
    store: &std::sync::Arc<dyn Store>,
    groups: &[groups::ConfigGroup],
    metric: &str,
) -> Result<CurvesData, StoreError> {
    let axis = metric_axis(metric);
    let mut available = BTreeSet::new();
    let mut per_group = Vec::new();
    for g in groups {
        let reported = g.trials.iter().filter(|t| t.trial.epoch > 0 || t.trial.state == TrialState::Completed);
        let per_seed = seed_points(store, reported, &axis, &mut available).await?;
        if !per_seed.is_empty() {
            per_group.push((g.label.clone(), epoch_stats(&per_seed)));
        }
    }
    let epochs: Vec<u32> = per_group
        .iter()
        .flat_map(|(_, stats)| stats.iter().map(|s| s.epoch))
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let series = per_group
        .into_iter()
        .map(|(label, stats)| {
            let at = |e: u32| stats.iter().find(|s| s.epoch == e);
            CurveSeries {
                label: if label.is_empty() { "all trials".into() } else { label },
                mean: epochs.iter().map(|&e| at(e).map(|s| s.mean)).collect(),
                low: epochs.iter().map(|&e| at(e).map(|s| s.low)).collect(),
                high: epochs.iter().map(|&e| at(e).map(|s| s.high)).collect(),
            }
        })
        .collect();
    Ok(CurvesData { metric: axis.name, label: axis.label, epochs, series, available: available.into_iter().collect() })
}

/// The common false-positive-rate grid of the ROC chart.
const ROC_GRID: usize = 101;

async fn roc(store: &std::sync::Arc<dyn Store>, groups: &[groups::ConfigGroup]) -> Result<RocData, StoreError> {
    let fpr: Vec<f64> = (0..ROC_GRID).map(|i| i as f64 / (ROC_GRID - 1) as f64).collect();
    let mut series = Vec::new();
    for g in groups {
        let Some((trial, metrics)) = best_seed(g) else { continue };
        let points = store.roc(&trial.trial.id).await?;
        if points.is_empty() {
            continue;
        }
        let tpr = fpr
            .iter()
            .map(|&x| points.iter().filter(|p| p.fpr <= x + 1e-12).map(|p| p.tpr).fold(0.0, f64::max))
            .collect();
        let label = if g.label.is_empty() { "all trials".to_string() } else { g.label.clone() };
        series.push(RocSeries { label, auc: metrics.auc, tpr });
    }
    Ok(RocData { fpr, series })
}

/// What `/` shows: the sweeps table and the workers table.
pub async fn index_fragments(state: &WebState) -> Result<BTreeMap<&'static str, String>, StoreError> {
    let now = now_ms();
    let store = &state.store;
    let mut sweeps = Vec::new();
    let mut running: BTreeMap<String, Vec<(String, String)>> = BTreeMap::new();
    for s in store.sweeps().await? {
        let trials = store.trials(&s.id).await?;
        for t in trials.iter().filter(|t| t.state == TrialState::Running) {
            if let Some(w) = &t.worker_id {
                running.entry(w.clone()).or_default().push((t.id.clone(), format!("{}: {}", s.name, t.label)));
            }
        }
        sweeps.push((s, Counts::of(&trials)));
    }
    let workers: Vec<WorkerView> = store
        .workers()
        .await?
        .into_iter()
        .map(|w| WorkerView {
            alive: state.clocks.worker_alive(w.last_seen_at, now),
            running: running.remove(&w.id).unwrap_or_default(),
            id: w.id,
            host: w.host,
            device: w.device,
            slots: w.slots,
            last_seen_at: w.last_seen_at,
            gpus: w.gpus,
            drain: w.drain,
        })
        .collect();
    let mut html = BTreeMap::new();
    html.insert("sweeps", fragments::sweeps_table(&sweeps, now).into_string());
    html.insert("workers", fragments::workers_table(&workers, now).into_string());
    Ok(html)
}

fn event(name: &str, data: &impl Serialize) -> Result<Event, Infallible> {
    Ok(Event::default().event(name).data(serde_json::to_string(data).unwrap_or_else(|_| "{}".into())))
}

/// `/events`: the sweeps and workers tables of `/`, as they change.
pub async fn index_events(State(state): State<WebState>) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let stream = futures::stream::unfold((state, None::<BTreeMap<&'static str, String>>), |(state, last)| async move {
        loop {
            if last.is_some() {
                tokio::time::sleep(EVERY).await;
            }
            match index_fragments(&state).await {
                Ok(html) if Some(&html) != last.as_ref() => {
                    let e = event("update", &serde_json::json!({ "html": &html }));
                    return Some((e, (state, Some(html))));
                }
                Ok(_) => {}
                Err(error) => tracing::warn!(%error, "dashboard: cannot read the sweeps; trying again"),
            }
            if last.is_none() {
                tokio::time::sleep(EVERY).await;
            }
        }
    });
    Sse::new(stream).keep_alive(KeepAlive::default())
}

/// `/sweeps/ID/events`: the sweep's fragments and figures as they change, then `end`.
pub async fn sweep_events(
    State(state): State<WebState>,
    Path(id): Path<String>,
    Query(q): Query<SweepQuery>,
) -> Result<Response, Response> {
    let id = input::id("sweep id", &id).map_err(IntoResponse::into_response)?.to_string();
    let metric =
        input::metric(q.metric.as_deref().unwrap_or("jaccard")).map_err(IntoResponse::into_response)?.to_string();
    let baseline = input::baseline(q.baseline.as_deref().unwrap_or("")).map_err(IntoResponse::into_response)?;
    if state.store.sweep(&id).await.map_err(store_error)?.is_none() {
        return Err(BadInput(format!("sweep id: no sweep {id}")).into_response());
    }
    struct Follow {
        state: WebState,
        id: String,
        metric: String,
        baseline: Option<(String, String)>,
        last: Option<SweepUpdate>,
        ended: bool,
    }
    let start = Follow { state, id, metric, baseline, last: None, ended: false };
    let stream = futures::stream::unfold(start, |mut f| async move {
        if f.ended {
            return None;
        }
        loop {
            if f.last.is_some() {
                tokio::time::sleep(EVERY).await;
            }
            let sweep = match f.state.store.sweep(&f.id).await {
                Ok(Some(sweep)) => sweep,
                Ok(None) => {
                    f.ended = true;
                    return Some((event("end", &"the sweep is gone"), f));
                }
                Err(error) => {
                    tracing::warn!(%error, "dashboard: cannot read the sweep; trying again");
                    tokio::time::sleep(EVERY).await;
                    continue;
                }
            };
            match sweep_update(&f.state.store, &sweep, &f.metric, &f.baseline).await {
                Ok(update) if Some(&update) != f.last.as_ref() => {
                    let e = event("update", &update);
                    f.last = Some(update);
                    return Some((e, f));
                }
                Ok(update) if !update.active => {
                    f.ended = true;
                    return Some((event("end", &"the sweep is over"), f));
                }
                Ok(_) => {}
                Err(error) => tracing::warn!(%error, "dashboard: cannot read the sweep; trying again"),
            }
            if f.last.is_none() {
                tokio::time::sleep(EVERY).await;
            }
        }
    });
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()).into_response())
}
