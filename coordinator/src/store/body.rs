//! The store, written once: every transaction of [`Store`] over sqlx's `Any` driver, with the
//! differences between SQLite and Postgres taken from the [`Dialect`]. Each invariant (a
//! write checked against its attempt in the same transaction, a sweep finished right after
//! the commit that settles its last trial, attempts closed exactly once) lives here, once.

use std::collections::{BTreeSet, HashMap};

use async_trait::async_trait;
use sqlx::{Any, Transaction};
use sqlx::{AnyConnection, AnyPool};

use super::dialect::Dialect;
use super::rows::{self, Cols, Holder};
use super::statements::{self as sql, NullableReal};
use super::{
    AttemptOutcome, AttemptRef, AttemptRow, Census, CheckpointRow, Completion, DecisionRow, Drain, Expired, GpuStatus,
    Leased, MemoryFit, MetricPoint, MetricsStored, Millis, NewSweep, Progress, Requeue, Result, ResultRow, RocPoint,
    SchemaStatus, Store, SweepRow, SweepState, TokenRow, Touched, TrialFault, TrialRow, TrialState, WorkerRow,
};
use crate::scheduler::{self, Cause, ExpiryCause};

/// The store on one database.
pub struct SqlStore {
    pool: AnyPool,
    dialect: Dialect,
}

impl SqlStore {
    /// Opens (creating a SQLite file if missing) the database at `url` (`sqlite://PATH`,
    /// `sqlite:PATH`, `sqlite::memory:`, `postgres://...`) and applies the migrations it lacks.
    pub async fn open(url: &str) -> Result<Self> {
        let dialect = Dialect::of_url(url)?;
        let store = SqlStore { pool: dialect.pool(url).await?, dialect };
        store.migrate().await?;
        Ok(store)
    }

    pub fn dialect(&self) -> Dialect {
        self.dialect
    }

    pub(super) fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// Applies, in one transaction, each migration not yet in `schema_version`. SQLite's
    /// foreign keys are off meanwhile (a migration may rebuild a table that others reference,
    /// which SQLite allows only so) and checked before the commit.
    async fn migrate(&self) -> Result<()> {
        let mut conn = self.pool.acquire().await?;
        let sqlite = self.dialect == Dialect::Sqlite;
        if sqlite {
            sqlx::raw_sql("PRAGMA foreign_keys = OFF").execute(&mut *conn).await?;
        }
        let applied = self.apply_migrations(&mut conn).await;
        if sqlite {
            sqlx::raw_sql("PRAGMA foreign_keys = ON").execute(&mut *conn).await?;
        }
        applied
    }

    async fn apply_migrations(&self, conn: &mut AnyConnection) -> Result<()> {
        let mut tx = sqlx::Connection::begin_with(&mut *conn, self.dialect.begin_write()).await?;
        if let Some(lock) = self.dialect.migration_lock() {
            sqlx::query(&lock).execute(&mut *tx).await?;
        }
        sqlx::query(sql::SCHEMA_VERSION_TABLE).execute(&mut *tx).await?;
        for &(version, name, text) in self.dialect.migrations() {
            if sqlx::query(sql::MIGRATION_APPLIED).bind(version).fetch_optional(&mut *tx).await?.is_none() {
                sqlx::raw_sql(text).execute(&mut *tx).await?;
                let record = sqlx::query(sql::RECORD_MIGRATION).bind(version).bind(name).bind(super::now_ms());
                record.execute(&mut *tx).await?;
            }
        }
        if self.dialect == Dialect::Sqlite {
            let broken = sqlx::raw_sql("PRAGMA foreign_key_check").fetch_all(&mut *tx).await?;
            if !broken.is_empty() {
                return Err(super::StoreError::Constraint(format!(
                    "migrations left {} rows whose foreign key names nothing",
                    broken.len()
                )));
            }
        }
        tx.commit().await?;
        Ok(())
    }

