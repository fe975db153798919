//! The SQL both dialects read alike (`$n` parameters work in both). Statements that differ
//! live in [`super::dialect`]; statements built from a scheduler rule are functions here.

use crate::scheduler::{ExpiryCause, TrialState, COUNTED_OUTCOMES, OUT_OF_MEMORY_CAUSE};

/// `keep_checkpoints` is read as an integer: sqlx's `Any` driver cannot decode SQLite's
/// BOOLEAN, and 0/1 reads alike on both databases.
pub(super) const SWEEP_COLUMNS: &str = "id, name, state, spec_toml, \
     CASE WHEN keep_checkpoints THEN 1 ELSE 0 END AS keep_checkpoints, max_attempts, created_at, early_stopping";

pub(super) const INSERT_SWEEP: &str = "INSERT INTO sweeps (id, name, state, spec_toml, keep_checkpoints, \
     max_attempts, created_at, early_stopping) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (id) DO NOTHING";

pub(super) const INSERT_TRIAL: &str = "INSERT INTO trials (id, sweep_id, ordinal, label, params_json, \
     config_key, config_toml, seed, dataset, arch, width, loss, base_loss, gamma, omega, epsilon, lr, \
     batch_size, epochs, created_at, memory_bytes, memory_shape) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, \
     $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22)";

pub(super) const SELECT_TRIALS: &str = "SELECT id, sweep_id, ordinal, label, params_json, config_key, \
     config_toml, seed, state, attempt, worker_id, lease_expires_at, epoch, epochs, error, memory_bytes, \
     (SELECT a.group_id FROM attempts a WHERE a.trial_id = trials.id AND a.attempt = trials.attempt) AS group_id, \
     hold, stopped_epoch, stop_rule, COALESCE(hold, (SELECT d.reason FROM decisions d WHERE d.trial_id = trials.id \
     AND d.verdict = 'stopped')) AS note FROM trials WHERE sweep_id = $1 ORDER BY ordinal";

pub(super) const SELECT_TRIAL: &str = "SELECT id, sweep_id, ordinal, label, params_json, config_key, \
     config_toml, seed, state, attempt, worker_id, lease_expires_at, epoch, epochs, error, memory_bytes, \
     (SELECT a.group_id FROM attempts a WHERE a.trial_id = trials.id AND a.attempt = trials.attempt) AS group_id, \
     hold, stopped_epoch, stop_rule, COALESCE(hold, (SELECT d.reason FROM decisions d WHERE d.trial_id = trials.id \
     AND d.verdict = 'stopped')) AS note FROM trials WHERE id = $1";

pub(super) const SELECT_ATTEMPTS: &str = "SELECT trial_id, attempt, worker_id, started_at, ended_at, outcome, \
     resumed_from_epoch, error, cause, group_id FROM attempts WHERE trial_id = $1 ORDER BY attempt";

/// Marks a leased attempt as one of a fused group; only the worker that holds it.
pub(super) const MARK_GROUP: &str =
    "UPDATE attempts SET group_id = $1 WHERE trial_id = $2 AND attempt = $3 AND worker_id = $4";

/// Registers a worker; a known id is updated only with its own key hash (`$9`), or when it
/// has none (registered before keys existed): no row changes otherwise.
pub(super) const REGISTER_WORKER: &str = "INSERT INTO workers (id, host, device, memory_bytes, slots, version, \
     registered_at, last_seen_at, key_hash, gpus) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) ON CONFLICT (id) DO UPDATE SET \
     host = excluded.host, device = excluded.device, memory_bytes = excluded.memory_bytes, \
     slots = excluded.slots, version = excluded.version, last_seen_at = excluded.last_seen_at, \
     key_hash = excluded.key_hash, gpus = excluded.gpus WHERE workers.key_hash IS NULL OR workers.key_hash = excluded.key_hash";

pub(super) const WORKER_KEY_HASH: &str = "SELECT key_hash FROM workers WHERE id = $1";

