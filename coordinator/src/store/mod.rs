//! The database: the coordinator's only state. One [`Store`] trait and one implementation,
//! [`SqlStore`], written once over a small [`Dialect`]: SQLite (the embedded default, WAL
//! mode, writes serialised) and Postgres (clusters, leasing with `FOR UPDATE SKIP LOCKED`).
//! Migrations in `migrations/sqlite` and `migrations/postgres` are applied when a store opens.
//!
//! The store executes the transitions of [`crate::scheduler`], which decides them. Every
//! write that a worker makes names (worker, trial, attempt); the store checks, in the same
//! transaction as the write, that this worker still holds the trial's lease under this
//! attempt and refuses it otherwise ([`StoreError::Superseded`], [`StoreError::NotHolder`]). Times are milliseconds since the Unix epoch.

mod body;
mod dialect;
mod rows;
mod settle;
mod statements;

pub use body::SqlStore;
pub use dialect::Dialect;

pub use crate::access::Role;
pub use crate::scheduler::{AttemptOutcome, MemoryFit, Requeue, SweepState, TrialFault, TrialState};

use std::sync::Arc;

use allsweep_proto::fault::CallFault;
use async_trait::async_trait;
use serde::Serialize;
use sqlx::error::ErrorKind;

/// Milliseconds since the Unix epoch.
pub type Millis = i64;

