-- Draining a worker (issue 14, `allsweep workers drain`). Keep in step with the other dialect.
-- workers.drain: NULL while the worker may lease; 'finish' once asked to finish its running
-- trials and leave; 'now' once asked to release them at once and leave. A draining worker is
-- leased nothing more.
ALTER TABLE workers ADD COLUMN drain TEXT CHECK (drain IN ('finish', 'now'));
