//! The real processes under test: `allsweep serve` (killed and restarted on the same
//! database and address, its peak memory read from `/proc` before each death) and
//! `allsweep-worker` (optionally inside a network namespace). Each logs to its own file in
//! the run's directory, which the suite keeps when something went wrong.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

/// How the coordinator is started, kept to start it again after a kill.
#[derive(Debug, Clone)]
pub struct CoordinatorConfig {
    pub binary: PathBuf,
    pub db: String,
    /// `HOST:PORT`; port 0 on the first start, the bound port afterwards.
    pub listen: String,
    pub artifacts: PathBuf,
    pub lease_seconds: f64,
    pub log: PathBuf,
}

/// A running `allsweep serve`, restarted in place by [`Coordinator::kill_and_restart`].
pub struct Coordinator {
    config: CoordinatorConfig,
    child: Child,
    /// The highest VmHWM (peak resident set) seen over every incarnation, in KiB.
    peak_rss_kib: u64,
    /// The incarnation's start, to tell how long the last restart took.
    pub started: Instant,
}

impl Coordinator {
    /// Starts the coordinator and waits until it says where it listens.
    pub fn start(mut config: CoordinatorConfig) -> anyhow::Result<Self> {
        let (child, bound) = spawn(&config)?;
        config.listen = bound;
        Ok(Self { config, child, peak_rss_kib: 0, started: Instant::now() })
    }

    /// `http://HOST:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.config.listen)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Reads the live process's VmHWM into the peak.
    pub fn sample_rss(&mut self) {
        if let Some(kib) = peak_rss_kib(self.child.id()) {
            self.peak_rss_kib = self.peak_rss_kib.max(kib);
        }
    }

    /// The peak resident set over every incarnation so far, in KiB.
    pub fn peak_rss_kib(&self) -> u64 {
        self.peak_rss_kib
    }

    /// The exit status if the coordinator exited (it never should by itself).
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// SIGKILL, then a new coordinator on the same database and address. Retries the start
    /// for up to 30 s (the address may take a moment to free).
    pub fn kill_and_restart(&mut self) -> anyhow::Result<()> {
        self.sample_rss();
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.restart()
    }

    /// Starts a new incarnation after the last one died (killed here or by itself).
    pub fn restart(&mut self) -> anyhow::Result<()> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            match spawn(&self.config) {
                Ok((child, _)) => {
                    self.child = child;
                    self.started = Instant::now();
                    return Ok(());
                }
                Err(e) if Instant::now() > deadline => return Err(e.context("restarting the coordinator")),
                Err(_) => std::thread::sleep(Duration::from_millis(250)),
            }
        }
    }

    /// SIGTERM and wait (the way an operator stops it), after a last memory sample.
    pub fn stop(&mut self) {
        self.sample_rss();
        signal(self.child.id(), "TERM");
        if wait_exit(&mut self.child, Duration::from_secs(20)).is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

impl Drop for Coordinator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Spawns `allsweep serve` and reads its first line (`... listening on ADDR`) for up to 30 s;
/// a thread keeps draining stdout afterwards so the coordinator never writes to a closed pipe.
fn spawn(config: &CoordinatorConfig) -> anyhow::Result<(Child, String)> {
    let mut child = Command::new(&config.binary)
        .args(["serve", "--db", &config.db, "--listen", &config.listen, "--artifacts"])
        .arg(&config.artifacts)
        .args(["--lease-seconds", &config.lease_seconds.to_string()])
        .env("RUST_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::from(append(&config.log)?))
        .spawn()
        .with_context(|| format!("cannot start {}", config.binary.display()))?;
    let stdout = child.stdout.take().context("no stdout")?;
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut lines = BufReader::new(stdout).lines();
        let _ = tx.send(lines.next().and_then(Result::ok));
        for _ in lines {}
    });
    match rx.recv_timeout(Duration::from_secs(30)) {
        Ok(Some(line)) if line.contains("listening on") => {
            let bound = line.trim().rsplit(' ').next().unwrap_or_default().to_string();
            Ok((child, bound))
        }
        other => {
            let _ = child.kill();
            let _ = child.wait();
            bail!("the coordinator did not start (first line {other:?}); see {}", config.log.display())
        }
    }
}

/// A running `allsweep-worker` training on CPU with one thread and one slot.
pub struct Worker {
    child: Child,
    pub name: String,
    pub log: PathBuf,
    pub started: Instant,
    /// The signal the suite sent it, if any: an exit without one is a crash.
    pub signalled: Option<&'static str>,
    /// When it was sent SIGTERM, to bound how long it may take to leave.
    pub signalled_at: Option<Instant>,
}

/// The work directory the workers of a run share.
pub fn work_root(dir: &Path) -> PathBuf {
    dir.join("work")
}

impl Worker {
    /// Starts a worker of the coordinator at `url`, in the namespace `netns` if given, its
    /// log `NAME.log` under `dir`; every worker shares the work directory `dir/work`, as the
    /// workers of one host do.
    pub fn start(binary: &Path, url: &str, dir: &Path, name: &str, netns: Option<&str>) -> anyhow::Result<Self> {
        let log = dir.join(format!("{name}.log"));
        let mut command = match netns {
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns]).arg(binary);
                c
            }
            None => Command::new(binary),
        };
        let child = command
            .args(["--coordinator", url, "--device", "cpu", "--threads", "1", "--slots", "1", "--work-dir"])
            .arg(work_root(dir))
            .env("RUST_LOG", "info")
            .stdout(Stdio::from(append(&log)?))
            .stderr(Stdio::from(append(&log)?))
            .spawn()
            .with_context(|| format!("cannot start {}", binary.display()))?;
        Ok(Self { child, name: name.to_string(), log, started: Instant::now(), signalled: None, signalled_at: None })
    }

    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// Sends `SIGKILL` or `SIGTERM` (`"KILL"`, `"TERM"`).
    pub fn signal(&mut self, name: &'static str) {
        signal(self.child.id(), name);
        self.signalled = Some(name);
        self.signalled_at = Some(Instant::now());
    }

    /// What the worker logged so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Whether it has started training a trial (it says `training` in its log).
    pub fn has_trained(&self) -> bool {
        self.log_text().contains(": training ")
    }

    /// The worker id the coordinator gave it (`registered worker=ID` in its log).
    pub fn worker_id(&self) -> Option<String> {
        let text = self.log_text();
        let rest = text.split("registered worker=").nth(1)?;
        Some(rest.split_whitespace().next()?.to_string())
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn signal(pid: u32, name: &str) {
    let _ = Command::new("kill").args([&format!("-{name}"), &pid.to_string()]).status();
}

fn wait_exit(child: &mut Child, timeout: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if let Ok(Some(status)) = child.try_wait() {
            return Some(status);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    None
}

fn append(path: &Path) -> anyhow::Result<std::fs::File> {
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .with_context(|| format!("cannot open {}", path.display()))
}

/// The process's peak resident set (`VmHWM` in `/proc/PID/status`), in KiB.
pub fn peak_rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_peak_resident_set_of_this_process_is_read_from_proc() {
        let kib = peak_rss_kib(std::process::id()).expect("VmHWM of this process");
        assert!(kib > 100, "{kib} KiB");
    }
}
