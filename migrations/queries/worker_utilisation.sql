-- What each worker did: attempts, how they ended, and seconds spent on them.
SELECT a.worker_id, w.host, w.device, w.slots, count(*) AS attempts,
       sum(CASE WHEN a.outcome = 'completed' THEN 1 ELSE 0 END) AS completed,
       sum(CASE WHEN a.outcome IN ('expired', 'failed') THEN 1 ELSE 0 END) AS lost_or_failed,
       CAST(sum(coalesce(a.ended_at, w.last_seen_at) - a.started_at) AS DOUBLE PRECISION) / 1000.0 AS busy_seconds
FROM attempts a
JOIN workers w ON w.id = a.worker_id
GROUP BY a.worker_id, w.host, w.device, w.slots
ORDER BY busy_seconds DESC;
