-- The dispatch queue moves out of `tasks` into a narrow table of its own.
--
-- Why: leasing and completing used to change `tasks.status`, which sat in the predicates of
-- the dispatch indexes, so every status change wrote a whole ~30-column task row anew plus an
-- entry in each of its indexes (never a HOT update). Now the state that dispatch indexes
-- lives in `task_queue`, whose rows are a few columns wide, and `tasks` has no index on any
-- column that dispatch changes: status, attempt, progress and log size updates of a task row
-- are HOT (heap only, no index entries).
--
-- A lease writes only the queue row. The task record changes when what a tenant sees of the
-- task changes: it starts running, logs, finishes. Until the runner reports the start, the
-- record still says `queued`, and `task_records` (below) shows such a task as `preparing`
-- with the lease's attempt: read tasks through that view.
--
-- Invariant: a `task_queue` row exists exactly while its task is queued, preparing or
-- running; `leased` is false while queued. Every statement that changes both tables locks
-- the `task_queue` row first, then the task row, so leasers, completions, cancels and the
-- reaper cannot deadlock.
CREATE TABLE task_queue (
    task_id           text PRIMARY KEY,
    project_id        text NOT NULL,
    code_id           text NOT NULL,
    cluster           text NOT NULL,
    priority          smallint NOT NULL,
    run_at            timestamptz NOT NULL,
    -- Queued with a delay (or a retry delay): the delayed-task duty wakes runners when it ends.
    delayed           boolean NOT NULL DEFAULT false,
    -- The fencing token: how many times the task was leased. The task record catches up
    -- when the runner reports the start or the outcome.
    attempt           integer NOT NULL DEFAULT 0,
    leased            boolean NOT NULL DEFAULT false,
    -- The runner holding the lease.
    runner_id         text,
    -- Not in any index, so heartbeats that extend it are HOT updates.
    lease_expires_at  timestamptz,
    CHECK (leased = (lease_expires_at IS NOT NULL))
) WITH (
    fillfactor = 80,
    -- A queue table churns: vacuum it early and often (about twice the claim rate).
    autovacuum_vacuum_scale_factor = 0.01,
    autovacuum_vacuum_threshold = 1000,
    autovacuum_vacuum_cost_limit = 2000,
    autovacuum_analyze_scale_factor = 0.02
);

INSERT INTO task_queue (task_id, project_id, code_id, cluster, priority, run_at, delayed,
                        attempt, leased, runner_id, lease_expires_at)
SELECT id, project_id, code_id, cluster, priority, run_at, status = 'queued' AND delay > 0,
       attempt, status <> 'queued', runner_id, lease_expires_at
FROM tasks WHERE status IN ('queued', 'preparing', 'running');

-- Dispatch order: the only index leasing reads. Until vacuum, every lease scan steps over the
-- entries of tasks leased since the last one, so entries must be small. Tasks queued together
-- share a key, and btree deduplication keeps them as posting lists of 6-byte row pointers;
-- once a batch is all leased, its posting lists are marked dead as a few entries. Appending the
-- id to the key made each entry 64 bytes, and lease scans read about three times the pages.
CREATE INDEX task_queue_runnable ON task_queue (cluster, priority DESC, run_at)
    WHERE NOT leased;
-- Leased tasks, for concurrency counts and lease expiry: as small as the number running.
CREATE INDEX task_queue_leased ON task_queue (code_id, project_id) WHERE leased;
-- When the next delayed task becomes runnable; undelayed queueing pays nothing for it.
CREATE INDEX task_queue_delayed ON task_queue (run_at) WHERE NOT leased AND delayed;

DROP INDEX tasks_runnable;
DROP INDEX tasks_leased;
DROP INDEX tasks_delayed;
ALTER TABLE tasks DROP COLUMN lease_expires_at;
UPDATE tasks SET status = 'queued' WHERE status = 'preparing';

-- Tasks as tenants see them: a leased task whose runner has not reported the start yet is
-- `preparing`, and a leased task's attempt is the lease's.
CREATE VIEW task_records AS
SELECT t.id, t.project_id, t.code_id, t.code_name, t.code_revision_id, t.code_rev,
       CASE WHEN q.leased AND t.status = 'queued' THEN 'preparing' ELSE t.status END AS status,
       t.priority, t.payload, t.timeout, t.delay, t.cluster, t.label, t.schedule_id,
       t.batch_id, t.original_task_id, t.retry_count, t.retries_left, t.retries_delay, t.msg,
       t.percent, t.exit_code, t.error_class, t.created_at, t.updated_at, t.run_at,
       t.start_time, t.end_time, t.log_size, coalesce(q.attempt, t.attempt) AS attempt,
       coalesce(q.runner_id, t.runner_id) AS runner_id, t.cancel_requested
