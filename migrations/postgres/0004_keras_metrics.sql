-- The authors' Keras-style test metrics beside the pooled hard ones (soft Jaccard and Dice,
-- +1-smoothed; recall and TNR rounded at 0.5; each per batch, averaged over the batches), and
-- the epoch whose weights were tested (train.select). NULL for results stored before them.
-- Keep in step with the other dialect.
ALTER TABLE results ADD COLUMN keras_jaccard DOUBLE PRECISION;
ALTER TABLE results ADD COLUMN keras_dice DOUBLE PRECISION;
ALTER TABLE results ADD COLUMN keras_recall DOUBLE PRECISION;
ALTER TABLE results ADD COLUMN keras_tnr DOUBLE PRECISION;
ALTER TABLE results ADD COLUMN selected_epoch BIGINT;

-- Dashboards: the same view, with the new columns at its end.
DROP VIEW trial_results;
CREATE VIEW trial_results AS
SELECT t.sweep_id, s.name AS sweep_name, t.id AS trial_id, t.ordinal, t.label, t.seed, t.state,
       t.dataset, t.arch, t.width, t.loss, t.base_loss, t.gamma, t.omega, t.epsilon, t.lr,
       t.batch_size, t.config_key, t.params_json, t.epochs, t.attempt,
       r.jaccard, r.dice, r.precision, r.recall, r.tnr, r.accuracy, r.auc,
       r.keras_jaccard, r.keras_dice, r.keras_recall, r.keras_tnr, r.selected_epoch
FROM trials t
JOIN sweeps s ON s.id = t.sweep_id
LEFT JOIN results r ON r.trial_id = t.id;
