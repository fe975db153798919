//! One backend's leg of the suite: its databases made, the fault-free run, the faulted run,
//! every check, and the report. The run's directory (logs, artifacts, SQLite files) is kept
//! and named in the report when anything was violated.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::Context;
use sqlx::Row;

use crate::checks::{self, Check};
use crate::compare;
use crate::costs;
use crate::db::Db;
use crate::effects;
use crate::netns::Namespace;
use crate::plan;
use crate::postgres::PrivatePostgres;
use crate::report::BackendReport;
use crate::run::{self, Outcome, Setup};
use crate::Options;

/// Where the coordinator keeps its state.
#[derive(Debug, Clone)]
pub enum Backend {
    /// A SQLite file per run.
    Sqlite,
    /// A Postgres server of the suite's own from these binaries, which it restarts.
    PrivatePostgres { bin_dir: PathBuf },
    /// Throwaway databases on a shared server (ADMIN URL); no restarts.
    SharedPostgres { admin_url: String },
}

impl Backend {
    pub fn name(&self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::PrivatePostgres { .. } => "postgres (private)",
            Backend::SharedPostgres { .. } => "postgres (shared)",
        }
    }
}

/// The fault-free run, then the faulted one, on `backend`; then every check.
pub async fn run_backend(backend: &Backend, options: &Options) -> anyhow::Result<BackendReport> {
    let dir = tempfile::Builder::new().prefix("allsweep-chaos-").tempdir()?;
    let mut faults = options.faults;
    let private = match backend {
        Backend::PrivatePostgres { bin_dir } => Some(PrivatePostgres::start(bin_dir)?),
        _ => None,
    };
    if private.is_none() {
        (faults.postgres_fast, faults.postgres_immediate) = (0, 0);
    }
    let mut throwaways = Vec::new();
    let sqlite_url = |name: &str| format!("sqlite://{}", dir.path().join(format!("{name}.db")).display());
    let (fault_free_url, chaos_url) = match (backend, &private) {
        (Backend::PrivatePostgres { .. }, Some(pg)) => {
            (pg.create_database("fault_free").await?, pg.create_database("chaos").await?)
        }
        (Backend::SharedPostgres { admin_url }, _) => {
            for _ in 0..2 {
                throwaways.push(allsweep_testkit::ThrowawayPostgres::create_on(admin_url).await?);
            }
            (throwaways[0].url().to_string(), throwaways[1].url().to_string())
        }
        _ => (sqlite_url("fault-free"), sqlite_url("chaos")),
    };
    let mut netns = match faults.partitions {
        0 => None,
        _ => Some(Namespace::create()?),
    };
    let workers = options.workers + usize::from(netns.is_some());

    eprintln!("chaos [{}]: the fault-free run ({} trials, {workers} workers)", backend.name(), options.trials);
    let fault_free = run::run(Setup {
        options,
        db_url: fault_free_url.clone(),
        dir: dir.path().join("fault-free"),
        workers,
        plan: Vec::new(),
        postgres: None,
        netns: None,
    })
    .await
    .context("the fault-free run")?;

    let window = plan::fault_window(options.window, fault_free.wall);
    let planned = plan::plan(&faults, window, options.seed);
    eprintln!(
        "chaos [{}]: the faulted run, {} faults over {:.1} s (the fault-free run took {:.1} s; seed {})",
        backend.name(),
        planned.len(),
        window.as_secs_f64(),
        fault_free.wall.as_secs_f64(),
        options.seed
    );
    let chaos = run::run(Setup {
        options,
        db_url: chaos_url.clone(),
        dir: dir.path().join("chaos"),
        workers: options.workers,
        plan: planned,
        postgres: private.as_ref(),
        netns: netns.as_mut(),
    })
    .await
    .context("the faulted run")?;

    let chaos_db = Db::connect(&chaos_url).await?;
    let fault_free_db = Db::connect(&fault_free_url).await?;
    let mut all = vec![fault_free_clean(&fault_free_db, options, &fault_free).await?];
    all.extend(checks::store_invariants(&chaos_db, options.trials, &chaos.artifacts, &chaos.observations).await?);
    let (compared, max_diff) = compare::against_fault_free(&chaos_db, &fault_free_db, options.tolerance).await?;
    all.extend(compared);
    all.extend(effects::checks(&chaos_db, &chaos, faults.total()).await?);
    let attempts = attempt_outcomes(&chaos_db).await?;
    let resumed = chaos_db.count("SELECT count(*) FROM attempts WHERE resumed_from_epoch IS NOT NULL").await?;
    let leaked = leaked_files(&chaos_db, &chaos.artifacts).await?;
    let costs = costs::measure(&chaos_db, &chaos, leaked).await?;
    all.extend(costs.checks(attempts.values().sum::<i64>() as u64));
    chaos_db.close().await;
    fault_free_db.close().await;
    drop(netns);
    drop(private);

    let violations: usize = all.iter().map(|c| c.violations.len()).sum();
    let kept = (violations > 0 || options.keep).then(|| dir.keep());
    Ok(BackendReport {
        backend: backend.name().to_string(),
        seed: options.seed,
        trials: options.trials,
        epochs: options.epochs,
        workers: options.workers,
        injected: chaos.injected,
        checks: all,
        fault_free_wall: fault_free.wall,
        chaos_wall: chaos.wall,
        fault_free_rss_kib: fault_free.peak_rss_kib,
        chaos_rss_kib: chaos.peak_rss_kib,
        max_diff,
        attempts,
        resumed,
        costs,
        workers_started: chaos.workers_started,
        clean_leaves: chaos.clean_leaves,
        kept,
    })
}

