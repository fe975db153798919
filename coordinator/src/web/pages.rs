//! The dashboard's pages: `/` (sweeps and workers), `/sweeps/ID` (trials, the per-config
//! table, Fig. 3 and Fig. 2, live; cancel and downloads) and `/trials/ID` (one trial's
//! curves, attempts, checkpoint, config and history). Each page is complete as served; the
//! script then follows the live stream and swaps in the fragments that changed.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use maud::{html, Markup, PreEscaped};
use serde::Deserialize;

use super::fragments::layout;
use super::input;
use super::live::{self, SweepUpdate};
use super::WebState;
use crate::report::groups;
use crate::store::{now_ms, StoreError, SweepState};

/// A store failure as a response: 503 (the database may come back), logged.
pub fn store_error(error: StoreError) -> Response {
    tracing::warn!(%error, "dashboard: a database read failed");
    (StatusCode::SERVICE_UNAVAILABLE, format!("the database did not answer: {error}")).into_response()
}

fn not_found(what: String) -> Response {
    (StatusCode::NOT_FOUND, layout("Not found", html! { h1 { "Not found" } p { (what) } })).into_response()
}

/// JSON for a `<script type="application/json">` element: `<` escaped, so no text of a
/// sweep can close the element.
fn embedded_json(value: &impl serde::Serialize) -> PreEscaped<String> {
    PreEscaped(serde_json::to_string(value).unwrap_or_else(|_| "null".into()).replace('<', "\\u003c"))
}

pub async fn index(State(state): State<WebState>) -> Response {
    let html = match live::index_fragments(&state).await {
        Ok(html) => html,
        Err(error) => return store_error(error),
    };
    let raw = |id: &str| PreEscaped(html.get(id).cloned().unwrap_or_default());
    let body = html! {
        div data-events="/events" {}
        h1 { "Sweeps" }
        section #sweeps { (raw("sweeps")) }
        h2 { "Workers" }
        section #workers { (raw("workers")) }
    };
    layout("Sweeps", body).into_response()
}

/// The options of a sweep's page: the curves' metric and the comparison's baseline.
#[derive(Debug, Deserialize, Default)]
pub struct SweepQuery {
    pub metric: Option<String>,
    pub baseline: Option<String>,
}

pub async fn sweep(State(state): State<WebState>, Path(id): Path<String>, Query(q): Query<SweepQuery>) -> Response {
    match sweep_page(&state, &id, &q).await {
        Ok(page) => page.into_response(),
        Err(response) => response,
    }
}

