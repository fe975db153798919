//! The cluster store: Postgres, shared by coordinators that may run side by side.
//!
//! Leasing claims rows with `FOR UPDATE SKIP LOCKED`, so concurrent leases never wait on
//! each other nor hand a trial out twice. Every worker write locks its trial row
//! (`FOR UPDATE`) and checks the attempt in the same transaction. Transactions that end a
//! trial for good lock its sweep row first, then the trial, as `cancel_sweep` does: one lock
//! order, no deadlock, and the check that finishes a sweep sees every other trial settled.

use std::time::Duration;

use async_trait::async_trait;
use sqlx::postgres::{PgPool, PgPoolOptions};
use sqlx::PgConnection;

use super::sql_common::{self as sql, Cols, Holder, Migrations};
use super::{
    AttemptRow, CheckpointRow, Completion, Leased, MetricPoint, Millis, NewSweep, Requeue, Result, ResultRow, RocPoint,
    Store, SweepRow, TrialRow, WorkerRow,
};

const MIGRATIONS: Migrations = &[(1, "0001_schema", include_str!("../../../migrations/postgres/0001_schema.sql"))];

/// The advisory lock that serialises migrations of coordinators starting together.
const MIGRATION_LOCK: i64 = 0x616c_6c73_7765_6570; // "allsweep"

/// Takes up to `$2` queued trials of active sweeps, oldest sweep first, and leases them to
/// worker `$1` at `$3` until `$4`; a trial resumes at its checkpoint's epoch.
const LEASE: &str = "WITH picked AS ( \
         SELECT t.id, s.created_at AS sweep_created_at FROM trials t JOIN sweeps s ON s.id = t.sweep_id \
         WHERE t.state = 'queued' AND s.state = 'active' ORDER BY s.created_at, s.id, t.ordinal LIMIT $2 \
         FOR UPDATE OF t SKIP LOCKED) \
     UPDATE trials SET state = 'running', attempt = trials.attempt + 1, worker_id = $1, \
         lease_expires_at = $4, started_at = COALESCE(trials.started_at, $3), \
         epoch = COALESCE((SELECT c.epoch FROM checkpoints c WHERE c.trial_id = trials.id), 0) \
     FROM picked WHERE trials.id = picked.id \
     RETURNING trials.id, trials.sweep_id, trials.ordinal, trials.attempt, trials.config_toml, \
         trials.lease_expires_at, picked.sweep_created_at, \
         (SELECT c.epoch FROM checkpoints c WHERE c.trial_id = trials.id) AS checkpoint_epoch";

/// Locks the sweep of trial `$1`: first lock of a transaction that may end the trial.
const LOCK_SWEEP_OF: &str = "SELECT id FROM sweeps WHERE id = (SELECT sweep_id FROM trials WHERE id = $1) FOR UPDATE";

/// Locks trial `$1` if attempt `$2` is still running with a lease that expired before `$3`.
const LOCK_EXPIRED: &str = "SELECT t.worker_id, t.sweep_id, s.max_attempts FROM trials t \
     JOIN sweeps s ON s.id = t.sweep_id \
     WHERE t.id = $1 AND t.attempt = $2 AND t.state = 'running' AND t.lease_expires_at < $3 FOR UPDATE OF t";

pub struct PostgresStore {
    pool: PgPool,
}

impl PostgresStore {
    /// Connects to `url` (`postgres://...`) and applies the migrations it lacks.
    pub async fn open(url: &str) -> Result<Self> {
        let pool =
            PgPoolOptions::new().max_connections(16).acquire_timeout(Duration::from_secs(30)).connect(url).await?;
        let store = PostgresStore { pool };
        store.migrate().await?;
        Ok(store)
    }