/// The fault-free run finished without incident and completed every trial exactly once:
/// what the faulted run is compared against.
async fn fault_free_clean(db: &Db, options: &Options, run: &Outcome) -> anyhow::Result<Check> {
    let mut check = checks::store_invariants(db, options.trials, &run.artifacts, &run.observations)
        .await?
        .into_iter()
        .fold(Check { name: "the fault-free run is clean", checked: 0, violations: Vec::new() }, |mut all, c| {
            all.checked += c.checked;
            all.violations.extend(c.violations.into_iter().map(|v| format!("fault-free: {v}")));
            all
        });
    check.violations.extend(run.findings.iter().map(|f| format!("fault-free: {f}")));
    for row in db.rows("SELECT trial_id, attempt, outcome FROM attempts WHERE outcome <> 'completed'").await? {
        let (trial, attempt, outcome): (String, i64, String) = (row.try_get(0)?, row.try_get(1)?, row.try_get(2)?);
        check.violations.push(format!("fault-free: trial {trial}: attempt {attempt} ended {outcome}"));
    }
    Ok(check)
}

async fn attempt_outcomes(db: &Db) -> anyhow::Result<BTreeMap<String, i64>> {
    let mut outcomes = BTreeMap::new();
    for row in db.rows("SELECT outcome, count(*) FROM attempts GROUP BY outcome").await? {
        outcomes.insert(row.try_get(0)?, row.try_get(1)?);
    }
    Ok(outcomes)
}

/// Files in the artifact directory that no checkpoint row names (upload leftovers), sorted.
async fn leaked_files(db: &Db, artifacts: &std::path::Path) -> anyhow::Result<Vec<String>> {
    let named: Vec<String> =
        db.rows("SELECT file FROM checkpoints").await?.iter().map(|r| r.try_get(0)).collect::<Result<_, _>>()?;
    let Ok(entries) = std::fs::read_dir(artifacts) else { return Ok(Vec::new()) };
    let mut leaked: Vec<String> = entries
        .filter_map(Result::ok)
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|name| !named.contains(name))
        .collect();
    leaked.sort();
    Ok(leaked)
}