pub(super) const INSERT_TOKEN: &str =
    "INSERT INTO tokens (id, name, role, hash, created_at) VALUES ($1, $2, $3, $4, $5)";

pub(super) const SELECT_TOKENS: &str =
    "SELECT id, name, role, hash, created_at, revoked_at FROM tokens ORDER BY created_at, id";

pub(super) const REVOKE_TOKEN: &str = "UPDATE tokens SET revoked_at = COALESCE(revoked_at, $2) WHERE id = $1 \
     RETURNING id, name, role, hash, created_at, revoked_at";

/// The columns `rows::worker_row` reads, each worker with its running trials, then `$tail`.
macro_rules! select_workers {
    ($tail:literal) => {
        concat!(
            "SELECT w.id, w.host, w.device, w.memory_bytes, w.slots, w.version, w.registered_at, ",
            "w.last_seen_at, w.gpus, w.drain, (SELECT count(*) FROM trials t WHERE t.worker_id = w.id ",
            "AND t.state = 'running') AS running FROM workers w",
            $tail
        )
    };
}

pub(super) const SELECT_WORKERS: &str = select_workers!(" ORDER BY w.id");

pub(super) const SELECT_WORKER: &str = select_workers!(" WHERE w.id = $1");

pub(super) const INSERT_ATTEMPT: &str = "INSERT INTO attempts (trial_id, attempt, worker_id, started_at, \
     outcome, resumed_from_epoch) VALUES ($1, $2, $3, $4, 'running', $5)";

/// Closes an attempt: `$3` outcome, `$4` time, `$5` error.
pub(super) const CLOSE_ATTEMPT: &str =
    "UPDATE attempts SET outcome = $3, ended_at = $4, error = $5 WHERE trial_id = $1 AND attempt = $2";

/// A trial's memory estimate and the shape that shares it.
pub(super) const MEMORY_ESTIMATE: &str = "SELECT memory_bytes, memory_shape FROM trials WHERE id = $1";

/// Sets trial `$1`'s memory estimate to `$2` bytes.
pub(super) const SET_MEMORY_ESTIMATE: &str = "UPDATE trials SET memory_bytes = $2 WHERE id = $1";

/// Raises every queued trial of shape `$1` (not the empty shape of trials stored before
/// estimates) to at least `$2` bytes.
pub(super) const RAISE_SHAPE_ESTIMATE: &str = "UPDATE trials SET memory_bytes = $2 \
     WHERE memory_shape = $1 AND memory_shape <> '' AND state = 'queued' AND memory_bytes < $2";

/// Records why attempt (`$1`, `$2`) expired: `$3`, `worker` or `outage`.
pub(super) const SET_ATTEMPT_CAUSE: &str = "UPDATE attempts SET cause = $3 WHERE trial_id = $1 AND attempt = $2";

/// Renews one lease; no row changed means the worker must stop that trial.
pub(super) const RENEW: &str = "UPDATE trials SET lease_expires_at = $4, epoch = $5 \
     WHERE id = $1 AND attempt = $2 AND worker_id = $3 AND state = 'running'";

/// Gives one leased trial back to the queue.
pub(super) const RELEASE: &str = "UPDATE trials SET state = 'queued', worker_id = NULL, lease_expires_at = NULL \
     WHERE id = $1 AND attempt = $2 AND worker_id = $3 AND state = 'running'";

/// A trial whose attempt ended without completing: `$2` state (queued or failed), `$3` error,
/// `$4` finished_at (set only when failed for good).
pub(super) const END_ATTEMPT_ON_TRIAL: &str = "UPDATE trials SET state = $2, error = $3, worker_id = NULL, \
     lease_expires_at = NULL, finished_at = $4 WHERE id = $1";

/// Rows per multi-row INSERT: 5 parameters a row stays under SQLite's 32,766 (and Postgres's
/// 65,535) parameters in one statement.
pub(super) const ROWS_PER_INSERT: usize = 1000;