    /// Applies, in one transaction under an advisory lock, each migration not yet in
    /// `schema_version`.
    async fn migrate(&self) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("SELECT pg_advisory_xact_lock($1)").bind(MIGRATION_LOCK).execute(&mut *tx).await?;
        sqlx::query(sql::SCHEMA_VERSION_TABLE).execute(&mut *tx).await?;
        for &(version, name, text) in MIGRATIONS {
            let applied = sqlx::query("SELECT 1 FROM schema_version WHERE version = $1")
                .bind(version)
                .fetch_optional(&mut *tx)
                .await?;
            if applied.is_none() {
                sqlx::raw_sql(text).execute(&mut *tx).await?;
                sqlx::query("INSERT INTO schema_version (version, name, applied_at) VALUES ($1, $2, $3)")
                    .bind(version)
                    .bind(name)
                    .bind(super::now_ms())
                    .execute(&mut *tx)
                    .await?;
            }
        }
        tx.commit().await?;
        Ok(())
    }
}

/// Locks `trial_id` and refuses the write unless `attempt` holds it.
async fn holder(conn: &mut PgConnection, trial_id: &str, attempt: u32) -> Result<Holder> {
    let q = format!("{} FOR UPDATE OF t", sql::HOLDER);
    let row = sqlx::query(&q).bind(trial_id).fetch_optional(&mut *conn).await?;
    sql::holder(trial_id, attempt, row.as_ref())
}

async fn lock_sweep_of(conn: &mut PgConnection, trial_id: &str) -> Result<()> {
    sqlx::query(LOCK_SWEEP_OF).bind(trial_id).fetch_optional(&mut *conn).await?;
    Ok(())
}

/// Ends a running attempt that did not complete: closes it as `outcome` and queues the trial
/// again or fails it for good. The caller holds the sweep's and the trial's locks.
async fn end_attempt(
    conn: &mut PgConnection,
    trial_id: &str,
    attempt: u32,
    holder: &Holder,
    (outcome, error, permanent): (&str, &str, bool),
    now: Millis,
) -> Result<Requeue> {
    sqlx::query(sql::CLOSE_ATTEMPT)
        .bind(trial_id)
        .bind(i64::from(attempt))
        .bind(outcome)
        .bind(now)
        .bind(error)
        .execute(&mut *conn)
        .await?;
    let failures = sqlx::query(sql::COUNT_FAILURES).bind(trial_id).fetch_one(&mut *conn).await?.int("n")?;
    let next = sql::after_failure(permanent, failures, holder.max_attempts);
    sqlx::query(sql::END_ATTEMPT_ON_TRIAL)
        .bind(trial_id)
        .bind(sql::requeue_state(next))
        .bind(sql::trial_error(next, permanent, failures, error))
        .bind((next == Requeue::Failed).then_some(now))
        .execute(&mut *conn)
        .await?;
    if next == Requeue::Failed {
        finish_sweep_if_done(conn, &holder.sweep_id, now).await?;
    }
    Ok(next)
}

async fn finish_sweep_if_done(conn: &mut PgConnection, sweep_id: &str, now: Millis) -> Result<()> {
    sqlx::query(sql::FINISH_SWEEP_IF_DONE).bind(sweep_id).bind(now).execute(&mut *conn).await?;
    Ok(())
}

