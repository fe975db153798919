-- Losses ranked by mean test Jaccard on each data set, over every completed trial.
SELECT dataset, loss, count(*) AS trials, avg(jaccard) AS mean_jaccard, avg(dice) AS mean_dice,
       avg(recall) AS mean_recall
FROM trial_results
WHERE state = 'completed'
GROUP BY dataset, loss
ORDER BY dataset, mean_jaccard DESC;
