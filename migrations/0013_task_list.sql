-- Issue 18: every filter of the task list answers its first page from an index, newest first
-- (`crates/ferrum-store/src/task_list.rs` builds the statements). Each index leads with the
-- project and ends with `id DESC`, so a filter reads one page of its index and stops, whether
-- it matches every task or none; the keyset cursor (`id < $before`) starts deep pages inside
-- the same index. The time range bounds `id` (ids begin with their second), so it needs none.
--
-- The price: `status` is now indexed, so the two updates that change a task's status (its
-- start and its outcome) are no longer HOT. Progress, log-size and attempt updates still are,
-- and dispatch itself writes only `task_queue`.
CREATE INDEX tasks_status ON tasks (project_id, status, id DESC);
CREATE INDEX tasks_code_name ON tasks (project_id, code_name, id DESC);
CREATE INDEX tasks_cluster ON tasks (project_id, cluster, id DESC);
CREATE INDEX tasks_label ON tasks (project_id, label, id DESC) WHERE label IS NOT NULL;
-- Replaces `(schedule_id)`: the schedule's tasks newest first, one page at a time.
CREATE INDEX tasks_schedule_list ON tasks (project_id, schedule_id, id DESC)
    WHERE schedule_id IS NOT NULL;
DROP INDEX tasks_schedule;
