-- Issue 17: the one place where a task reaches its final state, results, and task tokens.
-- The SQLite twin is sqlite/0007_task_events.sql (same tables and columns).

-- Children a task queued with its task token carry their parent; `?parent_id=` lists them.
-- A result's size lives on the task, so a task's JSON needs no join (`result_size`, NULL
-- when the task returned none). Neither column ever changes once set, so the index on
-- parent_id keeps status, progress and log updates of `tasks` HOT.
ALTER TABLE tasks ADD COLUMN parent_id text;
ALTER TABLE tasks ADD COLUMN result_size bigint;
CREATE INDEX tasks_parent ON tasks (project_id, parent_id, id DESC) WHERE parent_id IS NOT NULL;

-- The outbox of final states: one row per task that reached `complete`, `error`,
-- `cancelled`, `killed` or `timeout`, written by the trigger below in the statement that
-- wrote the final state, whichever statement that is (a completion, coalesced or not, a
-- cancel, cancel-all, a code's deletion, the reaper). Consumers claim rows (`claimed_until`,
-- `SKIP LOCKED`), handle them and delete them, so any number of API replicas consume it.
-- `retried`: an error or timeout whose linked retry was queued by the same statement; the
-- retry's own final state is another event.
CREATE TABLE task_events (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    task_id       text NOT NULL,
    project_id    text NOT NULL,
    status        text NOT NULL,
    batch_id      text,
    parent_id     text,
    retried       boolean NOT NULL,
    created_at    timestamptz NOT NULL,
    claimed_until timestamptz
) WITH (
    autovacuum_vacuum_scale_factor = 0.01,
    autovacuum_vacuum_threshold = 1000
);

CREATE FUNCTION ferrum_task_event() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO task_events (task_id, project_id, status, batch_id, parent_id, retried,
                             created_at)
    VALUES (NEW.id, NEW.project_id, NEW.status, NEW.batch_id, NEW.parent_id,
            NEW.status IN ('error', 'timeout') AND NEW.retries_left > 0, NEW.updated_at);
    RETURN NULL;
END $$;

-- `UPDATE OF status` with a WHEN clause: other updates of a task (progress, logs, the start)
-- never call the function, and the condition is checked without calling it.
CREATE TRIGGER tasks_final_update AFTER UPDATE OF status ON tasks FOR EACH ROW
    WHEN (OLD.status NOT IN ('complete', 'error', 'cancelled', 'killed', 'timeout')
          AND NEW.status IN ('complete', 'error', 'cancelled', 'killed', 'timeout'))
    EXECUTE FUNCTION ferrum_task_event();
CREATE TRIGGER tasks_final_insert AFTER INSERT ON tasks FOR EACH ROW
    WHEN (NEW.status IN ('complete', 'error', 'cancelled', 'killed', 'timeout'))
    EXECUTE FUNCTION ferrum_task_event();

-- Results: small ones inline (`data`), large ones in the blob store (`blob_key`).
ALTER TABLE task_results ADD COLUMN size bigint NOT NULL DEFAULT 0;

-- Task tokens (IRON_TOKEN inside a task container): one per leased attempt, stored hashed.
-- Valid only while its attempt is the task's current one, the task is unfinished and within
-- its timeout; the final-state event deletes it. `spawned` counts the tasks it queued.
CREATE TABLE task_tokens (
    token_hash text PRIMARY KEY,
    task_id    text NOT NULL,
    project_id text NOT NULL,
    attempt    integer NOT NULL,
    spawned    integer NOT NULL DEFAULT 0,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX task_tokens_task ON task_tokens (task_id);

CREATE OR REPLACE VIEW task_records AS
SELECT t.id, t.project_id, t.code_id, t.code_name, t.code_revision_id, t.code_rev,
       CASE WHEN q.leased AND t.status = 'queued' THEN 'preparing' ELSE t.status END AS status,
       t.priority, t.payload, t.timeout, t.delay, t.cluster, t.label, t.schedule_id,
       t.batch_id, t.original_task_id, t.retry_count, t.retries_left, t.retries_delay, t.msg,
       t.percent, t.exit_code, t.error_class, t.created_at, t.updated_at, t.run_at,
       t.start_time, t.end_time, t.log_size, coalesce(q.attempt, t.attempt) AS attempt,
       coalesce(q.runner_id, t.runner_id) AS runner_id, t.cancel_requested,
       t.parent_id, t.result_size
FROM tasks t LEFT JOIN task_queue q ON q.task_id = t.id;