/// `VALUES` for `rows` rows of `columns` parameters each, numbered from `$1`.
fn values(columns: usize, rows: usize) -> String {
    let row = |r: usize| {
        let params: Vec<String> = (1..=columns).map(|c| format!("${}", r * columns + c)).collect();
        format!("({})", params.join(", "))
    };
    (0..rows).map(row).collect::<Vec<_>>().join(", ")
}

/// Stores `rows` metric points (trial_id, epoch, name, value, attempt) in one statement,
/// each unless (trial, epoch, name) has one; the rows it changed are the points stored.
pub(super) fn insert_metrics(rows: usize) -> String {
    format!(
        "INSERT INTO metrics (trial_id, epoch, name, value, attempt) VALUES {} \
         ON CONFLICT (trial_id, epoch, name) DO NOTHING",
        values(5, rows)
    )
}

pub(super) const UPSERT_CHECKPOINT: &str = "INSERT INTO checkpoints (trial_id, attempt, epoch, step, file, \
     sha256, bytes, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (trial_id) DO UPDATE SET \
     attempt = excluded.attempt, epoch = excluded.epoch, step = excluded.step, file = excluded.file, \
     sha256 = excluded.sha256, bytes = excluded.bytes, created_at = excluded.created_at";

pub(super) const SELECT_CHECKPOINT: &str =
    "SELECT trial_id, attempt, epoch, step, file, sha256, bytes FROM checkpoints WHERE trial_id = $1";

pub(super) const INSERT_RESULT: &str = "INSERT INTO results (trial_id, jaccard, dice, precision, recall, tnr, \
     accuracy, auc, split, epochs, parameters, completed_at, keras_jaccard, keras_dice, keras_recall, keras_tnr, \
     selected_epoch) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17)";

/// Stores `rows` ROC points (trial_id, idx, threshold, fpr, tpr) in one statement.
pub(super) fn insert_roc(rows: usize) -> String {
    format!("INSERT INTO roc_points (trial_id, idx, threshold, fpr, tpr) VALUES {}", values(5, rows))
}

pub(super) const COMPLETE_TRIAL: &str = "UPDATE trials SET state = 'completed', error = NULL, \
     lease_expires_at = NULL, epoch = $2, finished_at = $3 WHERE id = $1";

/// The trial states a finished sweep has none of: every state but completed, failed and stopped,
/// listed rather than excluded so that the check is index probes on `trials_by_state`.
fn unsettled_states() -> String {
    let settled = [TrialState::Completed, TrialState::Failed, TrialState::Stopped];
    let unsettled: Vec<String> =
        TrialState::ALL.iter().filter(|s| !settled.contains(s)).map(|s| format!("'{s}'")).collect();
    unsettled.join(", ")
}

/// Marks sweep `$1` finished at `$2` once none of its trials is queued, running or
/// cancelled (a trial held at a rung is queued). Runs on its own after the commit that settled a trial: under READ COMMITTED
/// the last of several settling transactions to commit sees all of them settled.
pub(super) fn finish_sweep_if_done() -> String {
    format!(
        "UPDATE sweeps SET state = 'finished', finished_at = $2 WHERE id = $1 AND state = 'active' \
         AND NOT EXISTS (SELECT 1 FROM trials t WHERE t.sweep_id = $1 AND t.state IN ({}))",
        unsettled_states()
    )
}

/// Marks finished at `$1` every active sweep whose trials are all settled: the expiry tick's
/// sweep-up of a finish lost between a commit and its [`finish_sweep_if_done`] (a coordinator
/// killed there).
pub(super) fn finish_done_sweeps() -> String {
    format!(
        "UPDATE sweeps SET state = 'finished', finished_at = $1 WHERE state = 'active' \
         AND NOT EXISTS (SELECT 1 FROM trials t WHERE t.sweep_id = sweeps.id AND t.state IN ({}))",
        unsettled_states()
    )
}

/// Cancels the unfinished trials of sweep `$1` at `$2`. Runs before [`CANCEL_ATTEMPTS`] in the
/// same transaction: once the trials are cancelled (and, on Postgres, locked), no lease can
/// open another attempt of them, so closing attempts afterwards leaves none running.
pub(super) const CANCEL_TRIALS: &str = "UPDATE trials SET state = 'cancelled', lease_expires_at = NULL, \
     finished_at = $2 WHERE sweep_id = $1 AND state IN ('queued', 'running')";

