-- The SQLite twin of ../0016_batch_window.sql: a parked item is a queued task whose
-- `run_at` is the parked instant (9999-12-31 in microseconds), so no lease takes it until
-- the fan-in releases it.
ALTER TABLE batches ADD COLUMN released INTEGER;

-- The task that queued the batch with its task token.
ALTER TABLE batches ADD COLUMN parent_id TEXT;