/// The wall clock in [`Millis`].
pub fn now_ms() -> Millis {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A worker wrote for an attempt that no longer holds the trial (its lease expired and
    /// the trial went to another attempt, or the trial was cancelled or finished).
    #[error("trial {trial_id} attempt {attempt} is superseded: {reason}")]
    Superseded { trial_id: String, attempt: u32, reason: String },
    /// A worker wrote for an attempt that another worker holds.
    #[error("trial {trial_id} attempt {attempt} is leased to another worker")]
    NotHolder { trial_id: String, attempt: u32 },
    #[error("{0} not found")]
    NotFound(String),
    /// The write broke a constraint of the schema: the caller's data is wrong, and sending
    /// it again cannot help.
    #[error("refused by the database: {0}")]
    Constraint(String),
    /// The database could not be reached or failed: the same call may succeed later.
    #[error("database: {0}")]
    Database(sqlx::Error),
    #[error("migrations: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("unsupported database URL {0:?}: use sqlite://PATH or postgres://...")]
    Url(String),
}

impl From<sqlx::Error> for StoreError {
    /// A violated constraint is the caller's error; everything else is the database's.
    fn from(error: sqlx::Error) -> Self {
        match error.as_database_error() {
            Some(db)
                if matches!(
                    db.kind(),
                    ErrorKind::UniqueViolation
                        | ErrorKind::ForeignKeyViolation
                        | ErrorKind::NotNullViolation
                        | ErrorKind::CheckViolation
                ) =>
            {
                StoreError::Constraint(db.message().to_string())
            }
            _ => StoreError::Database(error),
        }
    }
}

impl StoreError {
    /// Whether the caller should try the same call again later ([`CallFault`], the one
    /// classification the workers read too).
    pub fn fault(&self) -> CallFault {
        match self {
            StoreError::Database(_) | StoreError::Migrate(_) => CallFault::Transient,
            StoreError::Superseded { .. }
            | StoreError::NotHolder { .. }
            | StoreError::NotFound(_)
            | StoreError::Constraint(_)
            | StoreError::Url(_) => CallFault::Refused,
        }
    }
}

pub type Result<T> = std::result::Result<T, StoreError>;

/// A sweep to insert, with all its trials (one transaction).
#[derive(Debug, Clone)]
pub struct NewSweep {
    /// Stable id from the normalised spec: resubmitting the same spec finds it.
    pub id: String,
    pub name: String,
    pub spec_toml: String,
    pub keep_checkpoints: bool,
    pub max_attempts: u32,
    /// The sweep's early-stopping rule (`scheduler::early_stopping::Rule` as JSON).
    pub early_stopping: Option<String>,
    pub trials: Vec<NewTrial>,
}

/// A trial to insert, queued.
#[derive(Debug, Clone)]
pub struct NewTrial {
    /// Stable key from the resolved config and seed.
    pub id: String,
    pub ordinal: u32,
    /// The grid point and seed, for people: `loss.kind=all model.arch=unet seed=1`.
    pub label: String,
    /// The grid point as a JSON object of dotted keys (`{"loss.omega": 6}`); `{}` without a grid.
    pub params_json: String,
    /// Identifies the trial's config without its seed: trials that differ only in seed share it.
    pub config_key: String,
    /// The resolved trial as a RUN.toml.
    pub config_toml: String,
    pub seed: u64,
    pub epochs: u32,
    /// Config fields flattened into columns for dashboards.
    pub columns: TrialColumns,
    /// The device memory the trial is expected to need (`allsweep_config::memory`), and the
    /// shape whose trials share that need.
    pub memory: allsweep_config::MemoryEstimate,
}

/// The config fields every dashboard wants as plain columns.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct TrialColumns {
    pub dataset: String,
    pub arch: String,
    pub width: i64,
    pub loss: String,
    /// The base loss of `all`; `None` for other losses.
    pub base_loss: Option<String>,
    pub gamma: Option<f64>,
    pub omega: Option<f64>,
    pub epsilon: Option<f64>,
    pub lr: f64,
    pub batch_size: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SweepRow {
    pub id: String,
    pub name: String,
    pub state: SweepState,
    pub spec_toml: String,
    pub keep_checkpoints: bool,
    pub max_attempts: u32,
    pub created_at: Millis,
    /// Its early-stopping rule as JSON (`scheduler::early_stopping::Rule`), if any.
    pub early_stopping: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TrialRow {
    pub id: String,
    pub sweep_id: String,
    pub ordinal: u32,
    pub label: String,
    pub params_json: String,
    pub config_key: String,
    pub config_toml: String,
    pub seed: u64,
    pub state: TrialState,
    /// Attempts started so far (0 while never leased).
    pub attempt: u32,
    pub worker_id: Option<String>,
    pub lease_expires_at: Option<Millis>,
    /// Epochs finished, as last reported.
    pub epoch: u32,
    pub epochs: u32,
    pub error: Option<String>,
    /// The device memory it is expected to need (0 for trials stored before estimates).
    pub memory_bytes: u64,
    /// The fused group its latest attempt trains or trained in (`attempts.group_id`).
    pub group_id: Option<String>,
    /// Why it waits, queued, at a rung for its sweep's early-stopping decision.
    pub hold: Option<String>,
    /// Stopped by early stopping: the epoch it reached and the rule (`asha`, `median`).
    pub stopped_epoch: Option<u32>,
    pub stop_rule: Option<String>,
    /// For people: why it waits, or why it was stopped.
    pub note: Option<String>,
}

/// A trial handed to a worker.
#[derive(Debug, Clone, PartialEq)]
pub struct Leased {
    pub trial_id: String,
    pub sweep_id: String,
    pub attempt: u32,
    pub config_toml: String,
    /// The epoch of the trial's latest checkpoint, when it has one: resume from it.
    pub checkpoint_epoch: Option<u32>,
    pub lease_expires_at: Millis,
    /// The device memory it is expected to need (`trials.memory_bytes`).
    pub memory_bytes: u64,
    /// Early stopping: the rung it trains to and is handed back at (`None`: to the end).
    pub pause_at_epoch: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WorkerRow {
    pub id: String,
    pub host: String,
    pub device: String,
    pub memory_bytes: u64,
    pub slots: u32,
    pub version: String,
    pub registered_at: Millis,
    pub last_seen_at: Millis,
    /// Trials running on it now.
    pub running: u32,
    /// Its GPUs as its registration or last heartbeat reported them; empty on a CPU worker.
    pub gpus: Vec<GpuStatus>,
    /// Asked to leave (`allsweep workers drain`); `None` while it may lease.
    pub drain: Option<Drain>,
}

/// How a worker asked to leave goes (`workers.drain`). A draining worker is leased nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Drain {
    /// Finish the running trials, then exit.
    Finish,
    /// Checkpoint and release the running trials at once, then exit.
    Now,
}

impl Drain {
    pub fn as_str(self) -> &'static str {
        match self {
            Drain::Finish => "finish",
            Drain::Now => "now",
        }
    }

    pub fn parse(word: &str) -> Option<Self> {
        [Drain::Finish, Drain::Now].into_iter().find(|d| d.as_str() == word)
    }
}

/// How long a health probe (`/readyz`, the gRPC health service) waits for the database before
/// it says not ready: a database cut off silently would otherwise hold it for the pool's
/// acquire timeout.
pub const PROBE_DEADLINE: std::time::Duration = std::time::Duration::from_secs(2);

/// What marking a worker seen tells about it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Touched {
    /// Its registered slots.
    pub slots: u32,
    pub drain: Option<Drain>,
}

/// One GPU of a worker, as stored in `workers.gpus` (JSON).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct GpuStatus {
    /// The CUDA index the worker trains on.
    pub index: u32,
    pub name: String,
    pub memory_total_bytes: u64,
    pub memory_used_bytes: u64,
    pub utilization_percent: u32,
    /// The worker's trials running on it.
    pub trials: u32,
}