#[async_trait]
impl Store for PostgresStore {
    async fn insert_sweep(&self, sweep: &NewSweep, now: Millis) -> Result<bool> {
        let mut tx = self.pool.begin().await?;
        let state = if sweep.trials.is_empty() { "finished" } else { "active" };
        let inserted = sqlx::query(sql::INSERT_SWEEP)
            .bind(&sweep.id)
            .bind(&sweep.name)
            .bind(state)
            .bind(&sweep.spec_toml)
            .bind(sweep.keep_checkpoints)
            .bind(i64::from(sweep.max_attempts))
            .bind(now)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if inserted == 0 {
            tx.rollback().await?;
            return Ok(false);
        }
        for t in &sweep.trials {
            let c = &t.columns;
            sqlx::query(sql::INSERT_TRIAL)
                .bind(&t.id)
                .bind(&sweep.id)
                .bind(i64::from(t.ordinal))
                .bind(&t.label)
                .bind(&t.params_json)
                .bind(&t.config_key)
                .bind(&t.config_toml)
                .bind(t.seed as i64)
                .bind(&c.dataset)
                .bind(&c.arch)
                .bind(c.width)
                .bind(&c.loss)
                .bind(c.base_loss.as_deref())
                .bind(c.gamma)
                .bind(c.omega)
                .bind(c.epsilon)
                .bind(c.lr)
                .bind(c.batch_size)
                .bind(i64::from(t.epochs))
                .bind(now)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(true)
    }

    async fn sweep(&self, id: &str) -> Result<Option<SweepRow>> {
        let q = format!("SELECT {} FROM sweeps WHERE id = $1", sql::SWEEP_COLUMNS);
        let row = sqlx::query(&q).bind(id).fetch_optional(&self.pool).await?;
        row.as_ref().map(sql::sweep_row).transpose()
    }

    async fn sweeps(&self) -> Result<Vec<SweepRow>> {
        let q = format!("SELECT {} FROM sweeps ORDER BY created_at DESC, id DESC", sql::SWEEP_COLUMNS);
        sqlx::query(&q).fetch_all(&self.pool).await?.iter().map(sql::sweep_row).collect()
    }

    async fn trials(&self, sweep_id: &str) -> Result<Vec<TrialRow>> {
        sqlx::query(sql::SELECT_TRIALS).bind(sweep_id).fetch_all(&self.pool).await?.iter().map(sql::trial_row).collect()
    }

    async fn attempts(&self, trial_id: &str) -> Result<Vec<AttemptRow>> {
        let rows = sqlx::query(sql::SELECT_ATTEMPTS).bind(trial_id).fetch_all(&self.pool).await?;
        rows.iter().map(sql::attempt_row).collect()
    }

    async fn cancel_sweep(&self, id: &str, now: Millis) -> Result<bool> {
        let mut tx = self.pool.begin().await?;
        let state =
            sqlx::query("SELECT state FROM sweeps WHERE id = $1 FOR UPDATE").bind(id).fetch_optional(&mut *tx).await?;
        let Some(state) = state else {
            return Ok(false);
        };
        if state.text("state")? == "active" {
            sqlx::query(sql::CANCEL_ATTEMPTS).bind(id).bind(now).execute(&mut *tx).await?;
            sqlx::query(sql::CANCEL_TRIALS).bind(id).bind(now).execute(&mut *tx).await?;
            sqlx::query("UPDATE sweeps SET state = 'cancelled', finished_at = $2 WHERE id = $1")
                .bind(id)
                .bind(now)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(true)
    }

    async fn upsert_worker(&self, w: &WorkerRow) -> Result<()> {
        sqlx::query(sql::UPSERT_WORKER)
            .bind(&w.id)
            .bind(&w.host)
            .bind(&w.device)
            .bind(w.memory_bytes as i64)
            .bind(i64::from(w.slots))
            .bind(&w.version)
            .bind(w.registered_at)
            .bind(w.last_seen_at)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn touch_worker(&self, id: &str, now: Millis) -> Result<bool> {
        let q = sqlx::query("UPDATE workers SET last_seen_at = $2 WHERE id = $1").bind(id).bind(now);
        Ok(q.execute(&self.pool).await?.rows_affected() > 0)
    }

    async fn workers(&self) -> Result<Vec<WorkerRow>> {
        sqlx::query(sql::SELECT_WORKERS).fetch_all(&self.pool).await?.iter().map(sql::worker_row).collect()
    }

    async fn lease(&self, worker_id: &str, count: u32, now: Millis, expires_at: Millis) -> Result<Vec<Leased>> {
        if count == 0 {
            return Ok(Vec::new());
        }
        let mut tx = self.pool.begin().await?;
        let rows = sqlx::query(LEASE)
            .bind(worker_id)
            .bind(i64::from(count))
            .bind(now)
            .bind(expires_at)
            .fetch_all(&mut *tx)
            .await?;
        let mut leased = Vec::with_capacity(rows.len());
        for r in &rows {
            let order = (r.int("sweep_created_at")?, r.text("sweep_id")?, r.int("ordinal")?);
            let lease = Leased {
                trial_id: r.text("id")?,
                sweep_id: r.text("sweep_id")?,
                attempt: sql::small(r.int("attempt")?),
                config_toml: r.text("config_toml")?,
                checkpoint_epoch: r.int_opt("checkpoint_epoch")?.map(sql::small),
                lease_expires_at: r.int("lease_expires_at")?,
            };
            sqlx::query(sql::INSERT_ATTEMPT)
                .bind(&lease.trial_id)
                .bind(i64::from(lease.attempt))
                .bind(worker_id)
                .bind(now)
                .bind(lease.checkpoint_epoch.map(i64::from))
                .execute(&mut *tx)
                .await?;
            leased.push((order, lease));
        }
        tx.commit().await?;
        leased.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(leased.into_iter().map(|(_, l)| l).collect())
    }

    /// Each renewal commits on its own: one row lock at a time, so renewals never deadlock
    /// with a cancellation that locks the same trials in another order.
    async fn renew(
        &self,
        worker_id: &str,
        running: &[(String, u32, u32)],
        _now: Millis,
        expires_at: Millis,
    ) -> Result<Vec<String>> {
        let mut stop = Vec::new();
        for (trial_id, attempt, epoch) in running {
            let renewed = sqlx::query(sql::RENEW)
                .bind(trial_id)
                .bind(i64::from(*attempt))
                .bind(worker_id)
                .bind(expires_at)
                .bind(i64::from(*epoch))
                .execute(&self.pool)
                .await?
                .rows_affected();
            if renewed == 0 {
                stop.push(trial_id.clone());
            }
        }
        Ok(stop)
    }

    /// One transaction per expired trial, each re-checking under its locks that the lease
    /// is still the expired one (a renewal or completion may have come in between).
    async fn expire_leases(&self, now: Millis) -> Result<Vec<(String, u32, Requeue)>> {
        let candidates = sqlx::query(
            "SELECT id, attempt FROM trials WHERE state = 'running' AND lease_expires_at < $1 \
             ORDER BY lease_expires_at, id",
        )
        .bind(now)
        .fetch_all(&self.pool)
        .await?;
        let mut out = Vec::with_capacity(candidates.len());
        for c in &candidates {
            let (trial_id, attempt) = (c.text("id")?, sql::small(c.int("attempt")?));
            let mut tx = self.pool.begin().await?;
            lock_sweep_of(&mut tx, &trial_id).await?;
            let q = sqlx::query(LOCK_EXPIRED).bind(&trial_id).bind(i64::from(attempt)).bind(now);
            let Some(r) = q.fetch_optional(&mut *tx).await? else {
                continue;
            };
            let holder = Holder {
                sweep_id: r.text("sweep_id")?,
                worker_id: r.text_opt("worker_id")?.unwrap_or_default(),
                keep_checkpoints: false,
                max_attempts: r.int("max_attempts")?,
            };
            let error = format!("lease of worker {:?} expired", holder.worker_id);
            let next = end_attempt(&mut tx, &trial_id, attempt, &holder, ("expired", &error, false), now).await?;
            tx.commit().await?;
            out.push((trial_id, attempt, next));
        }
        Ok(out)
    }

    async fn release(&self, worker_id: &str, trials: &[(String, u32)], now: Millis) -> Result<()> {
        for (trial_id, attempt) in trials {
            let mut tx = self.pool.begin().await?;
            let released = sqlx::query(sql::RELEASE)
                .bind(trial_id)
                .bind(i64::from(*attempt))
                .bind(worker_id)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            if released > 0 {
                let close = sqlx::query(sql::CLOSE_ATTEMPT).bind(trial_id).bind(i64::from(*attempt));
                close.bind("released").bind(now).bind(None::<String>).execute(&mut *tx).await?;
            }
            tx.commit().await?;
        }
        Ok(())
    }

    async fn record_metrics(&self, trial_id: &str, attempt: u32, points: &[MetricPoint]) -> Result<(u64, u64)> {
        let mut tx = self.pool.begin().await?;
        holder(&mut tx, trial_id, attempt).await?;
        let mut stored = 0;
        for p in points {
            stored += sqlx::query(sql::INSERT_METRIC)
                .bind(trial_id)
                .bind(i64::from(p.epoch))
                .bind(&p.name)
                .bind(p.value)
                .bind(i64::from(attempt))
                .execute(&mut *tx)
                .await?
                .rows_affected();
        }
        tx.commit().await?;
        Ok((stored, points.len() as u64 - stored))
    }

    async fn record_checkpoint(&self, c: &CheckpointRow, now: Millis) -> Result<Option<String>> {
        let mut tx = self.pool.begin().await?;
        holder(&mut tx, &c.trial_id, c.attempt).await?;
        let old = sqlx::query("SELECT file FROM checkpoints WHERE trial_id = $1")
            .bind(&c.trial_id)
            .fetch_optional(&mut *tx)
            .await?;
        let old = old.map(|r| r.text("file")).transpose()?;
        sqlx::query(sql::UPSERT_CHECKPOINT)
            .bind(&c.trial_id)
            .bind(i64::from(c.attempt))
            .bind(i64::from(c.epoch))
            .bind(i64::from(c.step))
            .bind(&c.file)
            .bind(&c.sha256)
            .bind(c.bytes as i64)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(old.filter(|f| *f != c.file))
    }

    async fn checkpoint(&self, trial_id: &str) -> Result<Option<CheckpointRow>> {
        let row = sqlx::query(sql::SELECT_CHECKPOINT).bind(trial_id).fetch_optional(&self.pool).await?;
        row.as_ref().map(sql::checkpoint_row).transpose()
    }

    async fn complete(&self, trial_id: &str, attempt: u32, done: &Completion, now: Millis) -> Result<Option<String>> {
        let mut tx = self.pool.begin().await?;
        lock_sweep_of(&mut tx, trial_id).await?;
        let holder = holder(&mut tx, trial_id, attempt).await?;
        let m = &done.metrics;
        sqlx::query(sql::INSERT_RESULT)
            .bind(trial_id)
            .bind(m.jaccard)
            .bind(m.dice)
            .bind(m.precision)
            .bind(m.recall)
            .bind(m.tnr)
            .bind(m.accuracy)
            .bind(m.auc)
            .bind(&done.split)
            .bind(i64::from(done.epochs))
            .bind(done.parameters as i64)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        for (idx, p) in done.roc.iter().enumerate() {
            sqlx::query(sql::INSERT_ROC)
                .bind(trial_id)
                .bind(idx as i64)
                .bind(p.threshold)
                .bind(p.fpr)
                .bind(p.tpr)
                .execute(&mut *tx)
                .await?;
        }
        let q = sqlx::query(sql::COMPLETE_TRIAL).bind(trial_id).bind(i64::from(done.epochs)).bind(now);
        q.execute(&mut *tx).await?;
        let close = sqlx::query(sql::CLOSE_ATTEMPT).bind(trial_id).bind(i64::from(attempt));
        close.bind("completed").bind(now).bind(None::<String>).execute(&mut *tx).await?;
        let mut delete = None;
        if !holder.keep_checkpoints {
            let q = sqlx::query("DELETE FROM checkpoints WHERE trial_id = $1 RETURNING file").bind(trial_id);
            delete = q.fetch_optional(&mut *tx).await?.map(|r| r.text("file")).transpose()?;
        }
        finish_sweep_if_done(&mut tx, &holder.sweep_id, now).await?;
        tx.commit().await?;
        Ok(delete)
    }

    async fn fail(&self, trial_id: &str, attempt: u32, error: &str, permanent: bool, now: Millis) -> Result<Requeue> {
        let mut tx = self.pool.begin().await?;
        lock_sweep_of(&mut tx, trial_id).await?;
        let holder = holder(&mut tx, trial_id, attempt).await?;
        let next = end_attempt(&mut tx, trial_id, attempt, &holder, ("failed", error, permanent), now).await?;
        tx.commit().await?;
        Ok(next)
    }

    async fn results(&self, sweep_id: &str) -> Result<Vec<ResultRow>> {
        sqlx::query(sql::SELECT_RESULTS)
            .bind(sweep_id)
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(sql::result_row)
            .collect()
    }

    async fn metric_points(&self, trial_id: &str) -> Result<Vec<MetricPoint>> {
        let rows = sqlx::query(sql::SELECT_METRICS).bind(trial_id).fetch_all(&self.pool).await?;
        rows.iter().map(sql::metric_point).collect()
    }

    async fn roc(&self, trial_id: &str) -> Result<Vec<RocPoint>> {
        sqlx::query(sql::SELECT_ROC).bind(trial_id).fetch_all(&self.pool).await?.iter().map(sql::roc_point).collect()
    }
}