    /// A write transaction, begun as the dialect begins them.
    pub(super) async fn write(&self) -> Result<Transaction<'static, Any>> {
        Ok(self.pool.begin_with(self.dialect.begin_write()).await?)
    }

    /// Locks `trial_id` (where the dialect locks rows) and refuses the write unless
    /// `worker_id` holds it under `attempt`.
    async fn holder(&self, conn: &mut AnyConnection, worker_id: &str, trial_id: &str, attempt: u32) -> Result<Holder> {
        let q = format!("{}{}", sql::HOLDER, self.dialect.lock_rows("t"));
        let row = sqlx::query(&q).bind(trial_id).fetch_optional(&mut *conn).await?;
        rows::holder(worker_id, trial_id, attempt, row.as_ref())
    }

    /// Marks `sweep_id` finished if its trials are all settled. Called after the commit that
    /// settled one of them, never inside it: a transaction that holds a trial's lock never
    /// waits for its sweep's, so completions of one sweep run side by side (and a cancel,
    /// which locks the sweep and then its trials, cannot deadlock with them). A failure here
    /// is logged, not returned: the trial is settled, and the expiry tick's
    /// [`sql::finish_done_sweeps`] finishes the sweep.
    pub(super) async fn finish_sweep_if_done(&self, sweep_id: &str, now: Millis) {
        let finish = sql::finish_sweep_if_done();
        if let Err(error) = sqlx::query(&finish).bind(sweep_id).bind(now).execute(&self.pool).await {
            tracing::warn!(sweep = %sweep_id, %error, "cannot mark the sweep finished now; the expiry tick will");
        }
    }

    /// [`SqlStore::settle`], a failure logged, not returned (the expiry tick settles again).
    async fn settle_logged(&self, sweep_id: &str, now: Millis) {
        if let Err(error) = self.settle(sweep_id, now).await {
            tracing::warn!(sweep = %sweep_id, %error, "cannot apply early stopping now; the expiry tick will");
        }
    }

    /// Ends a running attempt that did not complete, as the scheduler decides from `cause`:
    /// closes the attempt and queues the trial again or fails it for good. The caller holds
    /// the trial's lock and, when it failed for good, finishes the sweep after committing.
    async fn end_attempt(
        &self,
        conn: &mut AnyConnection,
        attempt: &AttemptRef,
        holder: &Holder,
        cause: Cause,
        error: &str,
        now: Millis,
    ) -> Result<Requeue> {
        let trial_id = attempt.trial_id.as_str();
        let counted = sqlx::query(&sql::count_counted_attempts()).bind(trial_id).fetch_one(&mut *conn).await?;
        let before = scheduler::Earlier {
            counted: rows::small(counted.int("n")?),
            out_of_memory: rows::small(counted.int("oom")?),
        };
        let ending = scheduler::after_failure(cause, before, holder.max_attempts);
        close_attempt(conn, attempt, ending.outcome, Some(error), now).await?;
        if let Some(why) = ending.cause() {
            let q = sqlx::query(sql::SET_ATTEMPT_CAUSE).bind(trial_id).bind(i64::from(attempt.attempt));
            q.bind(why).execute(&mut *conn).await?;
        }
        if ending.transition == scheduler::Transition::OutOfMemory {
            // The trial asks twice the memory, and so does every queued trial of its shape.
            let row = sqlx::query(sql::MEMORY_ESTIMATE).bind(trial_id).fetch_one(&mut *conn).await?;
            let raised = scheduler::after_out_of_memory(row.int("memory_bytes")?);
            sqlx::query(sql::SET_MEMORY_ESTIMATE).bind(trial_id).bind(raised).execute(&mut *conn).await?;
            let shape = row.text("memory_shape")?;
            sqlx::query(sql::RAISE_SHAPE_ESTIMATE).bind(shape).bind(raised).execute(&mut *conn).await?;
        }
        let counted_now = before.counted + u32::from(ending.counts);
        let state = match ending.next {
            Requeue::Queued => super::TrialState::Queued,
            Requeue::Failed => super::TrialState::Failed,
        };
        sqlx::query(sql::END_ATTEMPT_ON_TRIAL)
            .bind(trial_id)
            .bind(state.as_str())
            .bind(scheduler::trial_error(ending, counted_now, error))
            .bind((ending.next == Requeue::Failed).then_some(now))
            .execute(&mut *conn)
            .await?;
        if ending.next == Requeue::Queued {
            self.hold_at_rung(conn, trial_id).await?;
        }
        Ok(ending.next)
    }
}

