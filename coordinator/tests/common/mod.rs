//! Test harness for the end-to-end tests: the real `allsweep serve` and real
//! `allsweep-worker` processes over TCP, against real SQLite files and a fresh Postgres
//! database per test (made by `allsweep_testkit`, which also writes the specs they submit).

#![allow(dead_code, clippy::unwrap_used)]

pub mod http;
pub mod in_process;
pub mod raw;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use allsweep_coordinator::client::{self, UserClient};
use allsweep_coordinator::store::{self, Store};
use allsweep_proto::v1 as pb;

pub fn coordinator_binary() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_allsweep"))
}

pub fn worker_binary() -> PathBuf {
    let path = coordinator_binary().with_file_name("allsweep-worker");
    assert!(path.exists(), "{} must be built (cargo build --workspace)", path.display());
    path
}

/// A running `allsweep serve`.
pub struct Coordinator {
    pub child: Child,
    pub address: String,
    pub db: String,
    pub dir: PathBuf,
    pub listen: String,
    /// The dashboard's URL, when started with `--http`.
    pub dashboard: Option<String>,
}

impl Coordinator {
    /// Starts a coordinator on `listen` (port 0 for any) with a short lease: 3 s, so that a
    /// killed worker's trial moves on within seconds while a live worker on a loaded 2-core
    /// machine (heartbeating every second) never loses its lease.
    pub fn start(db: &str, dir: &Path, listen: &str, extra: &[&str]) -> Self {
        let mut child = Command::new(coordinator_binary())
            .args(["serve", "--db", db, "--listen", listen, "--lease-seconds", "3", "--artifacts"])
            .arg(dir.join("artifacts"))
            .args(extra)
            .env("RUST_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log_file(dir, "coordinator")))
            .spawn()
            .expect("allsweep serve starts");
        let stdout = child.stdout.take().unwrap();
        let mut lines = BufReader::new(stdout);
        let mut line = String::new();
        lines.read_line(&mut line).unwrap();
        let bound = line.trim().rsplit(' ').next().unwrap_or_default().to_string();
        assert!(
            line.contains("listening on"),
            "coordinator said {line:?}; see {}",
            dir.join("coordinator.log").display()
        );
        let dashboard = extra.contains(&"--http").then(|| {
            let mut second = String::new();
            lines.read_line(&mut second).unwrap();
            assert!(second.contains("dashboard at"), "coordinator said {second:?}");
            second.trim().rsplit(' ').next().unwrap_or_default().to_string()
        });
        Self {
            child,
            address: format!("http://{bound}"),
            db: db.to_string(),
            dir: dir.to_path_buf(),
            listen: bound,
            dashboard,
        }
    }

    pub async fn client(&self) -> UserClient {
        client::user(&self.address, None).await.unwrap()
    }

    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Coordinator {
    fn drop(&mut self) {
        self.kill();
    }
}

fn log_file(dir: &Path, name: &str) -> std::fs::File {
    std::fs::OpenOptions::new().create(true).append(true).open(dir.join(format!("{name}.log"))).unwrap()
}

/// A coordinator on a store, with the temporary directory that holds its log, its artifacts
/// and its workers' directories. The coordinator is stopped before the directory goes.
pub struct Cluster {
    pub coordinator: Coordinator,
    pub db: String,
    pub dir: tempfile::TempDir,
}

impl Cluster {
    /// A coordinator on the store at `db`.
    pub fn start(db: &str, extra: &[&str]) -> Self {
        let dir = temp_dir();
        let coordinator = Coordinator::start(db, dir.path(), "127.0.0.1:0", extra);
        Self { coordinator, db: db.to_string(), dir }
    }

    /// A coordinator on a new SQLite database, `FILE.db` in the cluster's directory.
    pub fn sqlite(file: &str, extra: &[&str]) -> Self {
        let dir = temp_dir();
        let db = format!("sqlite://{}", dir.path().join(format!("{file}.db")).display());
        let coordinator = Coordinator::start(&db, dir.path(), "127.0.0.1:0", extra);
        Self { coordinator, db, dir }
    }

    /// Starts a worker of this coordinator, logging to `NAME.log`, its work directory `NAME/`.
    pub fn worker(&self, name: &str, extra: &[&str]) -> Worker {
        self.worker_in(name, name, extra)
    }

    /// Starts a worker with the work directory `WORK/` (shared by the workers given the same).
    pub fn worker_in(&self, name: &str, work: &str, extra: &[&str]) -> Worker {
        Worker::start(&self.coordinator.address, self.dir.path(), name, work, extra)
    }

    pub async fn client(&self) -> UserClient {
        self.coordinator.client().await
    }

    /// The coordinator's store, opened beside it.
    pub async fn store(&self) -> Arc<dyn Store> {
        open_store(&self.db).await
    }

    /// What `NAME` (a worker, or `coordinator`) has logged so far.
    pub fn log(&self, name: &str) -> String {
        std::fs::read_to_string(self.dir.path().join(format!("{name}.log"))).unwrap()
    }

    /// Kills the coordinator and starts a new one (without extra options) on the same database
    /// and address.
    pub async fn restart(&mut self) {
        self.coordinator.kill();
        tokio::time::sleep(Duration::from_millis(500)).await;
        let listen = self.coordinator.listen.clone();
        self.coordinator = Coordinator::start(&self.db, self.dir.path(), &listen, &[]);
    }
}

/// A running `allsweep-worker`.
pub struct Worker {
    pub child: Child,
    pub name: String,
}

impl Worker {
    pub fn start(coordinator: &str, dir: &Path, name: &str, work: &str, extra: &[&str]) -> Self {
        let child = Command::new(worker_binary())
            .args(["--coordinator", coordinator, "--device", "cpu", "--threads", "1", "--slots", "1", "--work-dir"])
            .arg(dir.join(work))
            .args(extra)
            .env("RUST_LOG", "info")
            .stdout(Stdio::from(log_file(dir, name)))
            .stderr(Stdio::from(log_file(dir, name)))
            .spawn()
            .expect("allsweep-worker starts");
        Self { child, name: name.to_string() }
    }

    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill").args([&format!("-{signal}"), &self.child.id().to_string()]).status().unwrap();
        assert!(status.success());
    }

    /// Waits for the process to exit; returns whether it did within `timeout`.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let start = Instant::now();
        while start.elapsed() < timeout {
            if let Some(status) = self.child.try_wait().unwrap() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub async fn submit(client: &mut UserClient, text: &str) -> pb::SubmitResponse {
    client.submit(pb::SubmitRequest { spec_toml: text.into() }).await.unwrap().into_inner()
}

/// The stored results of a sweep's completed trials.
pub async fn results(client: &mut UserClient, id: &str) -> Vec<pb::TrialResult> {
    let request = pb::SweepRequest { sweep_id: id.into(), ..Default::default() };
    client.query_results(request).await.unwrap().into_inner().results
}

pub async fn sweep(client: &mut UserClient, id: &str) -> pb::SweepStatus {
    client.get_sweep(pb::SweepRequest { sweep_id: id.into(), ..Default::default() }).await.unwrap().into_inner()
}

/// Polls until `done` holds (or panics after `timeout`, naming the last status).
pub async fn wait_for(
    client: &mut UserClient,
    id: &str,
    timeout: Duration,
    done: impl Fn(&pb::SweepStatus) -> bool,
) -> pb::SweepStatus {
    let start = Instant::now();
    loop {
        let s = sweep(client, id).await;
        if done(&s) {
            return s;
        }
        assert!(
            start.elapsed() < timeout,
            "timed out; last status: queued {} running {} completed {} failed {} {:?}",
            s.queued,
            s.running,
            s.completed,
            s.failed,
            s.trials.iter().map(|t| (t.state(), &t.error)).collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

pub async fn open_store(db: &str) -> Arc<dyn Store> {
    store::open(db).await.unwrap()
}

/// Every file under `dir` whose name ends with `suffix`, at any depth.
pub fn files_ending(dir: &Path, suffix: &str) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else { return found };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            found.extend(files_ending(&path, suffix));
        } else if path.to_string_lossy().ends_with(suffix) {
            found.push(path);
        }
    }
    found
}

pub fn temp_dir() -> tempfile::TempDir {
    tempfile::Builder::new().prefix("allsweep-e2e").tempdir().unwrap()
}