/// Closes every attempt still running of the cancelled trials of sweep `$1`.
pub(super) const CANCEL_ATTEMPTS: &str = "UPDATE attempts SET outcome = 'cancelled', ended_at = $2 \
     WHERE outcome = 'running' AND trial_id IN (SELECT id FROM trials WHERE sweep_id = $1 AND state = 'cancelled')";

pub(super) const SELECT_RESULTS: &str = "SELECT t.id, t.label, t.params_json, t.config_key, t.seed, \
     r.jaccard, r.dice, r.precision, r.recall, r.tnr, r.accuracy, r.auc, r.split, \
     r.keras_jaccard, r.keras_dice, r.keras_recall, r.keras_tnr, r.selected_epoch \
     FROM results r JOIN trials t ON t.id = r.trial_id WHERE t.sweep_id = $1 ORDER BY t.ordinal";

pub(super) const SELECT_METRICS: &str =
    "SELECT epoch, name, value FROM metrics WHERE trial_id = $1 ORDER BY epoch, name";

pub(super) const SELECT_ROC: &str = "SELECT threshold, fpr, tpr FROM roc_points WHERE trial_id = $1 ORDER BY idx";

/// The trial a worker writes for (`$1`), with what the write needs to know of its sweep.
pub(super) const HOLDER: &str = "SELECT t.state, t.attempt, t.sweep_id, t.worker_id, \
     CASE WHEN s.keep_checkpoints THEN 1 ELSE 0 END AS keep_checkpoints, s.max_attempts \
     FROM trials t JOIN sweeps s ON s.id = t.sweep_id WHERE t.id = $1";

/// Running trials whose lease expired before `$1`, the oldest expiry first.
pub(super) const EXPIRED_CANDIDATES: &str = "SELECT id, attempt FROM trials \
     WHERE state = 'running' AND lease_expires_at < $1 ORDER BY lease_expires_at, id";

/// Trial `$1` if attempt `$2` is still running with a lease that expired before `$3`.
pub(super) const STILL_EXPIRED: &str =
    "SELECT t.worker_id, t.sweep_id, t.lease_expires_at, s.max_attempts FROM trials t \
     JOIN sweeps s ON s.id = t.sweep_id \
     WHERE t.id = $1 AND t.attempt = $2 AND t.state = 'running' AND t.lease_expires_at < $3";

pub(super) const SWEEP_STATE: &str = "SELECT state FROM sweeps WHERE id = $1";

/// Ends sweep `$1` at `$2` after [`CANCEL_TRIALS`]: cancelled if that cancelled a trial,
/// finished if every trial had already settled (the last ones committed, the finish after
/// their commits not yet run).
pub(super) const MARK_SWEEP_CANCELLED: &str = "UPDATE sweeps SET finished_at = $2, state = CASE WHEN EXISTS \
     (SELECT 1 FROM trials t WHERE t.sweep_id = $1 AND t.state = 'cancelled') THEN 'cancelled' ELSE 'finished' END \
     WHERE id = $1";

pub(super) const RECORD_GPUS: &str = "UPDATE workers SET gpus = $2 WHERE id = $1";

pub(super) const TOUCH_WORKER: &str = "UPDATE workers SET last_seen_at = $2 WHERE id = $1 RETURNING slots, drain";

/// `$2` 'finish' or 'now'; 'now' once set stays.
pub(super) const DRAIN_WORKER: &str =
    "UPDATE workers SET drain = CASE WHEN drain = 'now' THEN 'now' ELSE $2 END WHERE id = $1";

pub(super) const CHECKPOINT_FILES: &str = "SELECT file FROM checkpoints";
pub(super) const CHECKPOINT_FILE: &str = "SELECT file FROM checkpoints WHERE trial_id = $1";

pub(super) const DELETE_CHECKPOINT: &str = "DELETE FROM checkpoints WHERE trial_id = $1 RETURNING file";

