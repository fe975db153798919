-- Memory-aware leases and GPU telemetry. Keep in step with the other dialect.
-- trials.memory_bytes: the device memory the trial is expected to need at its peak (the
-- config's estimate, doubled each time an attempt ran out of memory); 0 for trials stored
-- before estimates (they fit any worker). trials.memory_shape: the trials sharing a shape
-- share the estimate ('' before estimates).
ALTER TABLE trials ADD COLUMN memory_bytes BIGINT NOT NULL DEFAULT 0;
ALTER TABLE trials ADD COLUMN memory_shape TEXT NOT NULL DEFAULT '';
-- workers.gpus: the worker's GPUs as its last heartbeat reported them, a JSON array of
-- {"index", "name", "memory_total_bytes", "memory_used_bytes", "utilization_percent",
-- "trials"}; NULL for a worker without GPUs.
ALTER TABLE workers ADD COLUMN gpus TEXT;