FROM tasks t LEFT JOIN task_queue q ON q.task_id = t.id;

-- The strict leasing path of 0002, on the queue table; the rules are unchanged. It answers
-- the leased queue rows.
DROP FUNCTION ferrum_lease(text, integer, text, interval);
CREATE FUNCTION ferrum_lease(p_cluster text, p_max integer, p_runner text, p_lease interval)
RETURNS SETOF task_queue
LANGUAGE plpgsql AS $$
DECLARE
    r record;
    c_ids text[] := '{}';
    c_codes text[] := '{}';
    c_projects text[] := '{}';
    c_code_limited boolean[] := '{}';
    c_project_limited boolean[] := '{}';
    lim_codes text[] := '{}';
    code_left integer[] := '{}';
    lim_projects text[] := '{}';
    project_left integer[] := '{}';
    accepted text[] := '{}';
    k text;
    i integer;
    ci integer;
    pj integer;
BEGIN
    FOR r IN
        SELECT q.task_id, q.code_id, q.project_id,
               c.max_concurrency IS NOT NULL AS code_limited,
               p.max_concurrency IS NOT NULL AS project_limited
        FROM task_queue q
        JOIN codes c ON c.id = q.code_id
        JOIN projects p ON p.id = q.project_id
        WHERE NOT q.leased AND q.cluster = p_cluster AND q.run_at <= now()
          AND NOT c.paused
          AND (c.max_concurrency IS NULL OR c.max_concurrency > (
                SELECT count(*) FROM task_queue a WHERE a.code_id = q.code_id AND a.leased))
          AND (p.max_concurrency IS NULL OR p.max_concurrency > (
                SELECT count(*) FROM task_queue a
                WHERE a.project_id = q.project_id AND a.leased))
        ORDER BY q.priority DESC, q.run_at
        LIMIT p_max
        FOR UPDATE OF q SKIP LOCKED
    LOOP
        c_ids := c_ids || r.task_id;
        c_codes := c_codes || r.code_id;
        c_projects := c_projects || r.project_id;
        c_code_limited := c_code_limited || r.code_limited;
        c_project_limited := c_project_limited || r.project_limited;
    END LOOP;

    IF cardinality(c_ids) = 0 THEN
        RETURN;
    END IF;

    FOR k IN
        SELECT DISTINCT x.code FROM unnest(c_codes, c_code_limited) AS x(code, limited)
        WHERE x.limited ORDER BY 1
    LOOP
        PERFORM pg_advisory_xact_lock(hashtextextended('ferrum.code:' || k, 0));
        lim_codes := lim_codes || k;
        code_left := code_left || (
            (SELECT coalesce(max_concurrency, 2147483647) FROM codes WHERE id = k)
            - (SELECT count(*) FROM task_queue WHERE code_id = k AND leased))::integer;
    END LOOP;

    FOR k IN
        SELECT DISTINCT x.project FROM unnest(c_projects, c_project_limited) AS x(project, limited)
        WHERE x.limited ORDER BY 1
    LOOP
        PERFORM pg_advisory_xact_lock(hashtextextended('ferrum.project:' || k, 0));
        lim_projects := lim_projects || k;
        project_left := project_left || (
            (SELECT coalesce(max_concurrency, 2147483647) FROM projects WHERE id = k)
            - (SELECT count(*) FROM task_queue WHERE project_id = k AND leased))::integer;
    END LOOP;

    FOR i IN 1 .. cardinality(c_ids) LOOP
        ci := array_position(lim_codes, c_codes[i]);
        pj := array_position(lim_projects, c_projects[i]);
        CONTINUE WHEN ci IS NOT NULL AND code_left[ci] <= 0;
        CONTINUE WHEN pj IS NOT NULL AND project_left[pj] <= 0;
        IF ci IS NOT NULL THEN
            code_left[ci] := code_left[ci] - 1;
        END IF;
        IF pj IS NOT NULL THEN
            project_left[pj] := project_left[pj] - 1;
        END IF;
        accepted := accepted || c_ids[i];
    END LOOP;

    RETURN QUERY
        UPDATE task_queue
        SET leased = true, attempt = attempt + 1, runner_id = p_runner,
            lease_expires_at = now() + p_lease
        WHERE task_id = ANY (accepted)
        RETURNING *;
END;
$$;
