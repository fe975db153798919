//! The workers of one run: a fixed number on the host, replaced as soon as one dies so the
//! sweep keeps going, plus optionally one inside the partition's network namespace. Every
//! exit is accounted for: a worker that exits without having been signalled, or that takes
//! too long (or fails) to leave after SIGTERM, is a finding.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rand::Rng;

use crate::processes::Worker;

/// How long a worker sent SIGTERM may take to checkpoint, upload, hand back and exit.
pub const LEAVE_WITHIN: Duration = Duration::from_secs(60);

/// The run's workers.
pub struct Pool {
    binary: PathBuf,
    dir: PathBuf,
    /// The coordinator's URL as the workers reach it.
    url: String,
    /// Host workers kept alive (not counting those leaving after SIGTERM).
    size: usize,
    host: Vec<Worker>,
    /// The worker inside `netns`, if the run has one.
    pub partitioned: Option<Worker>,
    netns: Option<String>,
    started: u32,
    /// Exits the suite did not cause, and SIGTERMs not answered by a clean, prompt exit.
    pub findings: Vec<String>,
    /// Workers sent SIGTERM that left cleanly within [`LEAVE_WITHIN`].
    pub clean_leaves: u32,
}

impl Pool {
    pub fn new(binary: &Path, dir: &Path, url: String, size: usize, netns: Option<String>) -> Self {
        Self {
            binary: binary.to_path_buf(),
            dir: dir.to_path_buf(),
            url,
            size,
            host: Vec::new(),
            partitioned: None,
            netns,
            started: 0,
            findings: Vec::new(),
            clean_leaves: 0,
        }
    }

    /// Reaps exited workers (noting any exit the suite did not ask for) and starts new ones
    /// until `size` host workers (and the namespace's worker) are alive.
    pub fn maintain(&mut self) -> anyhow::Result<()> {
        let mut kept = Vec::with_capacity(self.host.len());
        for mut worker in self.host.drain(..) {
            match (worker.exited(), worker.signalled, worker.signalled_at) {
                (None, Some("TERM"), Some(at)) if at.elapsed() > LEAVE_WITHIN => {
                    self.findings.push(format!(
                        "{} did not leave within {} s of SIGTERM (see {})",
                        worker.name,
                        LEAVE_WITHIN.as_secs(),
                        worker.log.display()
                    ));
                }
                (None, _, _) => kept.push(worker),
                (Some(_), Some("KILL"), _) => {}
                (Some(status), Some("TERM"), _) if status.success() => self.clean_leaves += 1,
                (Some(status), signal, _) => self.findings.push(format!(
                    "{} exited with {status} (signal sent: {}; see {})",
                    worker.name,
                    signal.unwrap_or("none"),
                    worker.log.display()
                )),
            }
        }
        self.host = kept;
        while self.host.iter().filter(|w| w.signalled.is_none()).count() < self.size {
            let worker = self.spawn(None)?;
            self.host.push(worker);
        }
        if let Some(ns) = self.netns.clone() {
            if let Some(status) = self.partitioned.as_mut().and_then(Worker::exited) {
                let name = self.partitioned.as_ref().map(|w| w.name.clone()).unwrap_or_default();
                self.findings.push(format!("{name} (in the namespace) exited with {status}"));
                self.partitioned = None;
            }
            if self.partitioned.is_none() {
                self.partitioned = Some(self.spawn(Some(&ns))?);
            }
        }
        Ok(())
    }

    fn spawn(&mut self, netns: Option<&str>) -> anyhow::Result<Worker> {
        self.started += 1;
        let name = match netns {
            Some(_) => format!("worker-{}-netns", self.started),
            None => format!("worker-{}", self.started),
        };
        Worker::start(&self.binary, &self.url, &self.dir, &name, netns)
    }

    /// A random host worker that has been training for at least `min_age`, not yet signalled.
    pub fn pick_victim(&mut self, rng: &mut impl Rng, min_age: Duration) -> Option<&mut Worker> {
        let eligible: Vec<usize> = (0..self.host.len())
            .filter(|&i| {
                let w = &self.host[i];
                w.signalled.is_none() && w.started.elapsed() >= min_age && w.has_trained()
            })
            .collect();
        if eligible.is_empty() {
            return None;
        }
        let i = eligible[rng.random_range(0..eligible.len())];
        Some(&mut self.host[i])
    }

    /// Removes the workers' shared work directory (their logs stay): a kept run's directory
    /// would otherwise hold whatever the last killed workers left there.
    pub fn remove_work_dir(&self) {
        let _ = std::fs::remove_dir_all(crate::processes::work_root(&self.dir));
    }

    /// Workers started over the run, replacements included.
    pub fn started(&self) -> u32 {
        self.started
    }

    /// Waits up to `grace` for workers sent SIGTERM to leave (noting the outcome), then
    /// kills every worker.
    pub fn shut_down(&mut self, grace: Duration) {
        let deadline = Instant::now() + grace;
        while Instant::now() < deadline
            && self.host.iter_mut().any(|w| w.signalled == Some("TERM") && w.exited().is_none())
        {
            std::thread::sleep(Duration::from_millis(100));
        }
        for w in &mut self.host {
            if w.signalled == Some("TERM") {
                match w.exited() {
                    Some(status) if status.success() => self.clean_leaves += 1,
                    Some(status) => self.findings.push(format!("{} exited with {status} after SIGTERM", w.name)),
                    None => self.findings.push(format!("{} did not leave after SIGTERM", w.name)),
                }
            } else if let Some(status) = w.exited() {
                if w.signalled.is_none() {
                    self.findings.push(format!("{} exited with {status} unasked (see {})", w.name, w.log.display()));
                }
            }
        }
        self.host.clear();
        self.partitioned = None;
    }
}
