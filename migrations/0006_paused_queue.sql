-- A paused code's queued tasks leave the dispatch index.
--
-- Why: a lease reads the dispatch index from its head and skips candidates whose code is
-- paused. A paused code's backlog is old, so it sits at the head, and every lease of every
-- tenant on that cluster stepped over all of it: the cost of a lease grew with the length of
-- someone else's paused queue. Now `task_queue.paused` mirrors `codes.paused` for the code's
-- queue rows, and the dispatch index holds only rows that are neither leased nor paused.
--
-- Invariant: a queue row's `paused` equals its code's, except for moments inside a pause or
-- resume. Every statement that writes an unleased queue row reads its code's `paused` under a
-- `FOR KEY SHARE` lock on the code row; pausing and resuming lock the code row `FOR UPDATE`
-- (which waits for those writers to commit) and then, in a second statement that sees their
-- rows, set the flag on the code's queue rows. The lease still checks `codes.paused` too, so
-- a row caught mid-pause is never leased.
ALTER TABLE task_queue ADD COLUMN paused boolean NOT NULL DEFAULT false;
UPDATE task_queue q SET paused = true FROM codes c WHERE c.id = q.code_id AND c.paused;

DROP INDEX task_queue_runnable;
CREATE INDEX task_queue_runnable ON task_queue (cluster, priority DESC, run_at)
    WHERE NOT leased AND NOT paused;

-- The strict leasing path reads the new index, and its concurrency counts correlate with the
-- code and project rows so that Postgres memoizes them (as the plain lease does).
CREATE OR REPLACE FUNCTION ferrum_lease(p_cluster text, p_max integer, p_runner text, p_lease interval)
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
        WHERE NOT q.leased AND NOT q.paused AND q.cluster = p_cluster AND q.run_at <= now()
          AND NOT c.paused
          AND (c.max_concurrency IS NULL OR c.max_concurrency > (
                SELECT count(*) FROM task_queue a WHERE a.code_id = c.id AND a.leased))
          AND (p.max_concurrency IS NULL OR p.max_concurrency > (
                SELECT count(*) FROM task_queue a WHERE a.project_id = p.id AND a.leased))
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
