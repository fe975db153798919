-- allsweep schema, SQLite dialect. Keep in step with ../postgres/0001_schema.sql: same tables,
-- same columns, same views. Times are milliseconds since the Unix epoch; seeds are stored as
-- BIGINT (a u64 seed past i64::MAX wraps to a negative number and back).

CREATE TABLE sweeps (
    id               TEXT    PRIMARY KEY,
    name             TEXT    NOT NULL,
    -- active | cancelled | finished (every trial completed or failed)
    state            TEXT    NOT NULL DEFAULT 'active'
                             CHECK (state IN ('active', 'cancelled', 'finished')),
    spec_toml        TEXT    NOT NULL,
    keep_checkpoints BOOLEAN NOT NULL,
    max_attempts     BIGINT  NOT NULL,
    created_at       BIGINT  NOT NULL,
    finished_at      BIGINT
);

CREATE INDEX sweeps_by_state ON sweeps (state, created_at);

CREATE TABLE trials (
    id               TEXT    PRIMARY KEY,
    sweep_id         TEXT    NOT NULL REFERENCES sweeps (id) ON DELETE CASCADE,
    ordinal          BIGINT  NOT NULL,
    label            TEXT    NOT NULL,
    params_json      TEXT    NOT NULL,
    config_key       TEXT    NOT NULL,
    config_toml      TEXT    NOT NULL,
    seed             BIGINT  NOT NULL,
    dataset          TEXT    NOT NULL,
    arch             TEXT    NOT NULL,
    width            BIGINT  NOT NULL,
    loss             TEXT    NOT NULL,
    base_loss        TEXT,
    gamma            DOUBLE PRECISION,
    omega            DOUBLE PRECISION,
    epsilon          DOUBLE PRECISION,
    lr               DOUBLE PRECISION NOT NULL,
    batch_size       BIGINT  NOT NULL,
    state            TEXT    NOT NULL DEFAULT 'queued'
                             CHECK (state IN ('queued', 'running', 'completed', 'failed', 'cancelled')),
    attempt          BIGINT  NOT NULL DEFAULT 0,
    worker_id        TEXT,
    lease_expires_at BIGINT,
    epoch            BIGINT  NOT NULL DEFAULT 0,
    epochs           BIGINT  NOT NULL,
    error            TEXT,
    created_at       BIGINT  NOT NULL,
    started_at       BIGINT,
    finished_at      BIGINT,
    UNIQUE (sweep_id, ordinal)
);

-- Leasing scans queued trials; expiry scans running ones by lease; workers count theirs.
CREATE INDEX trials_by_state ON trials (state, sweep_id, ordinal);
CREATE INDEX trials_by_lease ON trials (state, lease_expires_at);
CREATE INDEX trials_by_worker ON trials (worker_id, state);
CREATE INDEX trials_by_config ON trials (sweep_id, config_key);

CREATE TABLE attempts (
    trial_id           TEXT   NOT NULL REFERENCES trials (id) ON DELETE CASCADE,
    attempt            BIGINT NOT NULL,
    worker_id          TEXT   NOT NULL,
    started_at         BIGINT NOT NULL,
    ended_at           BIGINT,
    outcome            TEXT   NOT NULL DEFAULT 'running'
                              CHECK (outcome IN ('running', 'completed', 'failed', 'expired', 'released', 'cancelled')),
    resumed_from_epoch BIGINT,
    error              TEXT,
    PRIMARY KEY (trial_id, attempt)
);

CREATE TABLE workers (
    id            TEXT   PRIMARY KEY,
    host          TEXT   NOT NULL,
    device        TEXT   NOT NULL,
    memory_bytes  BIGINT NOT NULL,
    slots         BIGINT NOT NULL,
    version       TEXT   NOT NULL,
    registered_at BIGINT NOT NULL,
    last_seen_at  BIGINT NOT NULL
);