/// Closes an attempt as `outcome`.
async fn close_attempt(
    conn: &mut AnyConnection,
    attempt: &AttemptRef,
    outcome: AttemptOutcome,
    error: Option<&str>,
    now: Millis,
) -> Result<()> {
    sqlx::query(sql::CLOSE_ATTEMPT)
        .bind(&attempt.trial_id)
        .bind(i64::from(attempt.attempt))
        .bind(outcome.as_str())
        .bind(now)
        .bind(error)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// The transactions of a batch of per-trial transitions: one for the whole batch, or one per
/// trial, as the dialect commits them.
struct Batch<'s> {
    store: &'s SqlStore,
    tx: Option<Transaction<'static, Any>>,
}

impl<'s> Batch<'s> {
    fn new(store: &'s SqlStore) -> Self {
        Self { store, tx: None }
    }

    /// The transaction of the next trial: the batch's own, or a fresh one after committing
    /// the previous trial's.
    async fn next(&mut self) -> Result<&mut AnyConnection> {
        if self.store.dialect.commits_per_trial() {
            if let Some(tx) = self.tx.take() {
                tx.commit().await?;
            }
        }
        let tx = match self.tx.take() {
            Some(tx) => tx,
            None => self.store.write().await?,
        };
        Ok(&mut **self.tx.insert(tx))
    }

    async fn commit(self) -> Result<()> {
        if let Some(tx) = self.tx {
            tx.commit().await?;
        }
        Ok(())
    }
}

