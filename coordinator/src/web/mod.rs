//! The coordinator's HTTP side, next to gRPC in the same process and on the same database:
//! the dashboard (server-rendered pages, live through server-sent events), report and
//! figure downloads, Prometheus `/metrics`, and `/healthz` and `/readyz` for probes.
//!
//! Reading or changing sweeps needs a user (or admin) token once the coordinator has one
//! ([`auth`]); `/healthz`, `/readyz`, the static assets and, with `--metrics-open`,
//! `/metrics` stay open.

mod assets;
mod auth;
mod downloads;
mod fragments;
mod health;
mod input;
mod live;
mod pages;

use std::sync::Arc;

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;
use tokio::sync::watch;

use crate::access::TokenBook;
use crate::scheduler::Clocks;
use crate::store::Store;
use crate::telemetry::Telemetry;

/// Serving HTTP: where, and whether `/metrics` needs a token.
#[derive(Debug, Clone)]
pub struct HttpOptions {
    /// Bound by the caller (so that port 0 can be printed before serving).
    pub listener: Arc<std::net::TcpListener>,
    /// Serve `/metrics` without a token (a Prometheus without credentials on a trusted network).
    pub metrics_open: bool,
}

impl HttpOptions {
    /// Binds `address` (port 0: any free port).
    pub fn bind(address: &str, metrics_open: bool) -> std::io::Result<Self> {
        let listener = std::net::TcpListener::bind(address)?;
        listener.set_nonblocking(true)?;
        Ok(Self { listener: Arc::new(listener), metrics_open })
    }

    /// The dashboard's address, `http://HOST:PORT`.
    pub fn url(&self) -> String {
        self.listener.local_addr().map_or_else(|e| format!("(unknown address: {e})"), |a| format!("http://{a}"))
    }
}

/// What every handler reads.
#[derive(Clone)]
pub struct WebState {
    pub store: Arc<dyn Store>,
    pub tokens: TokenBook,
    pub clocks: Clocks,
    pub telemetry: Telemetry,
    pub metrics_open: bool,
}

/// Every route. Those that read or change sweeps pass the token check first.
pub fn router(state: WebState) -> Router {
    let guarded = Router::new()
        .route("/", get(pages::index))
        .route("/events", get(live::index_events))
        .route("/sweeps/{id}", get(pages::sweep))
        .route("/sweeps/{id}/events", get(live::sweep_events))
        .route("/sweeps/{id}/cancel", post(pages::cancel))
        .route("/sweeps/{id}/{file}", get(downloads::download))
        .route("/trials/{id}", get(pages::trial))
        .route_layer(middleware::from_fn_with_state(state.clone(), auth::require_user));
    let metrics = Router::new().route("/metrics", get(health::metrics));
    let metrics = if state.metrics_open {
        metrics
    } else {
        metrics.route_layer(middleware::from_fn_with_state(state.clone(), auth::require_user))
    };
    Router::new()
        .merge(guarded)
        .merge(metrics)
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/login", get(auth::login_form).post(auth::login))
        .route("/logout", post(auth::logout))
        .route("/assets/{name}", get(assets::asset))
        .layer(middleware::from_fn_with_state(state.clone(), count_requests))
        .with_state(state)
}

/// Counts each answered request by its route pattern (never the raw path: a caller's path
/// would grow the series without bound).
async fn count_requests(State(state): State<WebState>, request: Request, next: Next) -> Response {
    let route = request.extensions().get::<MatchedPath>().map_or("unmatched", |p| p.as_str()).to_string();
    let response = next.run(request).await;
    state.telemetry.http_answered(&route, response.status().as_u16());
    response
}

/// Serves `router(state)` on `listener` until `shutdown` turns true.
pub async fn serve(options: HttpOptions, state: WebState, mut shutdown: watch::Receiver<bool>) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::from_std(options.listener.try_clone()?)?;
    tracing::info!(url = %options.url(), metrics_open = options.metrics_open, "dashboard and /metrics served");
    axum::serve(listener, router(state))
        .with_graceful_shutdown(async move {
            let _ = shutdown.wait_for(|s| *s).await;
        })
        .await?;
    Ok(())
}
