-- Issue 17: batches (fan-out of one task per item, fan-in to a reduce task queued once).
-- The SQLite twin is sqlite/0008_batches.sql (same tables and columns).

-- The unused `batches` table of 0001 is replaced.
DROP TABLE batches;
CREATE TABLE batches (
    id                        text PRIMARY KEY,
    project_id                text NOT NULL REFERENCES projects(id),
    code_name                 text NOT NULL,
    -- running | reducing | complete | failed | cancelled. Leaving `running` is the fan-in's
    -- claim: the statement that does it (under this row's lock) also queues the reduce task,
    -- so the reduce is queued exactly once whichever replica counts the last item.
    status                    text NOT NULL,
    total                     integer NOT NULL,
    -- Items whose final state (after their retries) the fan-in has counted; `failed`: those
    -- of them that did not complete. Each item task is counted once (`tasks.batch_counted`).
    done                      integer NOT NULL DEFAULT 0,
    failed                    integer NOT NULL DEFAULT 0,
    max_concurrency           integer,
    tolerated_failure_count   integer,
    tolerated_failure_percent integer,
    reduce_code_name          text,
    reduce_payload            bytea,
    reduce_timeout            integer,
    reduce_priority           integer,
    reduce_task_id            text,
    cluster                   text NOT NULL,
    label                     text,
    msg                       text,
    created_at                timestamptz NOT NULL DEFAULT now(),
    updated_at                timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX batches_project ON batches (project_id, id DESC);

-- An item's place in its batch; a linked retry copies it. Neither column below is in an
-- index that changes, and batch_index never changes, so task updates stay HOT.
ALTER TABLE tasks ADD COLUMN batch_index integer;
-- Set by the fan-in when it counted this task's final state: events are delivered at least
-- once, and a task is counted at most once.
ALTER TABLE tasks ADD COLUMN batch_counted boolean NOT NULL DEFAULT false;
-- A batch's tasks in index order (the results route, counts, the reduce's input), newest task
-- of a slot last.
CREATE INDEX tasks_batch ON tasks (batch_id, batch_index, id) WHERE batch_id IS NOT NULL;

CREATE OR REPLACE VIEW task_records AS
SELECT t.id, t.project_id, t.code_id, t.code_name, t.code_revision_id, t.code_rev,
       CASE WHEN q.leased AND t.status = 'queued' THEN 'preparing' ELSE t.status END AS status,
       t.priority, t.payload, t.timeout, t.delay, t.cluster, t.label, t.schedule_id,
       t.batch_id, t.original_task_id, t.retry_count, t.retries_left, t.retries_delay, t.msg,
       t.percent, t.exit_code, t.error_class, t.created_at, t.updated_at, t.run_at,
       t.start_time, t.end_time, t.log_size, coalesce(q.attempt, t.attempt) AS attempt,
       coalesce(q.runner_id, t.runner_id) AS runner_id, t.cancel_requested,
       t.parent_id, t.result_size, t.batch_index
FROM tasks t LEFT JOIN task_queue q ON q.task_id = t.id;