-- A NaN value is stored as NULL by SQLite (and read back as NaN).
CREATE TABLE metrics (
    trial_id TEXT   NOT NULL REFERENCES trials (id) ON DELETE CASCADE,
    epoch    BIGINT NOT NULL,
    name     TEXT   NOT NULL,
    value    DOUBLE PRECISION,
    attempt  BIGINT NOT NULL,
    PRIMARY KEY (trial_id, epoch, name)
);

CREATE TABLE results (
    trial_id     TEXT   PRIMARY KEY REFERENCES trials (id) ON DELETE CASCADE,
    jaccard      DOUBLE PRECISION,
    dice         DOUBLE PRECISION,
    precision    DOUBLE PRECISION,
    recall       DOUBLE PRECISION,
    tnr          DOUBLE PRECISION,
    accuracy     DOUBLE PRECISION,
    auc          DOUBLE PRECISION,
    split        TEXT   NOT NULL,
    epochs       BIGINT NOT NULL,
    parameters   BIGINT NOT NULL,
    completed_at BIGINT NOT NULL
);

CREATE TABLE roc_points (
    trial_id  TEXT   NOT NULL REFERENCES trials (id) ON DELETE CASCADE,
    idx       BIGINT NOT NULL,
    threshold DOUBLE PRECISION,
    fpr       DOUBLE PRECISION NOT NULL,
    tpr       DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (trial_id, idx)
);

CREATE TABLE checkpoints (
    trial_id   TEXT   PRIMARY KEY REFERENCES trials (id) ON DELETE CASCADE,
    attempt    BIGINT NOT NULL,
    epoch      BIGINT NOT NULL,
    step       BIGINT NOT NULL,
    file       TEXT   NOT NULL,
    sha256     TEXT   NOT NULL,
    bytes      BIGINT NOT NULL,
    created_at BIGINT NOT NULL
);

-- Dashboards: one row per trial, config flattened, final metrics NULL until completed.
CREATE VIEW trial_results AS
SELECT t.sweep_id, s.name AS sweep_name, t.id AS trial_id, t.ordinal, t.label, t.seed, t.state,
       t.dataset, t.arch, t.width, t.loss, t.base_loss, t.gamma, t.omega, t.epsilon, t.lr,
       t.batch_size, t.config_key, t.params_json, t.epochs, t.attempt,
       r.jaccard, r.dice, r.precision, r.recall, r.tnr, r.accuracy, r.auc
FROM trials t
JOIN sweeps s ON s.id = t.sweep_id
LEFT JOIN results r ON r.trial_id = t.id;

