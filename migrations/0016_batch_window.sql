-- Issue 17: a batch's `max_concurrency` caps its unfinished released items; the rest wait
-- *parked*. The SQLite twin is sqlite/0012_batch_window.sql.
--
-- A parked item is an ordinary queued task whose queue row is `held` (out of the dispatch
-- index, like a limited code's waiting rows) with `run_at` at the parked instant
-- (9999-12-31), which `ferrum_admit()` never admits (it looks only at due rows) and the
-- delayed-task wakeups never see (`delayed` stays false). Items are parked by index: those
-- at `released` and beyond. The fan-in releases one item for each released item it counts
-- (under the batch row's lock), so the batch's unfinished released items never exceed
-- `max_concurrency`; a retry takes its failed attempt's place.
ALTER TABLE batches ADD COLUMN released integer;

-- A batch queued by a task with its task token: its items and reduce are that task's
-- children, and the token may read and cancel this batch.
ALTER TABLE batches ADD COLUMN parent_id text;
