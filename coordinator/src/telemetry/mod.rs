//! The coordinator's Prometheus instruments, served at `/metrics` in the text format.
//!
//! Two kinds. Events this process saw are counted as they happen ([`Telemetry`]'s counters
//! and histograms: RPCs by method and code, lease expiries, metric points, checkpoint bytes,
//! database transaction latency); they start at zero with the process, as Prometheus
//! counters do. What the database holds (trials by sweep and state, attempts by outcome,
//! the queue, workers alive) is read from it at each scrape ([`Telemetry::render`]), so every
//! coordinator of one database reports the same and a restart loses nothing.

mod rpc;
mod timed_store;

use std::sync::{Arc, Mutex};

use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry, TextEncoder,
};

pub use rpc::RpcMetricsLayer;
pub use timed_store::TimedStore;

use crate::scheduler::Clocks;
use crate::store::{now_ms, Store};

/// Every instrument, registered in one registry. Cloning shares them.
#[derive(Clone)]
pub struct Telemetry {
    inner: Arc<Instruments>,
}

struct Instruments {
    registry: Registry,
    /// Serialises scrapes: each resets and refills the database-derived families.
    scrape: Mutex<()>,
    rpc_requests: IntCounterVec,
    rpc_seconds: HistogramVec,
    lease_expiries: IntCounterVec,
    metric_points: IntCounterVec,
    checkpoint_bytes: IntCounter,
    db_seconds: HistogramVec,
    trials: IntGaugeVec,
    attempts: IntCounterVec,
    leasable: IntGauge,
    leases_running: IntGauge,
    workers: IntGaugeVec,
    http_requests: IntCounterVec,
}