async fn sweep_page(state: &WebState, id: &str, q: &SweepQuery) -> Result<Markup, Response> {
    let id = input::id("sweep id", id).map_err(IntoResponse::into_response)?;
    let metric = input::metric(q.metric.as_deref().unwrap_or("jaccard")).map_err(IntoResponse::into_response)?;
    let baseline_text = q.baseline.as_deref().unwrap_or("");
    let baseline = input::baseline(baseline_text).map_err(IntoResponse::into_response)?;
    let Some(sweep) = state.store.sweep(id).await.map_err(store_error)? else {
        return Err(not_found(format!("No sweep {id}.")));
    };
    let update: SweepUpdate = live::sweep_update(&state.store, &sweep, metric, &baseline).await.map_err(store_error)?;
    // The baselines a user may pick: every value of every config key that varies.
    let configs = groups::load(&state.store, std::slice::from_ref(&sweep.id)).await.map_err(store_error)?;
    let mut choices: Vec<String> = Vec::new();
    if configs.len() > 1 {
        let keys: std::collections::BTreeSet<&String> = configs.iter().flat_map(|g| g.coordinates.keys()).collect();
        for key in keys {
            let values: std::collections::BTreeSet<&str> = configs.iter().filter_map(|g| g.coordinate(key)).collect();
            if values.len() > 1 {
                choices.extend(values.into_iter().map(|v| format!("{key}={v}")));
            }
        }
    }
    let events = format!("/sweeps/{}/events?metric={}&baseline={}", sweep.id, metric, input::url_encode(baseline_text));
    let baseline_query = input::url_encode(baseline_text);
    let raw = |id: &str| PreEscaped(update.html.get(id).cloned().unwrap_or_default());
    let base = format!("/sweeps/{}", sweep.id);
    let body = html! {
        div data-events=(events) {}
        h1 { (sweep.name) " " small { (sweep.id) } }
        section #summary { (raw("summary")) }
        div.actions {
            @if sweep.state == SweepState::Active {
                form method="post" action={ (base) "/cancel" } data-confirm="Cancel this sweep? Running trials stop; finished results stay." {
                    button #cancel.danger type="submit" { "Cancel sweep" }
                }
            }
            span { "Download: " }
            a href={ (base) "/report.csv?baseline=" (baseline_query) } download { "report.csv" } " "
            a href={ (base) "/report.json?baseline=" (baseline_query) } download { "report.json" } " "
            a href={ (base) "/curves.svg?metric=" (metric) } download { "curves.svg" } " "
            a href={ (base) "/curves.png?metric=" (metric) } download { "curves.png" } " "
            a href={ (base) "/roc.svg" } download { "roc.svg" } " "
            a href={ (base) "/roc.png" } download { "roc.png" }
        }
        h2 { "Per config" }
        form.options method="get" action=(base) {
            input type="hidden" name="metric" value=(metric);
            label for="baseline" { "Compare with " }
            select #baseline name="baseline" onchange="this.form.submit()" {
                option value="" { "no baseline" }
                @for c in &choices { option value=(c) selected[c.as_str() == baseline_text] { (c) } }
            }
        }
        section #report { (raw("report")) }
        div.figures {
            figure {
                form.options method="get" action=(base) {
                    input type="hidden" name="baseline" value=(baseline_text);
                    label for="metric" { "Validation curve of " }
                    select #metric name="metric" onchange="this.form.submit()" {
                        @for m in &update.curves.available { option value=(m) selected[m.as_str() == metric] { (m) } }
                        @if !update.curves.available.iter().any(|m| m == metric) { option value=(metric) selected { (metric) } }
                    }
                }
                div #curves.chart {}
                figcaption { "Fig. 3: per epoch, mean over seeds (line) and lowest to highest seed (band)." }
            }
            figure {
                div #roc.chart {}
                figcaption { "Fig. 2: test ROC curve of each config's best seed by test Jaccard." }
            }
        }
        h2 { "Trials" }
        section #trials { (raw("trials")) }
        script #figures type="application/json" { (embedded_json(&serde_json::json!({ "curves": &update.curves, "roc": &update.roc }))) }
    };
    Ok(layout(&sweep.name, body))
}

/// Cancels a sweep (the form's post), then back to its page.
pub async fn cancel(State(state): State<WebState>, Path(id): Path<String>) -> Response {
    let id = match input::id("sweep id", &id) {
        Ok(id) => id,
        Err(bad) => return bad.into_response(),
    };
    match state.store.cancel_sweep(id, now_ms()).await {
        Ok(true) => {
            tracing::info!(sweep = %id, "sweep cancelled from the dashboard");
            Redirect::to(&format!("/sweeps/{id}")).into_response()
        }
        Ok(false) => not_found(format!("No sweep {id}.")),
        Err(error) => store_error(error),
    }
}

fn time(ms: Option<i64>) -> String {
    match ms {
        None => "–".into(),
        Some(ms) => {
            let seconds = ms.div_euclid(1000);
            let (days, rest) = (seconds.div_euclid(86_400), seconds.rem_euclid(86_400));
            // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
            let z = days + 719_468;
            let era = z.div_euclid(146_097);
            let doe = z.rem_euclid(146_097);
            let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
            let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
            let mp = (5 * doy + 2) / 153;
            let day = doy - (153 * mp + 2) / 5 + 1;
            let month = if mp < 10 { mp + 3 } else { mp - 9 };
            let year = yoe + era * 400 + i64::from(month <= 2);
            format!("{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02} UTC", rest / 3600, rest % 3600 / 60, rest % 60)
        }
    }
}

pub async fn trial(State(state): State<WebState>, Path(id): Path<String>) -> Response {
    let id = match input::id("trial id", &id) {
        Ok(id) => id.to_string(),
        Err(bad) => return bad.into_response(),
    };
    match trial_page(&state, &id).await {
        Ok(page) => page.into_response(),
        Err(response) => response,
    }
}