pub(super) const SCHEMA_VERSION_TABLE: &str = "CREATE TABLE IF NOT EXISTS schema_version (\
     version BIGINT PRIMARY KEY, name TEXT NOT NULL, applied_at BIGINT NOT NULL)";

pub(super) const MIGRATION_APPLIED: &str = "SELECT 1 FROM schema_version WHERE version = $1";

pub(super) const RECORD_MIGRATION: &str = "INSERT INTO schema_version (version, name, applied_at) VALUES ($1, $2, $3)";

/// Counts the attempts of trial `$1` that count against `max_attempts` (the scheduler's
/// [`COUNTED_OUTCOMES`], but for an outage's expiry), as `n`, and those that ran out of
/// memory, as `oom`.
pub(super) fn count_counted_attempts() -> String {
    let outcomes: Vec<String> = COUNTED_OUTCOMES.iter().map(|o| format!("'{o}'")).collect();
    format!(
        "SELECT count(CASE WHEN outcome IN ({}) AND (cause IS NULL OR cause NOT IN ('{}', '{oom}')) THEN 1 END) AS n, \
         count(CASE WHEN cause = '{oom}' THEN 1 END) AS oom FROM attempts WHERE trial_id = $1",
        outcomes.join(", "),
        ExpiryCause::Outage.as_str(),
        oom = OUT_OF_MEMORY_CAUSE,
    )
}

/// A nullable DOUBLE PRECISION argument (`gamma`, `omega`, `epsilon`, `auc`).
///
/// sqlx 0.8.6's `Any` driver swaps the types of NULL reals and doubles when it hands
/// arguments to Postgres (transact-rs/sqlx#4284): a NULL `f64` is declared FLOAT4, and the
/// prepared statement then refuses a later value with "incorrect binary data format". A NULL
/// bound as `f32` reaches Postgres as a NULL double precision, and SQLite as NULL. The store
/// suite's Postgres tests bind NULL and then a value in the same statement, so an upgrade
/// that fixes the swap fails them here first.
pub(super) struct NullableReal(pub Option<f64>);

impl sqlx::Type<sqlx::Any> for NullableReal {
    fn type_info() -> sqlx::any::AnyTypeInfo {
        <f64 as sqlx::Type<sqlx::Any>>::type_info()
    }
}

impl<'q> sqlx::Encode<'q, sqlx::Any> for NullableReal {
    fn encode_by_ref(
        &self,
        buf: &mut <sqlx::Any as sqlx::Database>::ArgumentBuffer<'q>,
    ) -> Result<sqlx::encode::IsNull, sqlx::error::BoxDynError> {
        match self.0 {
            Some(value) => <f64 as sqlx::Encode<'q, sqlx::Any>>::encode_by_ref(&value, buf),
            None => <Option<f32> as sqlx::Encode<'q, sqlx::Any>>::encode_by_ref(&None, buf),
        }
    }
}

/// What [`super::SqlStore::hold_at_rung`] needs of trial `$1`, when it is queued: its sweep,
/// the sweep's rule and the epoch of its checkpoint.
pub(super) const RUNG_OF_QUEUED: &str = "SELECT t.sweep_id, s.early_stopping, \
     (SELECT c.epoch FROM checkpoints c WHERE c.trial_id = t.id) AS checkpoint_epoch \
     FROM trials t JOIN sweeps s ON s.id = t.sweep_id WHERE t.id = $1 AND t.state = 'queued'";

/// Holds queued trial `$1` out of leases, saying why (`$2`; NULL: leasable again).
pub(super) const SET_HOLD: &str = "UPDATE trials SET hold = $2 WHERE id = $1 AND state = 'queued'";

/// Holds queued trial `$1`, whose checkpoint sits at rung epoch `$3`, saying why (`$2`).
pub(super) const HOLD_AT_RUNG: &str = "UPDATE trials SET hold = $2, epoch = $3 WHERE id = $1 AND state = 'queued'";

