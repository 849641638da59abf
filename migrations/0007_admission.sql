-- A code with a concurrency limit keeps at most that many of its queued tasks in the dispatch
-- index; the rest of its backlog waits outside it.
--
-- Why: a lease reads the dispatch index from its head and skips the candidates of codes that
-- are at their limit. A throttled backlog is old, so it sits at the head, and every lease of
-- every tenant on the cluster stepped over all of it (the same problem `0006` solved for
-- paused codes). Now a limited code's queued tasks are either *admitted* (`NOT held`: in the
-- dispatch index) or *held* (waiting outside it), and `ferrum_admit()` keeps the admitted ones
-- the code's best `max_concurrency` runnable tasks, by priority then age. A lease then steps
-- over at most `max_concurrency` tasks of a code at its limit, however long its backlog.
--
-- Invariants:
-- - `limited` mirrors `codes.max_concurrency IS NOT NULL` for the code's queued rows. Writers
--   of unleased queue rows read it under the same `FOR KEY SHARE` lock as `paused` (see
--   `0006`); a revision that changes whether the code is limited locks the code row
--   `FOR UPDATE` and rewrites the flags of its queued rows in the same transaction.
-- - An unlimited code's rows are never held. A limited code's new or requeued rows start held
--   and are admitted by `ferrum_admit()`, which runs: in the transaction that queued them,
--   in `ferrum_lease()` after it leased some (to admit their successors), and in the lease
--   reaper's periodic pass (requeues, cancels, delays that ended, a limit that changed).
-- - `ferrum_admit()` and `ferrum_lease()` take the code's advisory lock, so admissions of one
--   code do not interleave with each other or with a strict lease of it. Admission skips rows
--   locked by others (a lease holding them has them in hand), so it never waits on a row.
-- - The lease's own limit checks are unchanged: admission bounds the work of a lease, it is
--   not what enforces the limit.
ALTER TABLE task_queue
    ADD COLUMN limited boolean NOT NULL DEFAULT false,
    ADD COLUMN held boolean NOT NULL DEFAULT false;
UPDATE task_queue q SET limited = true
FROM codes c WHERE c.id = q.code_id AND c.max_concurrency IS NOT NULL AND NOT q.leased;

DROP INDEX task_queue_runnable;
CREATE INDEX task_queue_runnable ON task_queue (cluster, priority DESC, run_at)
    WHERE NOT leased AND NOT paused AND NOT held;
-- A limited code's queued rows, admitted (`held = false`) and waiting (`held = true`), each in
-- dispatch order. Unlimited codes' rows are not in it, so it costs them nothing.
CREATE INDEX task_queue_admission ON task_queue (code_id, held, priority DESC, run_at)
    WHERE limited AND NOT leased;

-- Makes the admitted queued tasks of code `p_code` its best `max_concurrency` runnable ones:
-- admits waiting tasks that rank among them and holds admitted ones that no longer do (a
-- task queued later at a higher priority takes the place of a lower one). Tasks not yet due
-- (`run_at` in the future) wait; the reaper's pass admits them once due.
CREATE FUNCTION ferrum_admit(p_code text) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    lim integer;
    best text[];
BEGIN
    PERFORM pg_advisory_xact_lock(hashtextextended('ferrum.code:' || p_code, 0));
    SELECT max_concurrency INTO lim FROM codes WHERE id = p_code;
    IF lim IS NULL THEN
        RETURN;
    END IF;
    -- The best of the admitted and the best of the waiting, merged: two short index reads.
    SELECT coalesce(array_agg(task_id), '{}') INTO best FROM (
        SELECT task_id FROM (
            (SELECT task_id, priority, run_at FROM task_queue
             WHERE code_id = p_code AND limited AND NOT leased AND NOT held AND run_at <= now()
             ORDER BY priority DESC, run_at LIMIT lim)
            UNION ALL
            (SELECT task_id, priority, run_at FROM task_queue
             WHERE code_id = p_code AND limited AND NOT leased AND held AND run_at <= now()
             ORDER BY priority DESC, run_at LIMIT lim)) AS both_kinds
        ORDER BY priority DESC, run_at LIMIT lim) AS top;
    UPDATE task_queue SET held = false
    WHERE task_id IN (
        SELECT task_id FROM task_queue
        WHERE task_id = ANY (best) AND held AND NOT leased
        FOR UPDATE SKIP LOCKED);
    UPDATE task_queue SET held = true
    WHERE task_id IN (
        SELECT task_id FROM task_queue
        WHERE code_id = p_code AND limited AND NOT leased AND NOT held
          AND NOT (task_id = ANY (best))
        FOR UPDATE SKIP LOCKED);
END;
$$;

SELECT ferrum_admit(id) FROM codes WHERE max_concurrency IS NOT NULL ORDER BY id;

-- The strict leasing path reads the new index and, having leased tasks of limited codes,
-- admits their successors.
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
        WHERE NOT q.leased AND NOT q.paused AND NOT q.held AND q.cluster = p_cluster
          AND q.run_at <= now()
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

    FOREACH k IN ARRAY lim_codes LOOP
        PERFORM ferrum_admit(k);
    END LOOP;
END;
$$;