/// A token as stored: its secret never, only the secret's SHA-256 (hex).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRow {
    pub id: String,
    /// Who or what holds it ("alice", "gpu-nodes").
    pub name: String,
    pub role: Role,
    pub hash: String,
    pub created_at: Millis,
    pub revoked_at: Option<Millis>,
}

/// One metric value of one epoch.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MetricPoint {
    pub epoch: u32,
    pub name: String,
    pub value: f64,
}

/// Final test metrics of a trial.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct FinalMetrics {
    pub jaccard: f64,
    pub dice: f64,
    pub precision: f64,
    pub recall: f64,
    pub tnr: f64,
    pub accuracy: f64,
    pub auc: Option<f64>,
    /// The authors' Keras-style metrics of the same test samples; `None` for results stored
    /// before they were measured.
    pub keras: Option<KerasMetrics>,
}

/// The authors' Keras-style test metrics: soft Jaccard and Dice, +1-smoothed, recall and TNR
/// rounded at 0.5, each per batch and averaged over the batches (the worker's
/// `metrics::keras` says how).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct KerasMetrics {
    pub jaccard: f64,
    pub dice: f64,
    pub recall: f64,
    pub tnr: f64,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct RocPoint {
    pub threshold: f64,
    pub fpr: f64,
    pub tpr: f64,
}

/// What a worker reports when a trial completes.
#[derive(Debug, Clone, PartialEq)]
pub struct Completion {
    pub metrics: FinalMetrics,
    pub roc: Vec<RocPoint>,
    pub split: String,
    pub epochs: u32,
    pub parameters: u64,
    /// The 1-based epoch whose weights were tested (`train.select`); 0 when not said.
    pub selected_epoch: u32,
}

/// A completed trial's results, for reports.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ResultRow {
    pub trial_id: String,
    pub label: String,
    pub params_json: String,
    pub config_key: String,
    pub seed: u64,
    pub metrics: FinalMetrics,
    pub split: String,
    /// The epoch whose weights were tested; `None` when not recorded.
    pub selected_epoch: Option<u32>,
}

/// The latest checkpoint of a trial.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckpointRow {
    pub trial_id: String,
    pub attempt: u32,
    pub epoch: u32,
    pub step: u32,
    /// File name inside the coordinator's artifact directory.
    pub file: String,
    pub sha256: String,
    pub bytes: u64,
}

/// One attempt of a trial, as the attempts table records it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AttemptRow {
    pub trial_id: String,
    pub attempt: u32,
    pub worker_id: String,
    pub started_at: Millis,
    pub ended_at: Option<Millis>,
    pub outcome: AttemptOutcome,
    /// The checkpoint epoch it resumed from (None: from scratch).
    pub resumed_from_epoch: Option<u32>,
    pub error: Option<String>,
    /// Why an expired attempt expired: `worker` (counts against `max_attempts`) or `outage`
    /// (does not); `oom` for a failed one that ran out of device memory (does not count);
    /// `None` for other outcomes.
    pub cause: Option<String>,
    /// The fused group it trained in, shared by the attempts that trained as one network;
    /// `None` for an attempt alone.
    pub group_id: Option<String>,
}

/// A running trial as its worker reports it: which attempt, and how many epochs are done.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Progress {
    pub trial_id: String,
    pub attempt: u32,
    pub epoch: u32,
}

/// One attempt of one trial, named by a worker's write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttemptRef {
    pub trial_id: String,
    pub attempt: u32,
}

/// A lease that ran out, and where its trial went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expired {
    pub trial_id: String,
    pub attempt: u32,
    pub next: Requeue,
}

/// One early-stopping decision, as the decisions table records it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DecisionRow {
    pub trial_id: String,
    pub ordinal: u32,
    pub label: String,
    /// 0-based rung, and its epoch.
    pub rung: u32,
    pub epoch: u32,
    pub rule: String,
    pub metric: String,
    pub value: Option<f64>,
    /// `promoted` or `stopped`.
    pub verdict: String,
    pub reason: String,
}

/// What became of a batch of metric points.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MetricsStored {
    /// New points stored.
    pub stored: u64,
    /// Points already stored for (trial, epoch, name): retransmissions, changed nothing.
    pub duplicates: u64,
}

/// How many trials each sweep has in each state, and how the attempts ended: what the
/// coordinator's `/metrics` reports, read from the database at each scrape (so every
/// coordinator of one database reports the same, and a restart loses nothing).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Census {
    /// (sweep id, sweep name, state, trials), by sweep then state; states with no trial left out.
    pub trials: Vec<(String, String, TrialState, u64)>,
    /// Attempts by outcome (`running` for open ones).
    pub attempts: Vec<(AttemptOutcome, u64)>,
    /// Queued trials of active sweeps that a worker may lease now (not held at a rung).
    pub leasable: u64,
}