async fn trial_page(state: &WebState, id: &str) -> Result<Markup, Response> {
    let store = &state.store;
    let Some(t) = store.trial(id).await.map_err(store_error)? else {
        return Err(not_found(format!("No trial {id}.")));
    };
    let sweep = store.sweep(&t.sweep_id).await.map_err(store_error)?;
    let attempts = store.attempts(id).await.map_err(store_error)?;
    let checkpoint = store.checkpoint(id).await.map_err(store_error)?;
    let points = store.metric_points(id).await.map_err(store_error)?;
    let decisions: Vec<_> =
        store.decisions(&t.sweep_id).await.map_err(store_error)?.into_iter().filter(|d| d.trial_id == id).collect();
    // The history: attempts started and ended, and rung decisions, in time order where known.
    let mut history: Vec<(Option<i64>, String)> = Vec::new();
    for a in &attempts {
        let from = a.resumed_from_epoch.map_or("from scratch".to_string(), |e| format!("resuming from epoch {e}"));
        history.push((Some(a.started_at), format!("attempt {} started on {}, {from}", a.attempt, a.worker_id)));
        if let Some(end) = a.ended_at {
            let cause = a.cause.as_deref().map(|c| format!(" ({c})")).unwrap_or_default();
            let error = a.error.as_deref().map(|e| format!(": {e}")).unwrap_or_default();
            history.push((Some(end), format!("attempt {} {}{cause}{error}", a.attempt, a.outcome.as_str())));
        }
    }
    for d in &decisions {
        let value = d.value.map_or("no value".into(), |v| format!("{} = {v:.4}", d.metric));
        history.push((
            None,
            format!("rung {} (epoch {}): {} by {}, {value}: {}", d.rung, d.epoch, d.verdict, d.rule, d.reason),
        ));
    }
    history.sort_by_key(|(at, _)| at.unwrap_or(i64::MAX));
    // Every metric per epoch, for the chart: epochs, then one array per metric name.
    let mut names: Vec<&str> = points.iter().map(|p| p.name.as_str()).collect();
    names.sort();
    names.dedup();
    let epochs: Vec<u32> =
        points.iter().map(|p| p.epoch).collect::<std::collections::BTreeSet<_>>().into_iter().collect();
    let series: Vec<serde_json::Value> = names
        .iter()
        .map(|name| {
            let values: Vec<Option<f64>> = epochs
                .iter()
                .map(|e| points.iter().find(|p| p.epoch == *e && p.name == *name).map(|p| p.value))
                .collect();
            serde_json::json!({ "label": name, "values": values })
        })
        .collect();
    let sweep_name = sweep.as_ref().map_or(t.sweep_id.clone(), |s| s.name.clone());
    let body = html! {
        h1 { (t.label) " " small { (t.id) } }
        p {
            "Sweep " a href={ "/sweeps/" (t.sweep_id) } { (sweep_name) } " · seed " (t.seed) " · "
            span class={ "state state-" (t.state.as_str()) } { (t.state.as_str()) }
            " · epoch " (t.epoch) "/" (t.epochs) " · attempt " (t.attempt)
            @if let Some(w) = &t.worker_id { " · on " (w) }
        }
        @if let Some(e) = &t.error { p.error { (e) } }
        h2 { "Curves" }
        div #trial-curves.chart {}
        script #trial-figures type="application/json" { (embedded_json(&serde_json::json!({ "epochs": epochs, "series": series }))) }
        h2 { "Attempts" }
        table.attempts {
            thead { tr { th { "#" } th { "Worker" } th { "Started" } th { "Ended" } th { "Outcome" } th { "Resumed from" } th { "Cause" } th { "Error" } } }
            tbody {
                @for a in &attempts {
                    tr {
                        td.n { (a.attempt) } td { (a.worker_id) } td { (time(Some(a.started_at))) } td { (time(a.ended_at)) }
                        td { (a.outcome.as_str()) }
                        td { @match a.resumed_from_epoch { Some(e) => { "epoch " (e) }, None => { "scratch" } } }
                        td { (a.cause.as_deref().unwrap_or("")) } td { (a.error.as_deref().unwrap_or("")) }
                    }
                }
            }
        }
        h2 { "Checkpoint" }
        @match &checkpoint {
            Some(c) => p { "epoch " (c.epoch) ", step " (c.step) ", attempt " (c.attempt) ", " (c.bytes) " bytes, sha256 " code { (c.sha256) } },
            None => p.empty { "none stored (not started, or removed once the trial completed)" },
        }
        h2 { "History" }
        ol.history { @for (at, what) in &history { li { @if at.is_some() { (time(*at)) ": " } (what) } } }
        h2 { "Config" }
        pre.config { (t.config_toml) }
    };
    Ok(layout(&t.label, body))
}

#[cfg(test)]
mod tests {
    #[test]
    fn times_are_utc_dates() {
        assert_eq!(super::time(Some(0)), "1970-01-01 00:00:00 UTC");
        assert_eq!(super::time(Some(1_764_460_800_000 + 3_723_000)), "2025-11-30 01:02:03 UTC");
        assert_eq!(super::time(None), "–");
    }
}
