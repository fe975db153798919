-- Early stopping (issue 12). Keep in step with the other dialect.
-- trials.state gains 'stopped': an early-stopping rule stopped the trial at a rung, with
-- trials.stopped_epoch (the epoch it reached) and trials.stop_rule ('asha', 'median').
-- trials.hold: why a queued trial waits at a rung for its rule's decision (NULL: leasable).
-- sweeps.early_stopping: the sweep's rule as JSON (NULL: none).
-- decisions: every decision a rule made, one per trial and rung.
ALTER TABLE trials DROP CONSTRAINT trials_state_check;
ALTER TABLE trials ADD CONSTRAINT trials_state_check
    CHECK (state IN ('queued', 'running', 'completed', 'failed', 'cancelled', 'stopped'));
ALTER TABLE trials ADD COLUMN hold TEXT;
ALTER TABLE trials ADD COLUMN stopped_epoch BIGINT;
ALTER TABLE trials ADD COLUMN stop_rule TEXT;

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
