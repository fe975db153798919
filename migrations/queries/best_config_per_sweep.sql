-- The best config of each sweep by mean test Jaccard over seeds, with its spread.
SELECT c.sweep_id, c.params_json, c.n, c.mean_jaccard, c.std_jaccard, c.mean_dice
FROM config_summary c
WHERE c.mean_jaccard = (SELECT max(b.mean_jaccard) FROM config_summary b WHERE b.sweep_id = c.sweep_id)
ORDER BY c.sweep_id;
