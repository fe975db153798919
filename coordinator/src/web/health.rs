//! Probes and metrics: `/healthz` (the process answers), `/readyz` (the database answers and
//! has every migration this build knows), and `/metrics` (Prometheus text format).

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};

use super::WebState;
use crate::store::PROBE_DEADLINE;

pub async fn healthz() -> &'static str {
    "ok\n"
}

pub async fn readyz(State(state): State<WebState>) -> Response {
    // A database cut off silently (packets dropped) would hold the answer for the pool's whole
    // acquire timeout (30 s); a probe wants "not ready" within its own timeout.
    let status = tokio::time::timeout(PROBE_DEADLINE, state.store.schema_status()).await;
    let Ok(status) = status else {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready: the database did not answer within {PROBE_DEADLINE:?}\n"),
        )
            .into_response();
    };
    match status {
        Ok(s) if s.applied == s.known => {
            (StatusCode::OK, format!("ready: schema version {}\n", s.applied)).into_response()
        }
        Ok(s) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready: the database has {} of {} migrations\n", s.applied, s.known),
        )
            .into_response(),
        Err(error) => (StatusCode::SERVICE_UNAVAILABLE, format!("not ready: the database did not answer: {error}\n"))
            .into_response(),
    }
}

pub async fn metrics(State(state): State<WebState>) -> Response {
    match state.telemetry.render(&*state.store, state.clocks).await {
        Ok(text) => ([(header::CONTENT_TYPE, prometheus::TEXT_FORMAT)], text).into_response(),
        Err(error) => {
            tracing::warn!(error = %format!("{error:#}"), "cannot gather the metrics");
            (StatusCode::SERVICE_UNAVAILABLE, format!("cannot gather the metrics: {error:#}\n")).into_response()
        }
    }
}
