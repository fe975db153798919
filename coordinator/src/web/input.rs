//! Checking what a caller sends, at the edge: ids in paths and the query's options, before
//! they reach the database or a loop. Each refusal is a 400 that names the field.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

/// A refused request: 400 and what was wrong.
#[derive(Debug)]
pub struct BadInput(pub String);

impl IntoResponse for BadInput {
    fn into_response(self) -> Response {
        (StatusCode::BAD_REQUEST, self.0).into_response()
    }
}

/// Longest id accepted (sweep ids and trial ids are far shorter).
const MAX_ID: usize = 128;

/// A sweep or trial id: 1 to 128 of `A-Z a-z 0-9 . _ -`.
pub fn id<'a>(field: &str, value: &'a str) -> Result<&'a str, BadInput> {
    let ok = !value.is_empty()
        && value.len() <= MAX_ID
        && value.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if ok {
        Ok(value)
    } else {
        Err(BadInput(format!("{field}: expected 1 to {MAX_ID} letters, digits, '.', '_' or '-'")))
    }
}

/// A metric name for the curves: 1 to 64 of `a-z 0-9 _`.
pub fn metric(value: &str) -> Result<&str, BadInput> {
    let ok = !value.is_empty()
        && value.len() <= 64
        && value.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    if ok {
        Ok(value)
    } else {
        Err(BadInput("metric: expected a metric name such as jaccard or validation_loss".into()))
    }
}

/// `baseline=KEY=VALUE` (as `allsweep report --baseline`), at most 256 bytes.
pub fn baseline(value: &str) -> Result<Option<(String, String)>, BadInput> {
    if value.is_empty() {
        return Ok(None);
    }
    if value.len() > 256 || value.chars().any(char::is_control) {
        return Err(BadInput("baseline: at most 256 printable characters".into()));
    }
    match value.split_once('=') {
        Some((key, v)) if !key.is_empty() && !v.is_empty() => Ok(Some((key.to_string(), v.to_string()))),
        _ => Err(BadInput(format!("baseline: expected KEY=VALUE such as loss.kind=dice, got {value:?}"))),
    }
}

/// Percent-encodes `text` for a URL's path or query value (unreserved characters and `/` kept).
pub fn url_encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b'/' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_metrics_and_baselines_are_checked_with_their_field() {
        assert!(id("sweep", "sw-0a1b.c_d").is_ok());
        for bad in ["", "../etc", "a b", "x'; DROP TABLE sweeps;--", &"a".repeat(129)] {
            let error = id("sweep", bad).expect_err(bad);
            assert!(error.0.starts_with("sweep:"), "{}", error.0);
        }
        assert!(metric("validation_loss").is_ok());
        assert!(metric("Jaccard<script>").expect_err("refused").0.starts_with("metric:"));
        assert_eq!(baseline("").expect("none"), None);
        assert_eq!(baseline("loss.kind=dice").expect("parsed"), Some(("loss.kind".to_string(), "dice".to_string())));
        assert!(baseline("loss.kind").expect_err("no value").0.starts_with("baseline:"));
        assert!(baseline(&"k=".repeat(200)).expect_err("long").0.starts_with("baseline:"));
        assert_eq!(url_encode("/sweeps/a?b=c&d"), "/sweeps/a%3Fb%3Dc%26d");
    }
}