/// Stops queued trial `$1` at epoch `$2` by rule `$3` at `$4`.
pub(super) const STOP_TRIAL: &str =
    "UPDATE trials SET state = 'stopped', hold = NULL, stopped_epoch = $2, epoch = $2, \
     stop_rule = $3, finished_at = $4, error = NULL WHERE id = $1 AND state = 'queued'";

/// Sweep `$1`'s rule, when it is active.
pub(super) const ACTIVE_RULE: &str = "SELECT early_stopping FROM sweeps WHERE id = $1 AND state = 'active'";

/// The active sweeps with a rule and a trial held for it: the only ones a settle can change
/// (a trial waits held for every decision that moves it), found by `trials_by_state`.
pub(super) const RULED_SWEEPS_WITH_HELD_TRIALS: &str = "SELECT s.id FROM sweeps s WHERE s.state = 'active' \
     AND s.early_stopping IS NOT NULL AND EXISTS (SELECT 1 FROM trials t WHERE t.state = 'queued' \
     AND t.sweep_id = s.id AND t.hold IS NOT NULL) ORDER BY s.created_at, s.id";

/// Sweep `$1`'s trials as its rule sees them.
pub(super) const RULED_TRIALS: &str = "SELECT t.id, t.ordinal, t.state, t.hold, t.config_key, \
     (SELECT c.epoch FROM checkpoints c WHERE c.trial_id = t.id) AS checkpoint_epoch \
     FROM trials t WHERE t.sweep_id = $1 ORDER BY t.ordinal";

/// Sweep `$1`'s values of metric `$2`, every trial and epoch.
pub(super) const RULED_VALUES: &str = "SELECT m.trial_id, m.epoch, m.value FROM metrics m \
     JOIN trials t ON t.id = m.trial_id WHERE t.sweep_id = $1 AND m.name = $2";

/// Records a decision once: (`$1` trial, `$2` rung, `$3` epoch, `$4` rule, `$5` metric, `$6`
/// value, `$7` verdict, `$8` reason, `$9` time).
pub(super) const INSERT_DECISION: &str = "INSERT INTO decisions (trial_id, rung, epoch, rule, metric, value, \
     verdict, reason, decided_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT (trial_id, rung) DO NOTHING";

/// The (trial, rung) of every decision recorded for sweep `$1`.
pub(super) const RECORDED_DECISIONS: &str =
    "SELECT d.trial_id, d.rung FROM decisions d JOIN trials t ON t.id = d.trial_id WHERE t.sweep_id = $1";

/// Sweep `$1`'s decisions, in trial and rung order.
pub(super) const SELECT_DECISIONS: &str = "SELECT d.trial_id, t.ordinal, t.label, d.rung, d.epoch, d.rule, \
     d.metric, d.value, d.verdict, d.reason FROM decisions d JOIN trials t ON t.id = d.trial_id \
     WHERE t.sweep_id = $1 ORDER BY t.ordinal, d.rung";

/// Migrations applied (`Store::schema_status`).
pub(super) const COUNT_MIGRATIONS: &str = "SELECT COUNT(*) AS n FROM schema_version";

/// Trials by sweep and state (`Store::census`).
pub(super) const CENSUS_TRIALS: &str = "SELECT t.sweep_id, s.name AS sweep_name, t.state, COUNT(*) AS n \
     FROM trials t JOIN sweeps s ON s.id = t.sweep_id \
     GROUP BY t.sweep_id, s.name, t.state ORDER BY t.sweep_id, t.state";

/// Attempts by outcome (`Store::census`).
pub(super) const CENSUS_ATTEMPTS: &str =
    "SELECT outcome, COUNT(*) AS n FROM attempts GROUP BY outcome ORDER BY outcome";

/// Queued trials of active sweeps not held at a rung: what workers may lease now.
pub(super) const CENSUS_LEASABLE: &str = "SELECT COUNT(*) AS n FROM trials t JOIN sweeps s ON s.id = t.sweep_id \
     WHERE s.state = 'active' AND t.state = 'queued' AND t.hold IS NULL";
