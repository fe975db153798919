-- Why an expired attempt expired. Keep in step with the other dialect.
-- 'worker': its worker went silent for a lease time while the coordinator and its database were
-- up (it died, hung or was cut off); this counts toward the sweep's max_attempts.
-- 'outage': its lease was last renewed before the coordinator or its database came back from an
-- outage, so the worker may never have been heard; this does not count. NULL for other outcomes.
ALTER TABLE attempts ADD COLUMN cause TEXT;
