//! What differs between SQLite and Postgres, and nothing else: how a write transaction
//! begins, which rows a transaction locks, the lease statement, whether a batch of per-trial
//! transitions commits as one transaction or trial by trial, the pool, and the migrations.
//! The store's body ([`super::SqlStore`]) is written once against these.

use std::time::Duration;

use sqlx::any::AnyPoolOptions;
use sqlx::AnyPool;
use sqlx::Executor;

use super::{Result, StoreError};
use crate::scheduler::LEASE_ORDER;

/// The migrations of one dialect, in order: (version, name, SQL).
pub type Migrations = &'static [(i64, &'static str, &'static str)];

const SQLITE_MIGRATIONS: Migrations = &[
    (1, "0001_schema", include_str!("../../../migrations/sqlite/0001_schema.sql")),
    (2, "0002_access", include_str!("../../../migrations/sqlite/0002_access.sql")),
    (3, "0003_attempt_cause", include_str!("../../../migrations/sqlite/0003_attempt_cause.sql")),
    (4, "0004_keras_metrics", include_str!("../../../migrations/sqlite/0004_keras_metrics.sql")),
    (5, "0005_memory_and_gpus", include_str!("../../../migrations/sqlite/0005_memory_and_gpus.sql")),
    (6, "0006_fused_groups", include_str!("../../../migrations/sqlite/0006_fused_groups.sql")),
    (7, "0007_early_stopping", include_str!("../../../migrations/sqlite/0007_early_stopping.sql")),
    (8, "0008_worker_drain", include_str!("../../../migrations/sqlite/0008_worker_drain.sql")),
];
const POSTGRES_MIGRATIONS: Migrations = &[
    (1, "0001_schema", include_str!("../../../migrations/postgres/0001_schema.sql")),
    (2, "0002_access", include_str!("../../../migrations/postgres/0002_access.sql")),
    (3, "0003_attempt_cause", include_str!("../../../migrations/postgres/0003_attempt_cause.sql")),
    (4, "0004_keras_metrics", include_str!("../../../migrations/postgres/0004_keras_metrics.sql")),
    (5, "0005_memory_and_gpus", include_str!("../../../migrations/postgres/0005_memory_and_gpus.sql")),
    (6, "0006_fused_groups", include_str!("../../../migrations/postgres/0006_fused_groups.sql")),
    (7, "0007_early_stopping", include_str!("../../../migrations/postgres/0007_early_stopping.sql")),
    (8, "0008_worker_drain", include_str!("../../../migrations/postgres/0008_worker_drain.sql")),
];

/// The advisory lock that serialises the migrations of Postgres coordinators starting together.
const MIGRATION_LOCK: i64 = 0x616c_6c73_7765_6570; // "allsweep"

/// A database the store runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// One file in WAL mode through a single connection: every write transaction takes the
    /// database's write lock when it begins, so writes are serialised, in this process and,
    /// through SQLite's lock, in another.
    Sqlite,
    /// Concurrent transactions at READ COMMITTED, kept apart by row locks: leasing claims rows
    /// with `FOR UPDATE SKIP LOCKED`, and every worker write locks its trial row and no
    /// other (a cancel locks the sweep, then its trials: one lock order, no deadlock). A
    /// sweep is finished by a statement of its own after the commit that settled a trial,
    /// which the last settling commit sees with every other trial settled.
    Postgres,
}

impl Dialect {
    /// The dialect of a database URL.
    pub fn of_url(url: &str) -> Result<Self> {
        if url.starts_with("sqlite:") {
            Ok(Dialect::Sqlite)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Ok(Dialect::Postgres)
        } else {
            Err(StoreError::Url(url.to_string()))
        }
    }

