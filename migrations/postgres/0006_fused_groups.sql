-- Fused training. Keep in step with the other dialect.
-- attempts.group_id: the fused group the attempt trained in, shared by the attempts the
-- coordinator leased to one worker to train as one network; NULL for an attempt alone.
ALTER TABLE attempts ADD COLUMN group_id TEXT;