/// Latency buckets, in seconds: 1 ms to 10 s.
const SECONDS_BUCKETS: &[f64] = &[0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

impl Default for Telemetry {
    fn default() -> Self {
        Self::new()
    }
}

impl Telemetry {
    pub fn new() -> Self {
        let registry = Registry::new();
        let counter = |name: &str, help: &str, labels: &[&str]| {
            let c = IntCounterVec::new(Opts::new(name, help), labels).expect("a valid counter");
            registry.register(Box::new(c.clone())).expect("a new name");
            c
        };
        let histogram = |name: &str, help: &str, labels: &[&str]| {
            let opts = HistogramOpts::new(name, help).buckets(SECONDS_BUCKETS.to_vec());
            let h = HistogramVec::new(opts, labels).expect("a valid histogram");
            registry.register(Box::new(h.clone())).expect("a new name");
            h
        };
        let gauge = |name: &str, help: &str, labels: &[&str]| {
            let g = IntGaugeVec::new(Opts::new(name, help), labels).expect("a valid gauge");
            registry.register(Box::new(g.clone())).expect("a new name");
            g
        };
        let single_gauge = |name: &str, help: &str| {
            let g = IntGauge::new(name, help).expect("a valid gauge");
            registry.register(Box::new(g.clone())).expect("a new name");
            g
        };
        let checkpoint_bytes = IntCounter::new(
            "allsweep_checkpoint_bytes_total",
            "Checkpoint bytes received from workers and stored (this process).",
        )
        .expect("a valid counter");
        registry.register(Box::new(checkpoint_bytes.clone())).expect("a new name");
        let inner = Instruments {
            rpc_requests: counter(
                "allsweep_grpc_requests_total",
                "gRPC calls answered by this process, by method and status code.",
                &["method", "code"],
            ),
            rpc_seconds: histogram(
                "allsweep_grpc_request_duration_seconds",
                "Time to answer a gRPC call (to its response headers; a stream's first message), by method and status code.",
                &["method", "code"],
            ),
            lease_expiries: counter(
                "allsweep_lease_expiries_total",
                "Leases that expired without a heartbeat (this process's expiry tick), by what became of the trial.",
                &["next"],
            ),
            metric_points: counter(
                "allsweep_metric_points_total",
                "Per-epoch metric points received (this process): stored, or duplicates of stored ones.",
                &["result"],
            ),
            checkpoint_bytes,
            db_seconds: histogram(
                "allsweep_db_transaction_duration_seconds",
                "Time of each store operation (one transaction or query), by operation.",
                &["operation"],
            ),
            trials: gauge(
                "allsweep_trials",
                "Trials by sweep and state, as the database holds them.",
                &["sweep", "sweep_name", "state"],
            ),
            attempts: counter(
                "allsweep_attempts_total",
                "Attempts by outcome, as the database holds them (running: still open).",
                &["outcome"],
            ),
            leasable: single_gauge(
                "allsweep_queue_depth",
                "Queued trials of active sweeps that a worker may lease now.",
            ),
            leases_running: single_gauge("allsweep_leases_running", "Trials running under a lease."),
            workers: gauge(
                "allsweep_workers",
                "Registered workers, alive (heard from within a lease time) or not.",
                &["alive"],
            ),
            http_requests: counter(
                "allsweep_http_requests_total",
                "Dashboard and API HTTP requests answered by this process, by route and status.",
                &["route", "status"],
            ),
            registry,
            scrape: Mutex::new(()),
        };
        // Series that exist from the start at zero, so that a dashboard shows 0, not "no data".
        for next in ["queued", "failed"] {
            inner.lease_expiries.with_label_values(&[next]);
        }
        for result in ["stored", "duplicate"] {
            inner.metric_points.with_label_values(&[result]);
        }
        Self { inner: Arc::new(inner) }
    }

    /// One answered gRPC call.
    pub fn rpc_answered(&self, method: &str, code: &str, seconds: f64) {
        self.inner.rpc_requests.with_label_values(&[method, code]).inc();
        self.inner.rpc_seconds.with_label_values(&[method, code]).observe(seconds);
    }

    /// One expired lease; `next` is `queued` or `failed`.
    pub fn lease_expired(&self, next: &str) {
        self.inner.lease_expiries.with_label_values(&[next]).inc();
    }

    /// A batch of metric points: how many were new, how many duplicates.
    pub fn metric_points(&self, stored: u64, duplicates: u64) {
        self.inner.metric_points.with_label_values(&["stored"]).inc_by(stored);
        self.inner.metric_points.with_label_values(&["duplicate"]).inc_by(duplicates);
    }

    pub fn checkpoint_stored(&self, bytes: u64) {
        self.inner.checkpoint_bytes.inc_by(bytes);
    }

    /// One store operation's time.
    pub fn db_operation(&self, operation: &str, seconds: f64) {
        self.inner.db_seconds.with_label_values(&[operation]).observe(seconds);
    }

    /// One answered HTTP request; `route` is the route's pattern, never the raw path.
    pub fn http_answered(&self, route: &str, status: u16) {
        self.inner.http_requests.with_label_values(&[route, &status.to_string()]).inc();
    }

    /// Reads the database-derived families from `store`, then writes every family in the
    /// Prometheus text format.
    pub async fn render(&self, store: &dyn Store, clocks: Clocks) -> anyhow::Result<String> {
        let census = store.census().await?;
        let workers = store.workers().await?;
        let now = now_ms();
        let i = &self.inner;
        let _one_at_a_time = i.scrape.lock().unwrap_or_else(|e| e.into_inner());
        i.trials.reset();
        let mut running = 0;
        for (sweep, name, state, n) in &census.trials {
            i.trials.with_label_values(&[sweep.as_str(), name.as_str(), state.as_str()]).set(*n as i64);
            if *state == crate::store::TrialState::Running {
                running += n;
            }
        }
        i.attempts.reset();
        for (outcome, n) in &census.attempts {
            i.attempts.with_label_values(&[outcome.as_str()]).inc_by(*n);
        }
        i.leasable.set(census.leasable as i64);
        i.leases_running.set(running as i64);
        let alive = workers.iter().filter(|w| clocks.worker_alive(w.last_seen_at, now)).count();
        i.workers.with_label_values(&["true"]).set(alive as i64);
        i.workers.with_label_values(&["false"]).set((workers.len() - alive) as i64);
        let mut text = Vec::new();
        TextEncoder::new()
            .encode(&i.registry.gather(), &mut text)
            .map_err(|e| anyhow::anyhow!("cannot encode the metrics: {e}"))?;
        Ok(String::from_utf8_lossy(&text).into_owned())
    }
}