/// Which migrations the database has, against those this coordinator knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SchemaStatus {
    pub applied: u32,
    pub known: u32,
}

#[async_trait]
pub trait Store: Send + Sync {
    /// Inserts a sweep and its trials in one transaction. `Ok(false)` (and nothing written)
    /// when a sweep with this id exists.
    async fn insert_sweep(&self, sweep: &NewSweep, now: Millis) -> Result<bool>;
    async fn sweep(&self, id: &str) -> Result<Option<SweepRow>>;
    /// Every sweep, newest first.
    async fn sweeps(&self) -> Result<Vec<SweepRow>>;
    /// The trials of a sweep in ordinal order.
    async fn trials(&self, sweep_id: &str) -> Result<Vec<TrialRow>>;
    /// One trial by id.
    async fn trial(&self, trial_id: &str) -> Result<Option<TrialRow>>;
    async fn attempts(&self, trial_id: &str) -> Result<Vec<AttemptRow>>;
    /// Cancels a sweep: queued and running trials become cancelled (their attempts'
    /// later writes are refused) and so does the sweep, or it is marked finished when every
    /// trial had already settled; `Ok(false)` if there is no such sweep.
    async fn cancel_sweep(&self, id: &str, now: Millis) -> Result<bool>;

    /// Inserts a worker with the SHA-256 of its key, or updates a known one registering again
    /// with the same key (or one registered before keys existed). `Ok(false)`, and nothing
    /// written, when the id belongs to a worker with another key.
    async fn register_worker(&self, worker: &WorkerRow, key_hash: &str) -> Result<bool>;
    /// The SHA-256 of a worker's key; `None` for an unknown worker (or one without a key).
    async fn worker_key_hash(&self, id: &str) -> Result<Option<String>>;
    /// Marks a worker seen; returns its registered slots and whether it drains, `None` for
    /// an unknown worker.
    async fn touch_worker(&self, id: &str, now: Millis) -> Result<Option<Touched>>;
    /// Asks a worker to leave (`Drain::Now` stays once asked: a worker releasing its trials
    /// cannot take them back); the worker as it now stands, `None` for an unknown one.
    async fn drain_worker(&self, id: &str, drain: Drain) -> Result<Option<WorkerRow>>;
    /// Records a worker's GPUs as its heartbeat reports them.
    async fn record_gpus(&self, id: &str, gpus: &[GpuStatus]) -> Result<()>;
    async fn workers(&self) -> Result<Vec<WorkerRow>>;

    /// Leases up to `count` queued trials of active sweeps (oldest sweep first, then
    /// ordinal), atomically: each goes to exactly one caller. Each leased trial's attempt
    /// grows by one, its state becomes running, and an attempts row is opened.
    async fn lease(&self, worker_id: &str, count: u32, now: Millis, expires_at: Millis) -> Result<Vec<Leased>> {
        self.lease_fitting(worker_id, count, MemoryFit::from_request(0), now, expires_at).await
    }
    /// [`Store::lease`] for a worker that knows its free memory: only trials whose estimate
    /// fits `memory`, and only as many as fit together ([`MemoryFit`]).
    async fn lease_fitting(
        &self,
        worker_id: &str,
        count: u32,
        memory: MemoryFit,
        now: Millis,
        expires_at: Millis,
    ) -> Result<Vec<Leased>>;
    /// Marks attempts `worker_id` holds as members of fused groups: each (attempt, group id).
    async fn mark_groups(&self, worker_id: &str, groups: &[(AttemptRef, String)]) -> Result<()>;
    /// Renews the leases of the `running` trials held by `worker_id` and records their
    /// epoch. Returns the trial ids the worker must stop: not running any more under that
    /// attempt (cancelled, superseded, finished).
    async fn renew(&self, worker_id: &str, running: &[Progress], expires_at: Millis) -> Result<Vec<String>>;
    /// Requeues (or fails, past `max_attempts`) every running trial whose lease expired
    /// before `now`; closes those attempts as `expired`. A lease expiring before `outage`
    /// was last renewed before the coordinator or its database came back from an outage: its
    /// attempt's cause is `outage` and it does not count against `max_attempts`; the others'
    /// is `worker`.
    async fn expire_leases(&self, now: Millis, outage: Option<Millis>) -> Result<Vec<Expired>>;
    /// A leaving worker gives trials back: requeued at once (attempts closed as `released`).
    async fn release(&self, worker_id: &str, trials: &[AttemptRef], now: Millis) -> Result<()>;

