-- Leasing under concurrency limits. The store first leases in one plain statement the top
-- candidates whose code and project set no limit (`LEASE_UNLIMITED` in
-- crates/ferrum-store/src/pg/dispatch.rs); only when limited candidates were among them does
-- it call this function for the remaining slots, so limits cost only those who set them.
--
-- Picks up to p_max runnable tasks of a cluster, highest priority first, then oldest run_at,
-- skipping paused codes, with FOR UPDATE SKIP LOCKED so concurrent leasers never wait for
-- each other or take the same task. Codes with max_concurrency and projects with a
-- concurrency limit are then checked strictly: under a transaction-scoped advisory lock per
-- code (then per project, each in sorted order, so leasers cannot deadlock), the running tasks
-- are counted afresh (a plpgsql statement sees rows committed after the call began), and
-- candidates past the limit stay queued. The soft filter in the candidate query keeps a
-- saturated code from crowding out runnable work behind it.
CREATE FUNCTION ferrum_lease(p_cluster text, p_max integer, p_runner text, p_lease interval)
RETURNS SETOF tasks
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
        SELECT t.id, t.code_id, t.project_id,
               c.max_concurrency IS NOT NULL AS code_limited,
               p.max_concurrency IS NOT NULL AS project_limited
        FROM tasks t
        JOIN codes c ON c.id = t.code_id
        JOIN projects p ON p.id = t.project_id
        WHERE t.status = 'queued' AND t.cluster = p_cluster AND t.run_at <= now()
          AND NOT c.paused
          AND (c.max_concurrency IS NULL OR c.max_concurrency > (
                SELECT count(*) FROM tasks a
                WHERE a.code_id = t.code_id AND a.status IN ('preparing', 'running')))
          AND (p.max_concurrency IS NULL OR p.max_concurrency > (
                SELECT count(*) FROM tasks a
                WHERE a.project_id = t.project_id AND a.status IN ('preparing', 'running')))
        ORDER BY t.priority DESC, t.run_at
        LIMIT p_max
        FOR UPDATE OF t SKIP LOCKED
    LOOP
        c_ids := c_ids || r.id;
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
            - (SELECT count(*) FROM tasks
               WHERE code_id = k AND status IN ('preparing', 'running')))::integer;
    END LOOP;

    FOR k IN
        SELECT DISTINCT x.project FROM unnest(c_projects, c_project_limited) AS x(project, limited)
        WHERE x.limited ORDER BY 1
    LOOP
        PERFORM pg_advisory_xact_lock(hashtextextended('ferrum.project:' || k, 0));
        lim_projects := lim_projects || k;
        project_left := project_left || (
            (SELECT coalesce(max_concurrency, 2147483647) FROM projects WHERE id = k)
            - (SELECT count(*) FROM tasks
               WHERE project_id = k AND status IN ('preparing', 'running')))::integer;
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
        UPDATE tasks
        SET status = 'preparing',
            attempt = attempt + 1,
            runner_id = p_runner,
            lease_expires_at = now() + p_lease,
            cancel_requested = false,
            updated_at = now()
        WHERE id = ANY (accepted)
        RETURNING *;
END;
$$;
