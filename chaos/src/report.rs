//! What a leg of the suite found, and the tables it prints (Markdown, as the README keeps
//! them): faults injected by kind, invariants and what they covered, violations, the
//! faulted run's wall time against the fault-free run's, and the coordinator's peak memory.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use comfy_table::presets::ASCII_MARKDOWN;
use comfy_table::Table;

use crate::checks::Check;
use crate::costs::Costs;
use crate::plan::{Fault, StopMode};

/// One backend's results.
#[derive(Debug)]
pub struct BackendReport {
    pub backend: String,
    pub seed: u64,
    pub trials: u32,
    pub epochs: u32,
    pub workers: usize,
    pub injected: BTreeMap<Fault, u32>,
    pub checks: Vec<Check>,
    pub fault_free_wall: Duration,
    pub chaos_wall: Duration,
    pub fault_free_rss_kib: u64,
    pub chaos_rss_kib: u64,
    /// Largest absolute difference from the fault-free run over every compared number.
    pub max_diff: f64,
    /// Attempts of the faulted run by outcome.
    pub attempts: BTreeMap<String, i64>,
    /// Attempts that resumed from a checkpoint.
    pub resumed: i64,
    /// Expiries of live workers, epochs re-run, orphaned files.
    pub costs: Costs,
    pub workers_started: u32,
    /// Workers sent SIGTERM that left cleanly within a minute.
    pub clean_leaves: u32,
    /// The run's directory, kept because something was violated (or `--keep`).
    pub kept: Option<PathBuf>,
}

impl BackendReport {
    pub fn violations(&self) -> usize {
        self.checks.iter().map(|c| c.violations.len()).sum()
    }

    fn injected(&self, fault: Fault) -> u32 {
        self.injected.get(&fault).copied().unwrap_or(0)
    }
}

/// The summary table, one row per backend.
pub fn summary(reports: &[BackendReport]) -> String {
    let mut table = Table::new();
    table.load_preset(ASCII_MARKDOWN).set_header([
        "backend",
        "worker SIGKILL",
        "worker SIGTERM",
        "coordinator SIGKILL",
        "pg restart fast",
        "pg restart immediate",
        "partition > lease",
        "leases expired by infrastructure",
        "work lost: finished epochs trained again (live workers' attempts / killed or cut-off ones)",
        "orphaned files (coordinator / workers)",
        "invariants (items checked)",
        "violations",
        "wall fault-free",
        "wall with faults",
        "slowdown",
        "coordinator peak RSS fault-free / with faults",
        "max diff vs fault-free",
    ]);
    for r in reports {
        let items: u64 = r.checks.iter().map(|c| c.checked).sum();
        table.add_row([
            r.backend.clone(),
            r.injected(Fault::KillWorker).to_string(),
            r.injected(Fault::TermWorker).to_string(),
            r.injected(Fault::KillCoordinator).to_string(),
            r.injected(Fault::RestartPostgres(StopMode::Fast)).to_string(),
            r.injected(Fault::RestartPostgres(StopMode::Immediate)).to_string(),
            r.injected(Fault::Partition).to_string(),
            r.costs.infrastructure_expiries.len().to_string(),
            format!("{} / {}", r.costs.epochs_rerun_after_live, r.costs.epochs_rerun_after_worker_faults),
            format!("{} / {}", r.costs.orphaned_on_coordinator.len(), r.costs.orphaned_on_workers.len()),
            format!("{} ({items})", r.checks.len()),
            r.violations().to_string(),
            format!("{:.1} s", r.fault_free_wall.as_secs_f64()),
            format!("{:.1} s", r.chaos_wall.as_secs_f64()),
            format!("{:.2}x", r.chaos_wall.as_secs_f64() / r.fault_free_wall.as_secs_f64().max(1e-9)),
            format!("{:.1} / {:.1} MiB", r.fault_free_rss_kib as f64 / 1024.0, r.chaos_rss_kib as f64 / 1024.0),
            format!("{:e}", r.max_diff),
        ]);
    }
    table.to_string()
}

/// Each invariant with what it checked and its violations, one column pair per backend.
pub fn invariants(reports: &[BackendReport]) -> String {
    let mut table = Table::new();
    let mut header = vec!["invariant".to_string()];
    for r in reports {
        header.push(format!("{}: checked", r.backend));
        header.push(format!("{}: violations", r.backend));
    }
    table.load_preset(ASCII_MARKDOWN).set_header(header);
    let names: Vec<&str> = reports.first().map(|r| r.checks.iter().map(|c| c.name).collect()).unwrap_or_default();
    for name in names {
        let mut row = vec![name.to_string()];
        for r in reports {
            let check = r.checks.iter().find(|c| c.name == name);
            row.push(check.map_or("-".into(), |c| c.checked.to_string()));
            row.push(check.map_or("-".into(), |c| c.violations.len().to_string()));
        }
        table.add_row(row);
    }
    table.to_string()
}

/// A few lines per backend: the sweep, the attempts, and every violation (at most 20 per
/// invariant) with where the run's files were kept.
pub fn details(r: &BackendReport) -> String {
    let mut out = format!(
        "{}: {} trials x {} epochs, {} workers (+1 in the namespace when partitioned), seed {}; {} workers started, {} left cleanly on SIGTERM; \
         attempts {:?}, {} resumed from a checkpoint, {} expired during an outage (cause outage); {} + {} orphaned files\n",
        r.backend,
        r.trials,
        r.epochs,
        r.workers,
        r.seed,
        r.workers_started,
        r.clean_leaves,
        r.attempts,
        r.resumed,
        r.costs.outage_expiries,
        r.costs.orphaned_on_coordinator.len(),
        r.costs.orphaned_on_workers.len()
    );
    for check in r.checks.iter().filter(|c| !c.violations.is_empty()) {
        out.push_str(&format!("  VIOLATED: {} ({} violations)\n", check.name, check.violations.len()));
        for v in check.violations.iter().take(20) {
            out.push_str(&format!("    - {v}\n"));
        }
    }
    if let Some(dir) = &r.kept {
        out.push_str(&format!("  logs, artifacts and databases kept in {}\n", dir.display()));
    }
    out
}
