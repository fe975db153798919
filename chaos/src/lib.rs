//! allsweep's fault-injection suite. It trains a small synthetic sweep with the real
//! `allsweep serve` and real `allsweep-worker` processes twice on the same backend: once
//! without faults, then under a seeded plan of faults (workers killed and sent SIGTERM, the
//! coordinator killed and restarted, Postgres restarted fast and immediately, a worker cut
//! off for longer than its lease), and afterwards checks with SQL that nothing was lost,
//! doubled or left behind and that every number equals the fault-free run's. `make chaos`
//! runs the full counts ([`FaultCounts::FULL`]) on SQLite and a private Postgres
//! (`allsweep-chaos`); `coordinator/tests/chaos.rs` runs a short version in `make test`.

pub mod checks;
pub mod compare;
pub mod costs;
pub mod db;
mod effects;
pub mod netns;
pub mod observer;
pub mod plan;
pub mod pool;
pub mod postgres;
pub mod processes;
pub mod report;
mod run;
mod suite;

use std::path::PathBuf;
use std::time::Duration;

pub use plan::{Fault, FaultCounts, StopMode};
pub use report::BackendReport;
pub use suite::{run_backend, Backend};

impl FaultCounts {
    /// The full suite's counts (issue 9): 100 worker SIGKILLs, 20 SIGTERMs, 10 coordinator
    /// SIGKILLs, 3 Postgres restarts of each mode, 1 partition.
    pub const FULL: FaultCounts = FaultCounts {
        worker_kills: 100,
        worker_terms: 20,
        coordinator_kills: 10,
        postgres_fast: 3,
        postgres_immediate: 3,
        partitions: 1,
    };
}

/// One run's sweep, workers, faults and limits.
#[derive(Debug, Clone)]
pub struct Options {
    /// Seeds the fault times, their order and the choice of victims.
    pub seed: u64,
    pub faults: FaultCounts,
    /// Trials in the sweep (one config, this many seeds).
    pub trials: u32,
    pub epochs: u32,
    /// Synthetic images per trial: the size of an epoch.
    pub images: u32,
    /// Workers on the host, each with one slot and one thread (plus the partitioned one).
    pub workers: usize,
    pub lease_seconds: f64,
    /// The faults are spread over this long from the first lease on, or over
    /// [`plan::WINDOW_SHARE`] of the fault-free run's wall time where that is shorter.
    pub window: Duration,
    /// How long a partition lasts: longer than the lease.
    pub partition: Duration,
    /// A run that has not finished after this long is a violation.
    pub timeout: Duration,
    /// Largest allowed difference from the fault-free run's numbers.
    pub tolerance: f64,
    /// Keep the run's directory (logs, artifacts, SQLite files) even when nothing was violated.
    pub keep: bool,
    pub coordinator_binary: PathBuf,
    pub worker_binary: PathBuf,
}

impl Options {
    /// The spec both runs submit. `max_attempts` is the most a spec may ask for: a hundred
    /// kills land on a few dozen trials, and an attempt used up is not what is under test.
    pub fn spec_toml(&self) -> String {
        let text = allsweep_testkit::SyntheticSpec::new("chaos")
            .seeds(0..u64::from(self.trials))
            .epochs(self.epochs)
            .images(self.images)
            .to_toml();
        text.replacen("\n[dataset]", "max_attempts = 100\n\n[dataset]", 1)
    }

    /// `allsweep` and `allsweep-worker` beside the running executable (`target/release`).
    pub fn binaries_beside_me() -> anyhow::Result<(PathBuf, PathBuf)> {
        let me = std::env::current_exe()?;
        let dir = me.parent().map(PathBuf::from).unwrap_or_default();
        Ok((dir.join("allsweep"), dir.join("allsweep-worker")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_spec_asks_for_the_most_attempts_and_keeps_its_sweep() {
        let (coordinator_binary, worker_binary) = (PathBuf::new(), PathBuf::new());
        let options = Options {
            seed: 1,
            faults: FaultCounts::FULL,
            trials: 3,
            epochs: 4,
            images: 16,
            workers: 2,
            lease_seconds: 3.0,
            window: Duration::from_secs(1),
            partition: Duration::from_secs(1),
            timeout: Duration::from_secs(1),
            tolerance: 1e-6,
            keep: false,
            coordinator_binary,
            worker_binary,
        };
        let text = options.spec_toml();
        let spec: toml::Table = text.parse().expect("valid TOML");
        assert_eq!(spec["max_attempts"].as_integer(), Some(100));
        assert_eq!(spec["seeds"].as_array().map(Vec::len), Some(3));
        assert_eq!(spec["train"]["epochs"].as_integer(), Some(4));
    }
}