    // Every write of a worker names the worker, and is refused unless that worker holds the
    // trial's lease under that attempt, checked in the write's own transaction:
    // [`StoreError::Superseded`] for an attempt that no longer holds it, [`StoreError::NotHolder`]
    // for another worker's attempt, [`StoreError::NotFound`] for an unknown trial.

    /// `Ok` while `worker_id` holds `trial_id`'s lease under `attempt`. A check before work
    /// whose write re-checks.
    async fn check_lease(&self, worker_id: &str, attempt: &AttemptRef) -> Result<()>;
    /// Stores metric points once: a point already stored for (trial, epoch, name) is a
    /// duplicate and changes nothing.
    async fn record_metrics(
        &self,
        worker_id: &str,
        trial_id: &str,
        attempt: u32,
        points: &[MetricPoint],
    ) -> Result<MetricsStored>;
    /// Records a new latest checkpoint; returns the file of the one it replaces, if any
    /// and if different, for deletion.
    async fn record_checkpoint(
        &self,
        worker_id: &str,
        checkpoint: &CheckpointRow,
        now: Millis,
    ) -> Result<Option<String>>;
    async fn checkpoint(&self, trial_id: &str) -> Result<Option<CheckpointRow>>;
    /// The file of every checkpoint row: the artifact files in use.
    async fn checkpoint_files(&self) -> Result<Vec<String>>;
    /// Completes a trial: state, final metrics and ROC curve in one transaction; the
    /// checkpoint row is removed unless the sweep keeps checkpoints. The sweep is marked
    /// finished right after the commit if this was its last unsettled trial. Returns the
    /// checkpoint file to delete, if any.
    async fn complete(
        &self,
        worker_id: &str,
        trial_id: &str,
        attempt: u32,
        completion: &Completion,
        now: Millis,
    ) -> Result<Option<String>>;
    /// A failed attempt: the scheduler decides from `fault` and the attempts so far whether
    /// the trial is queued again or fails for good ([`crate::scheduler::after_failure`]).
    async fn fail(
        &self,
        worker_id: &str,
        trial_id: &str,
        attempt: u32,
        error: &str,
        fault: TrialFault,
        now: Millis,
    ) -> Result<Requeue>;

    /// Completed trials' results of a sweep, in ordinal order.
    async fn results(&self, sweep_id: &str) -> Result<Vec<ResultRow>>;
    /// A trial's metric points, by epoch then name.
    async fn metric_points(&self, trial_id: &str) -> Result<Vec<MetricPoint>>;
    async fn roc(&self, trial_id: &str) -> Result<Vec<RocPoint>>;

    /// A trivial round trip to the database: whether it answers, and how fast.
    async fn ping(&self) -> Result<()>;
    /// The migrations applied, against those this build knows (ready when equal).
    async fn schema_status(&self) -> Result<SchemaStatus>;
    /// Trials by sweep and state, attempts by outcome, and the leasable queue.
    async fn census(&self) -> Result<Census>;

    /// Applies sweep `sweep_id`'s early-stopping rule to what is stored, in one transaction
    /// under the sweep's lock: records the decisions made, lets promoted trials held at a
    /// rung be leased again, stops those stopped, and says why the others wait. Returns
    /// the number of trials it stopped or let go. Nothing for a sweep without a rule, or not
    /// active. Decisions are a function of the stored metrics, so running it again (after a
    /// restart, or twice) changes nothing.
    async fn settle_early_stopping(&self, sweep_id: &str, now: Millis) -> Result<u32>;
    /// Sweep `sweep_id`'s early-stopping decisions, in trial and rung order.
    async fn decisions(&self, sweep_id: &str) -> Result<Vec<DecisionRow>>;

    /// Stores a new token (its hash only).
    async fn insert_token(&self, token: &TokenRow) -> Result<()>;
    /// Every token, revoked ones included, oldest first.
    async fn tokens(&self) -> Result<Vec<TokenRow>>;
    /// Revokes a token at `now` (a revoked one keeps its first revocation time); `None` when
    /// there is no such token.
    async fn revoke_token(&self, id: &str, now: Millis) -> Result<Option<TokenRow>>;
}

/// Opens the store named by a URL (`sqlite://PATH`, `sqlite::memory:`, `postgres://...`),
/// creating the database file if needed and applying migrations.
pub async fn open(url: &str) -> Result<Arc<dyn Store>> {
    Ok(Arc::new(SqlStore::open(url).await?))
}

#[cfg(test)]
mod tests;