-- Dashboards: one row per (sweep, config) over completed trials: mean, sample standard
-- deviation (NULL when n < 2) and n over seeds. The SQLite that sqlx bundles has no math
-- functions, so the square root of the variance v is taken by 64 Newton steps from
-- (v + 1) / 2: converged to rounding for any v above 1e-30 (and within 1e-17 below).
CREATE VIEW config_summary AS
WITH RECURSIVE
done AS (
    SELECT t.sweep_id, t.config_key, t.dataset, t.arch, t.width, t.loss, t.base_loss, t.gamma,
           t.omega, t.epsilon, t.lr, t.batch_size, t.params_json,
           r.jaccard, r.dice, r.recall, r.tnr, r.auc
    FROM trials t JOIN results r ON r.trial_id = t.id
    WHERE t.state = 'completed'
),
agg AS (
    SELECT sweep_id, config_key, min(dataset) AS dataset, min(arch) AS arch, min(width) AS width,
           min(loss) AS loss, min(base_loss) AS base_loss, min(gamma) AS gamma,
           min(omega) AS omega, min(epsilon) AS epsilon, min(lr) AS lr,
           min(batch_size) AS batch_size, min(params_json) AS params_json, count(*) AS n,
           avg(jaccard) AS mean_jaccard, count(jaccard) AS n_jaccard,
           avg(dice) AS mean_dice, count(dice) AS n_dice,
           avg(recall) AS mean_recall, count(recall) AS n_recall,
           avg(tnr) AS mean_tnr, count(tnr) AS n_tnr,
           avg(auc) AS mean_auc, count(auc) AS n_auc
    FROM done
    GROUP BY sweep_id, config_key
),
variance AS (
    SELECT a.sweep_id, a.config_key,
           CASE WHEN max(a.n_jaccard) > 1 THEN sum((d.jaccard - a.mean_jaccard) * (d.jaccard - a.mean_jaccard)) / (max(a.n_jaccard) - 1) END AS v_jaccard,
           CASE WHEN max(a.n_dice) > 1 THEN sum((d.dice - a.mean_dice) * (d.dice - a.mean_dice)) / (max(a.n_dice) - 1) END AS v_dice,
           CASE WHEN max(a.n_recall) > 1 THEN sum((d.recall - a.mean_recall) * (d.recall - a.mean_recall)) / (max(a.n_recall) - 1) END AS v_recall,
           CASE WHEN max(a.n_tnr) > 1 THEN sum((d.tnr - a.mean_tnr) * (d.tnr - a.mean_tnr)) / (max(a.n_tnr) - 1) END AS v_tnr,
           CASE WHEN max(a.n_auc) > 1 THEN sum((d.auc - a.mean_auc) * (d.auc - a.mean_auc)) / (max(a.n_auc) - 1) END AS v_auc
    FROM agg a JOIN done d ON d.sweep_id = a.sweep_id AND d.config_key = a.config_key
    GROUP BY a.sweep_id, a.config_key
),
root (sweep_id, config_key, step, s_jaccard, s_dice, s_recall, s_tnr, s_auc) AS (
    SELECT sweep_id, config_key, 0,
           CASE WHEN v_jaccard > 0 THEN (v_jaccard + 1) / 2 ELSE v_jaccard END,
           CASE WHEN v_dice > 0 THEN (v_dice + 1) / 2 ELSE v_dice END,
           CASE WHEN v_recall > 0 THEN (v_recall + 1) / 2 ELSE v_recall END,
           CASE WHEN v_tnr > 0 THEN (v_tnr + 1) / 2 ELSE v_tnr END,
           CASE WHEN v_auc > 0 THEN (v_auc + 1) / 2 ELSE v_auc END
    FROM variance
    UNION ALL
    SELECT r.sweep_id, r.config_key, r.step + 1,
           CASE WHEN r.s_jaccard > 0 THEN (r.s_jaccard + v.v_jaccard / r.s_jaccard) / 2 ELSE r.s_jaccard END,
           CASE WHEN r.s_dice > 0 THEN (r.s_dice + v.v_dice / r.s_dice) / 2 ELSE r.s_dice END,
           CASE WHEN r.s_recall > 0 THEN (r.s_recall + v.v_recall / r.s_recall) / 2 ELSE r.s_recall END,
           CASE WHEN r.s_tnr > 0 THEN (r.s_tnr + v.v_tnr / r.s_tnr) / 2 ELSE r.s_tnr END,
           CASE WHEN r.s_auc > 0 THEN (r.s_auc + v.v_auc / r.s_auc) / 2 ELSE r.s_auc END
    FROM root r JOIN variance v ON v.sweep_id = r.sweep_id AND v.config_key = r.config_key
    WHERE r.step < 64
)
SELECT a.sweep_id, a.config_key, a.dataset, a.arch, a.width, a.loss, a.base_loss, a.gamma,
       a.omega, a.epsilon, a.lr, a.batch_size, a.params_json, a.n,
       a.mean_jaccard, r.s_jaccard AS std_jaccard,
       a.mean_dice, r.s_dice AS std_dice,
       a.mean_recall, r.s_recall AS std_recall,
       a.mean_tnr, r.s_tnr AS std_tnr,
       a.mean_auc, r.s_auc AS std_auc
FROM agg a
JOIN root r ON r.sweep_id = a.sweep_id AND r.config_key = a.config_key AND r.step = 64;
