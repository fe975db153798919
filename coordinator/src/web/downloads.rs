//! Downloads of a sweep's page: the per-config report as CSV or JSON (as `allsweep report
//! --format csv|json`), and Fig. 3 and Fig. 2 as SVG or PNG (as `allsweep plot`), drawn by
//! the same code as the CLI.

use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};

use super::input::{self, BadInput};
use super::live::REPORT_METRICS;
use super::pages::{store_error, SweepQuery};
use super::WebState;
use crate::plot::{self, curves, roc, Figure};
use crate::report::render::{render, Format};
use crate::report::{self, groups, ReportOptions};

/// `/sweeps/ID/FILE` for FILE in report.csv, report.json, curves.svg, curves.png, roc.svg,
/// roc.png.
pub async fn download(
    State(state): State<WebState>,
    Path((id, file)): Path<(String, String)>,
    Query(q): Query<SweepQuery>,
) -> Response {
    let id = match input::id("sweep id", &id) {
        Ok(id) => id.to_string(),
        Err(bad) => return bad.into_response(),
    };
    let sweep = match state.store.sweep(&id).await {
        Ok(Some(sweep)) => sweep,
        Ok(None) => return (StatusCode::NOT_FOUND, format!("no sweep {id}")).into_response(),
        Err(error) => return store_error(error),
    };
    let attachment = |content_type: &'static str, body: Vec<u8>| {
        let disposition = format!("attachment; filename=\"{}-{file}\"", sweep.id);
        ([(header::CONTENT_TYPE, content_type.to_string()), (header::CONTENT_DISPOSITION, disposition)], body)
            .into_response()
    };
    match file.as_str() {
        "report.csv" | "report.json" => {
            let baseline = match input::baseline(q.baseline.as_deref().unwrap_or("")) {
                Ok(b) => b,
                Err(bad) => return bad.into_response(),
            };
            let configs = match groups::load(&state.store, std::slice::from_ref(&sweep.id)).await {
                Ok(g) => g,
                Err(error) => return store_error(error),
            };
            let options = ReportOptions { metrics: REPORT_METRICS.to_vec(), pivot: None, baseline };
            let report = match report::build(&sweep.name, &configs, &options) {
                Ok(r) => r,
                Err(why) => return (StatusCode::CONFLICT, why.to_string()).into_response(),
            };
            if file == "report.csv" {
                attachment("text/csv; charset=utf-8", render(&report, Format::Csv).into_bytes())
            } else {
                attachment("application/json", render(&report, Format::Json).into_bytes())
            }
        }
        "curves.svg" | "curves.png" | "roc.svg" | "roc.png" => {
            let chosen = std::slice::from_ref(&sweep);
            let drawn = if file.starts_with("curves") {
                let metric = match input::metric(q.metric.as_deref().unwrap_or("jaccard")) {
                    Ok(m) => m.to_string(),
                    Err(bad) => return bad.into_response(),
                };
                match curves::figure(&state.store, chosen, &[], &metric, None).await {
                    Ok(figure) => draw(figure, &file).await,
                    Err(error) => Err(error.to_string()),
                }
            } else {
                match roc::figure(&state.store, chosen, &[], None).await {
                    Ok(figure) => draw(figure, &file).await,
                    Err(error) => Err(error.to_string()),
                }
            };
            match drawn {
                Ok(bytes) if file.ends_with(".svg") => attachment("image/svg+xml", bytes),
                Ok(bytes) => attachment("image/png", bytes),
                Err(why) => (StatusCode::CONFLICT, why).into_response(),
            }
        }
        other => BadInput(format!(
            "file: {:?} is not one of report.csv, report.json, curves.svg, curves.png, roc.svg, roc.png",
            other.chars().take(64).collect::<String>()
        ))
        .into_response(),
    }
}

/// Draws `figure` into a temporary file named like `file` (its extension picks the format),
/// off the async runtime, and returns the bytes.
async fn draw<F: Figure + Send + 'static>(figure: F, file: &str) -> Result<Vec<u8>, String> {
    let file = file.to_string();
    tokio::task::spawn_blocking(move || {
        let dir = tempfile::tempdir().map_err(|e| format!("cannot make a temporary folder: {e}"))?;
        let path = dir.path().join(&file);
        plot::render(&figure, &path).map_err(|e| e.to_string())?;
        std::fs::read(&path).map_err(|e| format!("cannot read the figure back: {e}"))
    })
    .await
    .map_err(|e| format!("the drawing thread failed: {e}"))?
}
