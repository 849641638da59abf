-- Issue 18: the task list's filters each read an index newest first; the twin of
-- migrations/0013_task_list.sql (see there for why).
CREATE INDEX tasks_status ON tasks (project_id, status, id DESC);
CREATE INDEX tasks_code_name ON tasks (project_id, code_name, id DESC);
CREATE INDEX tasks_cluster ON tasks (project_id, cluster, id DESC);
CREATE INDEX tasks_label ON tasks (project_id, label, id DESC) WHERE label IS NOT NULL;
CREATE INDEX tasks_schedule_list ON tasks (project_id, schedule_id, id DESC)
    WHERE schedule_id IS NOT NULL;
DROP INDEX tasks_schedule;
