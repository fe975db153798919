-- The curves of one trial ($1 = its id): one row per epoch.
SELECT epoch,
       max(CASE WHEN name = 'train_loss' THEN value END) AS train_loss,
       max(CASE WHEN name = 'validation_loss' THEN value END) AS validation_loss,
       max(CASE WHEN name = 'jaccard' THEN value END) AS jaccard,
       max(CASE WHEN name = 'dice' THEN value END) AS dice
FROM metrics
WHERE trial_id = $1
GROUP BY epoch
ORDER BY epoch;
