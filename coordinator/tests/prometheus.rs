//! `/metrics` scraped by a real Prometheus server (Debian's `prometheus`, installed by
//! `scripts/setup-web-tests.sh`) during a sweep with real workers; then Prometheus's own
//! HTTP API is asked for the trial and attempt counters, and they are the database's.
//! Also: every metric the README lists and the Grafana dashboard queries is exposed.

#![allow(clippy::unwrap_used)]

mod common;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use allsweep_proto::v1 as pb;
use allsweep_testkit::SyntheticSpec;
use common::http::get;
use common::*;

const LONG: Duration = Duration::from_secs(300);

struct Prometheus {
    child: Child,
    url: String,
}

impl Prometheus {
    /// A Prometheus scraping `target` (HOST:PORT) every second, its data in `dir`.
    async fn start(dir: &std::path::Path, target: &str) -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let config = dir.join("prometheus.yml");
        std::fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n  - job_name: allsweep\n    static_configs:\n      - targets: ['{target}']\n"
            ),
        )
        .unwrap();
        let log = std::fs::File::create(dir.join("prometheus.log")).unwrap();
        let child = Command::new("prometheus")
            .arg(format!("--config.file={}", config.display()))
            .arg(format!("--storage.tsdb.path={}", dir.join("tsdb").display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(Stdio::from(log.try_clone().unwrap()))
            .stderr(Stdio::from(log))
            .spawn()
            .expect("prometheus (Debian's package: scripts/setup-web-tests.sh installs it)");
        let url = format!("http://127.0.0.1:{port}");
        let start = Instant::now();
        loop {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
                && get(&format!("{url}/-/ready"), &[]).await.status == 200
            {
                break;
            }
            assert!(start.elapsed() < Duration::from_secs(60), "prometheus did not start; see prometheus.log");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        Self { child, url }
    }

    /// The value of instant query `promql`'s single series, if it has one.
    async fn value(&self, promql: &str) -> Option<f64> {
        let encoded: String = promql
            .bytes()
            .map(|b| if b.is_ascii_alphanumeric() || b == b'_' { (b as char).to_string() } else { format!("%{b:02X}") })
            .collect();
        let reply = get(&format!("{}/api/v1/query?query={encoded}", self.url), &[]).await;
        let body: serde_json::Value = serde_json::from_slice(&reply.body).ok()?;
        let result = body["data"]["result"].as_array()?;
        if result.len() != 1 {
            return None;
        }
        result[0]["value"][1].as_str()?.parse().ok()
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_scrapes_the_trial_counters_during_a_sweep() {
    let cluster = Cluster::sqlite("metrics", &["--http", "127.0.0.1:0", "--metrics-open"]);
    let dashboard = cluster.coordinator.dashboard.clone().unwrap();
    let target = dashboard.trim_start_matches("http://").to_string();
    let prometheus = Prometheus::start(cluster.dir.path(), &target).await;

    let mut client = cluster.client().await;
    let spec = SyntheticSpec::new("scraped").seeds(0..3).epochs(2).grid("train.lr", "[3e-3, 1e-3]").to_toml();
    let id = submit(&mut client, &spec).await.sweep_id;
    // Scraped while queued: six trials waiting, none running.
    let queued = format!("allsweep_trials{{sweep=\"{id}\",state=\"queued\"}}");
    let seen = wait_value(&prometheus, &queued, |v| v == 6.0).await;
    assert_eq!(seen, 6.0);
    let _w = cluster.worker("w", &[]);
    let done = wait_for(&mut client, &id, LONG, |s| s.state() != pb::SweepState::Active).await;
    assert_eq!(done.completed, 6);

    // What Prometheus stored from its scrapes is what the database holds.
    let completed = format!("allsweep_trials{{sweep=\"{id}\",state=\"completed\"}}");
    assert_eq!(wait_value(&prometheus, &completed, |v| v == 6.0).await, 6.0);
    let attempts = "allsweep_attempts_total{outcome=\"completed\"}";
    assert_eq!(wait_value(&prometheus, attempts, |v| v == 6.0).await, 6.0);
    let completes = "allsweep_grpc_requests_total{method=\"/allsweep.v1.WorkerService/Complete\",code=\"Ok\"}";
    assert_eq!(wait_value(&prometheus, completes, |v| v == 6.0).await, 6.0);
    assert_eq!(wait_value(&prometheus, "allsweep_queue_depth", |v| v == 0.0).await, 0.0);
    let alive = "allsweep_workers{alive=\"true\"}";
    assert_eq!(wait_value(&prometheus, alive, |v| v == 1.0).await, 1.0);
    // Two epochs of several metrics per trial: points were stored, none twice.
    let store = cluster.store().await;
    let mut in_db = 0;
    for t in store.trials(&id).await.unwrap() {
        in_db += store.metric_points(&t.id).await.unwrap().len();
    }
    assert!(in_db >= 6 * 2 * 4, "several metrics per epoch: {in_db}");
    let points = "allsweep_metric_points_total{result=\"stored\"}";
    let stored = wait_value(&prometheus, points, |v| v == in_db as f64).await;
    assert_eq!(stored, in_db as f64, "every point stored counted once");
    let latency = "sum(allsweep_db_transaction_duration_seconds_count{operation=\"complete\"})";
    assert_eq!(wait_value(&prometheus, latency, |v| v == 6.0).await, 6.0);

    // Every metric named in the README and the Grafana dashboard is exposed.
    let exposed = get(&format!("{dashboard}/metrics"), &[]).await.text();
    let dashboard_json = include_str!("../../deploy/grafana/allsweep-dashboard.json");
    let mut named: Vec<&str> = Vec::new();
    for word in dashboard_json.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')) {
        if word.starts_with("allsweep_") && !named.contains(&word) {
            named.push(word);
        }
    }
    assert!(named.len() >= 8, "the dashboard queries the coordinator's metrics: {named:?}");
    for name in named {
        let family = name.trim_end_matches("_bucket").trim_end_matches("_count").trim_end_matches("_sum");
        assert!(exposed.contains(&format!("# TYPE {family} ")), "{name} (the Grafana dashboard) is not exposed");
    }
}

/// Polls Prometheus until `query` has a value `accept` takes (scrapes come every second).
async fn wait_value(prometheus: &Prometheus, query: &str, accept: impl Fn(f64) -> bool) -> f64 {
    let start = Instant::now();
    let mut last = None;
    while start.elapsed() < Duration::from_secs(60) {
        last = prometheus.value(query).await;
        if let Some(v) = last.filter(|v| accept(*v)) {
            return v;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    panic!("Prometheus never gave an accepted value for {query}; last {last:?}")
}