    /// The statement that begins a write transaction. SQLite's `IMMEDIATE` takes the write
    /// lock at once, so two writers never both read and then collide on upgrading their lock.
    pub fn begin_write(self) -> &'static str {
        match self {
            Dialect::Sqlite => "BEGIN IMMEDIATE",
            Dialect::Postgres => "BEGIN",
        }
    }

    /// The clause that locks the rows of table alias `alias` a SELECT reads, until commit.
    /// Nothing in SQLite: its write transaction already holds the whole database.
    pub fn lock_rows(self, alias: &str) -> String {
        match self {
            Dialect::Sqlite => String::new(),
            Dialect::Postgres => format!(" FOR UPDATE OF {alias}"),
        }
    }

    /// Whether a batch of per-trial transitions (renewals, expiries, releases) commits trial by
    /// trial. Postgres: yes, one row lock at a time, so a batch never deadlocks with a cancel
    /// that locks the same trials in another order. SQLite: one transaction for the batch, as
    /// writes are serialised anyway and one commit is one sync.
    pub fn commits_per_trial(self) -> bool {
        self == Dialect::Postgres
    }

    /// Takes up to `$2` queued trials of active sweeps in the scheduler's lease order and
    /// leases them to worker `$1` at `$3` until `$4`, passing over trials whose memory
    /// estimate is over `$5` bytes and stopping where together they would be (the scheduler's
    /// `MemoryFit`); a trial resumes at its checkpoint's epoch. Returns each trial with its sweep's `created_at`, to sort the batch. On
    /// Postgres the statement also opens each trial's attempt ([`Dialect::lease_opens_attempts`]).
    pub fn lease_statement(self) -> String {
        let resume_epoch = "COALESCE((SELECT c.epoch FROM checkpoints c WHERE c.trial_id = trials.id), 0)";
        let checkpoint_epoch = "(SELECT c.epoch FROM checkpoints c WHERE c.trial_id = trials.id) AS checkpoint_epoch";
        // Early stopping: the rule that says where the trial pauses next.
        let early_stopping = "(SELECT s.early_stopping FROM sweeps s WHERE s.id = trials.sweep_id) AS early_stopping";
        // The queued trials that fit one by one ($5 bytes), at most $2 of them in lease order;
        // of those, the leading ones that fit together.
        let candidates = "SELECT t.id, t.memory_bytes, s.created_at AS sweep_created_at, s.id AS sweep_key, t.ordinal \
             FROM trials t JOIN sweeps s ON s.id = t.sweep_id \
             WHERE t.state = 'queued' AND t.hold IS NULL AND s.state = 'active' AND t.memory_bytes <= $5";
        let fitting = |columns: &str| {
            format!(
                "SELECT {columns} FROM (SELECT c.id, c.sweep_created_at, SUM(c.memory_bytes) \
                 OVER (ORDER BY c.sweep_created_at, c.sweep_key, c.ordinal ROWS UNBOUNDED PRECEDING) AS needed \
                 FROM candidates c) w WHERE w.needed <= $5"
            )
        };
        let (fitting_ids, fitting_rows) = (fitting("id"), fitting("id, sweep_created_at"));
        match self {
            Dialect::Sqlite => format!(
                "UPDATE trials SET state = 'running', attempt = attempt + 1, worker_id = $1, \
                 lease_expires_at = $4, started_at = COALESCE(started_at, $3), epoch = {resume_epoch} \
                 WHERE id IN (WITH candidates AS ({candidates} ORDER BY {LEASE_ORDER} LIMIT $2) {fitting_ids}) \
                 RETURNING id, sweep_id, ordinal, attempt, config_toml, lease_expires_at, memory_bytes, \
                 (SELECT s.created_at FROM sweeps s WHERE s.id = trials.sweep_id) AS sweep_created_at, \
                 {checkpoint_epoch}, {early_stopping}"
            ),
            // One statement, committed on its own: the attempts are opened by the same statement.
            Dialect::Postgres => format!(
                "WITH candidates AS ({candidates} ORDER BY {LEASE_ORDER} LIMIT $2 FOR UPDATE OF t SKIP LOCKED), \
                 picked AS ({fitting_rows}), \
                 leased AS (UPDATE trials SET state = 'running', attempt = trials.attempt + 1, worker_id = $1, \
                 lease_expires_at = $4, started_at = COALESCE(trials.started_at, $3), epoch = {resume_epoch} \
                 FROM picked WHERE trials.id = picked.id \
                 RETURNING trials.id, trials.sweep_id, trials.ordinal, trials.attempt, trials.config_toml, \
                 trials.lease_expires_at, trials.memory_bytes, picked.sweep_created_at, {checkpoint_epoch}, \
                 {early_stopping}), \
                 opened AS (INSERT INTO attempts (trial_id, attempt, worker_id, started_at, outcome, \
                 resumed_from_epoch) SELECT id, attempt, $1, $3, 'running', checkpoint_epoch FROM leased) \
                 SELECT * FROM leased"
            ),
        }
    }

    /// Whether [`Dialect::lease_statement`] opens the leased trials' attempts itself, as one
    /// statement (Postgres: a data-modifying `WITH`, one round trip). SQLite has no such `WITH`:
    /// its lease inserts them in the same transaction.
    pub fn lease_opens_attempts(self) -> bool {
        self == Dialect::Postgres
    }

    pub fn migrations(self) -> Migrations {
        match self {
            Dialect::Sqlite => SQLITE_MIGRATIONS,
            Dialect::Postgres => POSTGRES_MIGRATIONS,
        }
    }

    /// The statement that serialises migrations of several coordinators, taken first in the
    /// migration transaction (SQLite's write lock already does).
    pub fn migration_lock(self) -> Option<String> {
        match self {
            Dialect::Sqlite => None,
            Dialect::Postgres => Some(format!("SELECT pg_advisory_xact_lock({MIGRATION_LOCK})")),
        }
    }

    /// A pool for `url`. SQLite: one connection (writes are serialised, and `sqlite::memory:`
    /// keeps its database), created if missing, WAL mode, foreign keys on, a 30 s busy wait.
    /// Postgres: 16 connections.
    pub async fn pool(self, url: &str) -> Result<AnyPool> {
        sqlx::any::install_default_drivers();
        let pool = match self {
            Dialect::Sqlite => {
                let url = if url.contains(":memory:") || url.contains("mode=") {
                    url.to_string()
                } else if url.contains('?') {
                    format!("{url}&mode=rwc")
                } else {
                    format!("{url}?mode=rwc")
                };
                AnyPoolOptions::new()
                    .max_connections(1)
                    .min_connections(1)
                    .idle_timeout(None)
                    .max_lifetime(None)
                    .after_connect(|conn, _| {
                        Box::pin(async move {
                            conn.execute(
                                "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; \
                                 PRAGMA foreign_keys = ON; PRAGMA busy_timeout = 30000;",
                            )
                            .await?;
                            Ok(())
                        })
                    })
                    .connect(&url)
                    .await?
            }
            Dialect::Postgres => {
                AnyPoolOptions::new().max_connections(16).acquire_timeout(Duration::from_secs(30)).connect(url).await?
            }
        };
        Ok(pool)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_name_their_dialect_and_others_are_refused() {
        assert_eq!(Dialect::of_url("sqlite://run/allsweep.db").ok(), Some(Dialect::Sqlite));
        assert_eq!(Dialect::of_url("sqlite::memory:").ok(), Some(Dialect::Sqlite));
        assert_eq!(Dialect::of_url("postgresql://u@h/db").ok(), Some(Dialect::Postgres));
        let error = Dialect::of_url("mysql://h/db").expect_err("MySQL is not supported");
        assert!(error.to_string().contains("mysql://h/db"), "{error}");
    }
}
