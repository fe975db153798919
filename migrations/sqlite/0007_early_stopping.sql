-- Early stopping (issue 12). Keep in step with the other dialect.
-- trials.state gains 'stopped': an early-stopping rule stopped the trial at a rung, with
-- trials.stopped_epoch (the epoch it reached) and trials.stop_rule ('asha', 'median').
-- trials.hold: why a queued trial waits at a rung for its rule's decision (NULL: leasable).
-- sweeps.early_stopping: the sweep's rule as JSON (NULL: none).
-- decisions: every decision a rule made, one per trial and rung.
--
-- SQLite cannot change a CHECK constraint in place: the trials table is rebuilt, as SQLite's
-- ALTER TABLE page describes (the store turns foreign keys off around its migrations, and
-- legacy renaming keeps the views, which name `trials`, as they are).
PRAGMA legacy_alter_table = ON;

CREATE TABLE trials_rebuilt (
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
                             CHECK (state IN ('queued', 'running', 'completed', 'failed', 'cancelled', 'stopped')),
    attempt          BIGINT  NOT NULL DEFAULT 0,
    worker_id        TEXT,
    lease_expires_at BIGINT,
    epoch            BIGINT  NOT NULL DEFAULT 0,
    epochs           BIGINT  NOT NULL,
    error            TEXT,
    created_at       BIGINT  NOT NULL,
    started_at       BIGINT,
    finished_at      BIGINT,
    memory_bytes     BIGINT  NOT NULL DEFAULT 0,
    memory_shape     TEXT    NOT NULL DEFAULT '',
    hold             TEXT,
    stopped_epoch    BIGINT,
    stop_rule        TEXT,
    UNIQUE (sweep_id, ordinal)
);

INSERT INTO trials_rebuilt (id, sweep_id, ordinal, label, params_json, config_key, config_toml, seed,
                            dataset, arch, width, loss, base_loss, gamma, omega, epsilon, lr,
                            batch_size, state, attempt, worker_id, lease_expires_at, epoch, epochs,
                            error, created_at, started_at, finished_at, memory_bytes, memory_shape)
SELECT id, sweep_id, ordinal, label, params_json, config_key, config_toml, seed, dataset, arch,
       width, loss, base_loss, gamma, omega, epsilon, lr, batch_size, state, attempt, worker_id,
       lease_expires_at, epoch, epochs, error, created_at, started_at, finished_at, memory_bytes,
       memory_shape
FROM trials;

DROP TABLE trials;
ALTER TABLE trials_rebuilt RENAME TO trials;

CREATE INDEX trials_by_state ON trials (state, sweep_id, ordinal);
CREATE INDEX trials_by_lease ON trials (state, lease_expires_at);
CREATE INDEX trials_by_worker ON trials (worker_id, state);
CREATE INDEX trials_by_config ON trials (sweep_id, config_key);

PRAGMA legacy_alter_table = OFF;

ALTER TABLE sweeps ADD COLUMN early_stopping TEXT;

CREATE TABLE decisions (
    trial_id   TEXT             NOT NULL REFERENCES trials (id) ON DELETE CASCADE,
    rung       BIGINT           NOT NULL,
    epoch      BIGINT           NOT NULL,
    rule       TEXT             NOT NULL,
    metric     TEXT             NOT NULL,
    value      DOUBLE PRECISION,
    verdict    TEXT             NOT NULL CHECK (verdict IN ('promoted', 'stopped')),
    reason     TEXT             NOT NULL,
    decided_at BIGINT           NOT NULL,
    PRIMARY KEY (trial_id, rung)
);

-- Dashboards: the same view, with how a stopped trial ended at its end.
DROP VIEW trial_results;
CREATE VIEW trial_results AS
SELECT t.sweep_id, s.name AS sweep_name, t.id AS trial_id, t.ordinal, t.label, t.seed, t.state,
       t.dataset, t.arch, t.width, t.loss, t.base_loss, t.gamma, t.omega, t.epsilon, t.lr,
       t.batch_size, t.config_key, t.params_json, t.epochs, t.attempt,
       r.jaccard, r.dice, r.precision, r.recall, r.tnr, r.accuracy, r.auc,
       r.keras_jaccard, r.keras_dice, r.keras_recall, r.keras_tnr, r.selected_epoch,
       t.stopped_epoch, t.stop_rule
FROM trials t
JOIN sweeps s ON s.id = t.sweep_id
LEFT JOIN results r ON r.trial_id = t.id;
