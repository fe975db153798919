-- allsweep schema, Postgres dialect. Keep in step with ../sqlite/0001_schema.sql: same tables,
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

-- Nullable as in SQLite, which stores NaN as NULL; Postgres keeps NaN itself.
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
-- deviation (NULL when n < 2) and n over seeds.
CREATE VIEW config_summary AS
SELECT t.sweep_id, t.config_key, min(t.dataset) AS dataset, min(t.arch) AS arch,
       min(t.width) AS width, min(t.loss) AS loss, min(t.base_loss) AS base_loss,
       min(t.gamma) AS gamma, min(t.omega) AS omega, min(t.epsilon) AS epsilon, min(t.lr) AS lr,
       min(t.batch_size) AS batch_size, min(t.params_json) AS params_json, count(*) AS n,
       avg(r.jaccard) AS mean_jaccard, stddev_samp(r.jaccard) AS std_jaccard,
       avg(r.dice) AS mean_dice, stddev_samp(r.dice) AS std_dice,
       avg(r.recall) AS mean_recall, stddev_samp(r.recall) AS std_recall,
       avg(r.tnr) AS mean_tnr, stddev_samp(r.tnr) AS std_tnr,
       avg(r.auc) AS mean_auc, stddev_samp(r.auc) AS std_auc
FROM trials t JOIN results r ON r.trial_id = t.id
WHERE t.state = 'completed'
GROUP BY t.sweep_id, t.config_key;
