//! The dashboard's static files, compiled into the binary: its script and style sheet, and
//! the charting library vendored from npm (`coordinator/web/vendor/`, uPlot, MIT). Nothing is
//! fetched from elsewhere at run time, so the dashboard works on a cluster without internet.

use axum::extract::Path;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};

/// (name, content type, bytes).
const ASSETS: &[(&str, &str, &str)] = &[
    ("app.js", "text/javascript; charset=utf-8", include_str!("../../web/app.js")),
    ("style.css", "text/css; charset=utf-8", include_str!("../../web/style.css")),
    ("uPlot.iife.min.js", "text/javascript; charset=utf-8", include_str!("../../web/vendor/uPlot.iife.min.js")),
    ("uPlot.min.css", "text/css; charset=utf-8", include_str!("../../web/vendor/uPlot.min.css")),
];

pub async fn asset(Path(name): Path<String>) -> Response {
    match ASSETS.iter().find(|(n, _, _)| *n == name) {
        Some((_, content_type, body)) => {
            ([(header::CONTENT_TYPE, *content_type), (header::CACHE_CONTROL, "public, max-age=3600")], *body)
                .into_response()
        }
        None => (StatusCode::NOT_FOUND, "no such asset").into_response(),
    }
}