#[async_trait]
impl Store for SqlStore {
    async fn insert_sweep(&self, sweep: &NewSweep, now: Millis) -> Result<bool> {
        let mut tx = self.write().await?;
        let state = if sweep.trials.is_empty() { SweepState::Finished } else { SweepState::Active };
        let inserted = sqlx::query(sql::INSERT_SWEEP)
            .bind(&sweep.id)
            .bind(&sweep.name)
            .bind(state.as_str())
            .bind(&sweep.spec_toml)
            .bind(sweep.keep_checkpoints)
            .bind(i64::from(sweep.max_attempts))
            .bind(now)
            .bind(sweep.early_stopping.as_deref())
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
                .bind(NullableReal(c.gamma))
                .bind(NullableReal(c.omega))
                .bind(NullableReal(c.epsilon))
                .bind(c.lr)
                .bind(c.batch_size)
                .bind(i64::from(t.epochs))
                .bind(now)
                .bind(scheduler::stored_estimate(t.memory.bytes))
                .bind(&t.memory.shape)
                .execute(&mut *tx)
                .await?;
        }
        // A race holds every seed past its first waves until the waves before it are tested.
        if let Some(json) = &sweep.early_stopping {
            if let scheduler::early_stopping::Rule::Race { min_seeds, .. } = super::settle::parse_rule(&sweep.id, json)?
            {
                let mut seen: HashMap<&str, usize> = HashMap::new();
                let mut ordered: Vec<&super::NewTrial> = sweep.trials.iter().collect();
                ordered.sort_by_key(|t| t.ordinal);
                for t in ordered {
                    let wave = seen.entry(t.config_key.as_str()).or_default();
                    if *wave >= min_seeds as usize {
                        let why = super::settle::race_wait(*wave, min_seeds as usize);
                        sqlx::query(sql::SET_HOLD).bind(&t.id).bind(why).execute(&mut *tx).await?;
                    }
                    *wave += 1;
                }
            }
        }
        tx.commit().await?;
        Ok(true)
    }

    async fn sweep(&self, id: &str) -> Result<Option<SweepRow>> {
        let q = format!("SELECT {} FROM sweeps WHERE id = $1", sql::SWEEP_COLUMNS);
        let row = sqlx::query(&q).bind(id).fetch_optional(&self.pool).await?;
        row.as_ref().map(rows::sweep_row).transpose()
    }

    async fn sweeps(&self) -> Result<Vec<SweepRow>> {
        let q = format!("SELECT {} FROM sweeps ORDER BY created_at DESC, id DESC", sql::SWEEP_COLUMNS);
        sqlx::query(&q).fetch_all(&self.pool).await?.iter().map(rows::sweep_row).collect()
    }

    async fn trials(&self, sweep_id: &str) -> Result<Vec<TrialRow>> {
        let found = sqlx::query(sql::SELECT_TRIALS).bind(sweep_id).fetch_all(&self.pool).await?;
        found.iter().map(rows::trial_row).collect()
    }

    async fn trial(&self, trial_id: &str) -> Result<Option<TrialRow>> {
        let found = sqlx::query(sql::SELECT_TRIAL).bind(trial_id).fetch_optional(&self.pool).await?;
        found.as_ref().map(rows::trial_row).transpose()
    }

    async fn attempts(&self, trial_id: &str) -> Result<Vec<AttemptRow>> {
        let found = sqlx::query(sql::SELECT_ATTEMPTS).bind(trial_id).fetch_all(&self.pool).await?;
        found.iter().map(rows::attempt_row).collect()
    }

    async fn cancel_sweep(&self, id: &str, now: Millis) -> Result<bool> {
        let mut tx = self.write().await?;
        let q = format!("{}{}", sql::SWEEP_STATE, self.dialect.lock_rows("sweeps"));
        let Some(state) = sqlx::query(&q).bind(id).fetch_optional(&mut *tx).await? else {
            return Ok(false);
        };
        if state.text("state")? == SweepState::Active.as_str() {
            sqlx::query(sql::CANCEL_TRIALS).bind(id).bind(now).execute(&mut *tx).await?;
            sqlx::query(sql::CANCEL_ATTEMPTS).bind(id).bind(now).execute(&mut *tx).await?;
            sqlx::query(sql::MARK_SWEEP_CANCELLED).bind(id).bind(now).execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(true)
    }

    async fn register_worker(&self, w: &WorkerRow, key_hash: &str) -> Result<bool> {
        let registered = sqlx::query(sql::REGISTER_WORKER)
            .bind(&w.id)
            .bind(&w.host)
            .bind(&w.device)
            .bind(w.memory_bytes as i64)
            .bind(i64::from(w.slots))
            .bind(&w.version)
            .bind(w.registered_at)
            .bind(w.last_seen_at)
            .bind(key_hash)
            .bind(gpus_json(&w.gpus))
            .execute(&self.pool)
            .await?
            .rows_affected();
        Ok(registered > 0)
    }

    async fn worker_key_hash(&self, id: &str) -> Result<Option<String>> {
        let row = sqlx::query(sql::WORKER_KEY_HASH).bind(id).fetch_optional(&self.pool).await?;
        Ok(row.map(|r| r.text_opt("key_hash")).transpose()?.flatten())
    }

    async fn touch_worker(&self, id: &str, now: Millis) -> Result<Option<Touched>> {
        let touched = sqlx::query(sql::TOUCH_WORKER).bind(id).bind(now).fetch_optional(&self.pool).await?;
        touched.map(|r| rows::touched(&r)).transpose()
    }

    async fn drain_worker(&self, id: &str, drain: Drain) -> Result<Option<WorkerRow>> {
        let done = sqlx::query(sql::DRAIN_WORKER).bind(id).bind(drain.as_str()).execute(&self.pool).await?;
        if done.rows_affected() == 0 {
            return Ok(None);
        }
        let row = sqlx::query(sql::SELECT_WORKER).bind(id).fetch_optional(&self.pool).await?;
        row.map(|r| rows::worker_row(&r)).transpose()
    }

    async fn record_gpus(&self, id: &str, gpus: &[GpuStatus]) -> Result<()> {
        sqlx::query(sql::RECORD_GPUS).bind(id).bind(gpus_json(gpus)).execute(&self.pool).await?;
        Ok(())
    }

    async fn workers(&self) -> Result<Vec<WorkerRow>> {
        sqlx::query(sql::SELECT_WORKERS).fetch_all(&self.pool).await?.iter().map(rows::worker_row).collect()
    }

    async fn lease_fitting(
        &self,
        worker_id: &str,
        count: u32,
        memory: MemoryFit,
        now: Millis,
        expires_at: Millis,
    ) -> Result<Vec<Leased>> {
        if count == 0 {
            return Ok(Vec::new());
        }
        let lease = self.dialect.lease_statement();
        let q =
            sqlx::query(&lease).bind(worker_id).bind(i64::from(count)).bind(now).bind(expires_at).bind(memory.bytes);
        let (found, tx) = if self.dialect.lease_opens_attempts() {
            (q.fetch_all(&self.pool).await?, None)
        } else {
            let mut tx = self.write().await?;
            (q.fetch_all(&mut *tx).await?, Some(tx))
        };
        let mut leased = Vec::with_capacity(found.len());
        for r in &found {
            let order = (r.int("sweep_created_at")?, r.text("sweep_id")?, r.int("ordinal")?);
            let lease = Leased {
                trial_id: r.text("id")?,
                sweep_id: r.text("sweep_id")?,
                attempt: rows::small(r.int("attempt")?),
                config_toml: r.text("config_toml")?,
                checkpoint_epoch: r.int_opt("checkpoint_epoch")?.map(rows::small),
                lease_expires_at: r.int("lease_expires_at")?,
                memory_bytes: r.int("memory_bytes")?.max(0) as u64,
                pause_at_epoch: None,
            };
            let lease = match r.text_opt("early_stopping")? {
                Some(json) => {
                    let rule = super::settle::parse_rule(&lease.sweep_id, &json)?;
                    Leased { pause_at_epoch: rule.next_pause(lease.checkpoint_epoch.unwrap_or(0)), ..lease }
                }
                None => lease,
            };
            leased.push((order, lease));
        }
        if let Some(mut tx) = tx {
            for (_, lease) in &leased {
                sqlx::query(sql::INSERT_ATTEMPT)
                    .bind(&lease.trial_id)
                    .bind(i64::from(lease.attempt))
                    .bind(worker_id)
                    .bind(now)
                    .bind(lease.checkpoint_epoch.map(i64::from))
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await?;
        }
        leased.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(leased.into_iter().map(|(_, l)| l).collect())
    }

    async fn mark_groups(&self, worker_id: &str, groups: &[(AttemptRef, String)]) -> Result<()> {
        if groups.is_empty() {
            return Ok(());
        }
        let mut batch = Batch::new(self);
        for (attempt, group_id) in groups {
            let conn = batch.next().await?;
            sqlx::query(sql::MARK_GROUP)
                .bind(group_id)
                .bind(&attempt.trial_id)
                .bind(i64::from(attempt.attempt))
                .bind(worker_id)
                .execute(&mut *conn)
                .await?;
        }
        batch.commit().await
    }

    async fn renew(&self, worker_id: &str, running: &[Progress], expires_at: Millis) -> Result<Vec<String>> {
        let mut batch = Batch::new(self);
        let mut stop = Vec::new();
        for p in running {
            let conn = batch.next().await?;
            let renewed = sqlx::query(sql::RENEW)
                .bind(&p.trial_id)
                .bind(i64::from(p.attempt))
                .bind(worker_id)
                .bind(expires_at)
                .bind(i64::from(p.epoch))
                .execute(&mut *conn)
                .await?
                .rows_affected();
            if renewed == 0 {
                stop.push(p.trial_id.clone());
            }
        }
        batch.commit().await?;
        Ok(stop)
    }

    /// Each expired trial is re-checked under its locks: a renewal or completion may have
    /// come in since the candidates were read.
    async fn expire_leases(&self, now: Millis, outage: Option<Millis>) -> Result<Vec<Expired>> {
        let candidates = sqlx::query(sql::EXPIRED_CANDIDATES).bind(now).fetch_all(&self.pool).await?;
        let mut batch = Batch::new(self);
        let mut out = Vec::with_capacity(candidates.len());
        for c in &candidates {
            let attempt = AttemptRef { trial_id: c.text("id")?, attempt: rows::small(c.int("attempt")?) };
            let conn = batch.next().await?;
            let q = format!("{}{}", sql::STILL_EXPIRED, self.dialect.lock_rows("t"));
            let q = sqlx::query(&q).bind(&attempt.trial_id).bind(i64::from(attempt.attempt)).bind(now);
            let Some(r) = q.fetch_optional(&mut *conn).await? else {
                continue;
            };
            let holder = Holder {
                sweep_id: r.text("sweep_id")?,
                worker_id: r.text_opt("worker_id")?.unwrap_or_default(),
                keep_checkpoints: false,
                max_attempts: rows::small(r.int("max_attempts")?),
            };
            let why = match outage {
                Some(before) if r.int("lease_expires_at")? < before => ExpiryCause::Outage,
                _ => ExpiryCause::Worker,
            };
            let error = scheduler::expiry_error(&holder.worker_id, why);
            let next = self.end_attempt(conn, &attempt, &holder, Cause::Expired(why), &error, now).await?;
            out.push(Expired { trial_id: attempt.trial_id, attempt: attempt.attempt, next });
        }
        batch.commit().await?;
        // Early stopping: what the expiries change, and any settle lost to a restart.
        self.settle_all(now).await?;
        // Sweeps whose last trial failed for good here, and any whose finish was lost.
        sqlx::query(&sql::finish_done_sweeps()).bind(now).execute(&self.pool).await?;
        Ok(out)
    }

    /// A trial handed back at a rung of its sweep's rule is held in the same transaction, and
    /// its sweep settled after the commit.
    async fn release(&self, worker_id: &str, trials: &[AttemptRef], now: Millis) -> Result<()> {
        let mut batch = Batch::new(self);
        // The sweeps of trials held at a rung, settled after the commit.
        let mut to_settle = BTreeSet::new();
        for attempt in trials {
            let conn = batch.next().await?;
            let released = sqlx::query(sql::RELEASE)
                .bind(&attempt.trial_id)
                .bind(i64::from(attempt.attempt))
                .bind(worker_id)
                .execute(&mut *conn)
                .await?
                .rows_affected();
            if released > 0 {
                close_attempt(conn, attempt, AttemptOutcome::Released, None, now).await?;
                to_settle.extend(self.hold_at_rung(conn, &attempt.trial_id).await?);
            }
        }
        batch.commit().await?;
        for sweep_id in to_settle {
            self.settle_logged(&sweep_id, now).await;
        }
        Ok(())
    }

    async fn check_lease(&self, worker_id: &str, attempt: &AttemptRef) -> Result<()> {
        let row = sqlx::query(sql::HOLDER).bind(&attempt.trial_id).fetch_optional(&self.pool).await?;
        rows::holder(worker_id, &attempt.trial_id, attempt.attempt, row.as_ref()).map(|_| ())
    }

    async fn record_metrics(
        &self,
        worker_id: &str,
        trial_id: &str,
        attempt: u32,
        points: &[MetricPoint],
    ) -> Result<MetricsStored> {
        let mut tx = self.write().await?;
        self.holder(&mut tx, worker_id, trial_id, attempt).await?;
        let mut stored = 0;
        for chunk in points.chunks(sql::ROWS_PER_INSERT) {
            let statement = sql::insert_metrics(chunk.len());
            let mut q = sqlx::query(&statement);
            for p in chunk {
                q = q.bind(trial_id).bind(i64::from(p.epoch)).bind(&p.name).bind(p.value).bind(i64::from(attempt));
            }
            stored += q.execute(&mut *tx).await?.rows_affected();
        }
        tx.commit().await?;
        Ok(MetricsStored { stored, duplicates: points.len() as u64 - stored })
    }

    async fn record_checkpoint(&self, worker_id: &str, c: &CheckpointRow, now: Millis) -> Result<Option<String>> {
        let mut tx = self.write().await?;
        self.holder(&mut tx, worker_id, &c.trial_id, c.attempt).await?;
        let old = sqlx::query(sql::CHECKPOINT_FILE).bind(&c.trial_id).fetch_optional(&mut *tx).await?;
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
        row.as_ref().map(rows::checkpoint_row).transpose()
    }

    async fn checkpoint_files(&self) -> Result<Vec<String>> {
        let found = sqlx::query(sql::CHECKPOINT_FILES).fetch_all(&self.pool).await?;
        found.iter().map(|r| r.text("file")).collect()
    }

    async fn complete(
        &self,
        worker_id: &str,
        trial_id: &str,
        attempt: u32,
        done: &Completion,
        now: Millis,
    ) -> Result<Option<String>> {
        let mut tx = self.write().await?;
        let holder = self.holder(&mut tx, worker_id, trial_id, attempt).await?;
        let m = &done.metrics;
        sqlx::query(sql::INSERT_RESULT)
            .bind(trial_id)
            .bind(m.jaccard)
            .bind(m.dice)
            .bind(m.precision)
            .bind(m.recall)
            .bind(m.tnr)
            .bind(m.accuracy)
            .bind(NullableReal(m.auc))
            .bind(&done.split)
            .bind(i64::from(done.epochs))
            .bind(done.parameters as i64)
            .bind(now)
            .bind(NullableReal(m.keras.map(|k| k.jaccard)))
            .bind(NullableReal(m.keras.map(|k| k.dice)))
            .bind(NullableReal(m.keras.map(|k| k.recall)))
            .bind(NullableReal(m.keras.map(|k| k.tnr)))
            .bind((done.selected_epoch > 0).then_some(i64::from(done.selected_epoch)))
            .execute(&mut *tx)
            .await?;
        for (c, chunk) in done.roc.chunks(sql::ROWS_PER_INSERT).enumerate() {
            let statement = sql::insert_roc(chunk.len());
            let mut q = sqlx::query(&statement);
            for (i, p) in chunk.iter().enumerate() {
                let idx = (c * sql::ROWS_PER_INSERT + i) as i64;
                q = q.bind(trial_id).bind(idx).bind(p.threshold).bind(p.fpr).bind(p.tpr);
            }
            q.execute(&mut *tx).await?;
        }
        let q = sqlx::query(sql::COMPLETE_TRIAL).bind(trial_id).bind(i64::from(done.epochs)).bind(now);
        q.execute(&mut *tx).await?;
        let this = AttemptRef { trial_id: trial_id.to_string(), attempt };
        close_attempt(&mut tx, &this, AttemptOutcome::Completed, None, now).await?;
        let mut delete = None;
        if !holder.keep_checkpoints {
            let q = sqlx::query(sql::DELETE_CHECKPOINT).bind(trial_id);
            delete = q.fetch_optional(&mut *tx).await?.map(|r| r.text("file")).transpose()?;
        }
        tx.commit().await?;
        // A race's wave may be done now: its test opens the next wave or stops seeds (and
        // the last wave's is recorded before the sweep finishes).
        self.settle_logged(&holder.sweep_id, now).await;
        self.finish_sweep_if_done(&holder.sweep_id, now).await;
        Ok(delete)
    }

    async fn fail(
        &self,
        worker_id: &str,
        trial_id: &str,
        attempt: u32,
        error: &str,
        fault: TrialFault,
        now: Millis,
    ) -> Result<Requeue> {
        let mut tx = self.write().await?;
        let holder = self.holder(&mut tx, worker_id, trial_id, attempt).await?;
        let this = AttemptRef { trial_id: trial_id.to_string(), attempt };
        let next = self.end_attempt(&mut tx, &this, &holder, Cause::Failed(fault), error, now).await?;
        tx.commit().await?;
        if next == Requeue::Failed {
            self.finish_sweep_if_done(&holder.sweep_id, now).await;
        }
        // A trial that ended or went back to a rung may let others at their rungs go on.
        self.settle_logged(&holder.sweep_id, now).await;
        Ok(next)
    }

    async fn results(&self, sweep_id: &str) -> Result<Vec<ResultRow>> {
        let found = sqlx::query(sql::SELECT_RESULTS).bind(sweep_id).fetch_all(&self.pool).await?;
        found.iter().map(rows::result_row).collect()
    }

    async fn metric_points(&self, trial_id: &str) -> Result<Vec<MetricPoint>> {
        let found = sqlx::query(sql::SELECT_METRICS).bind(trial_id).fetch_all(&self.pool).await?;
        found.iter().map(rows::metric_point).collect()
    }

    async fn roc(&self, trial_id: &str) -> Result<Vec<RocPoint>> {
        sqlx::query(sql::SELECT_ROC).bind(trial_id).fetch_all(&self.pool).await?.iter().map(rows::roc_point).collect()
    }

    async fn settle_early_stopping(&self, sweep_id: &str, now: Millis) -> Result<u32> {
        self.settle(sweep_id, now).await
    }

    async fn decisions(&self, sweep_id: &str) -> Result<Vec<DecisionRow>> {
        self.select_decisions(sweep_id).await
    }

    async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    async fn schema_status(&self) -> Result<SchemaStatus> {
        let row = sqlx::query(sql::COUNT_MIGRATIONS).fetch_one(&self.pool).await?;
        let applied = u32::try_from(row.int("n")?).unwrap_or(u32::MAX);
        Ok(SchemaStatus { applied, known: self.dialect.migrations().len() as u32 })
    }

    async fn census(&self) -> Result<Census> {
        let mut census = Census::default();
        for r in sqlx::query(sql::CENSUS_TRIALS).fetch_all(&self.pool).await? {
            let state = r.text("state")?;
            let state = TrialState::parse(&state)
                .ok_or_else(|| super::StoreError::Constraint(format!("unknown trial state {state:?}")))?;
            census.trials.push((r.text("sweep_id")?, r.text("sweep_name")?, state, r.int("n")?.max(0) as u64));
        }
        for r in sqlx::query(sql::CENSUS_ATTEMPTS).fetch_all(&self.pool).await? {
            let outcome = r.text("outcome")?;
            let outcome = AttemptOutcome::parse(&outcome)
                .ok_or_else(|| super::StoreError::Constraint(format!("unknown attempt outcome {outcome:?}")))?;
            census.attempts.push((outcome, r.int("n")?.max(0) as u64));
        }
        census.leasable = sqlx::query(sql::CENSUS_LEASABLE).fetch_one(&self.pool).await?.int("n")?.max(0) as u64;
        Ok(census)
    }

    /// A new token is never revoked: `revoked_at` is not written.
    async fn insert_token(&self, t: &TokenRow) -> Result<()> {
        sqlx::query(sql::INSERT_TOKEN)
            .bind(&t.id)
            .bind(&t.name)
            .bind(t.role.as_str())
            .bind(&t.hash)
            .bind(t.created_at)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn tokens(&self) -> Result<Vec<TokenRow>> {
        sqlx::query(sql::SELECT_TOKENS).fetch_all(&self.pool).await?.iter().map(rows::token_row).collect()
    }

    async fn revoke_token(&self, id: &str, now: Millis) -> Result<Option<TokenRow>> {
        let row = sqlx::query(sql::REVOKE_TOKEN).bind(id).bind(now).fetch_optional(&self.pool).await?;
        row.as_ref().map(rows::token_row).transpose()
    }
}

/// `workers.gpus`: NULL for a worker without GPUs.
fn gpus_json(gpus: &[GpuStatus]) -> Option<String> {
    (!gpus.is_empty()).then(|| serde_json::to_string(gpus).unwrap_or_default())
}
