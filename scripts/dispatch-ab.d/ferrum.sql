-- Ferrum's lease and completion: `LEASE_UNLIMITED` (limit 10) of
-- crates/ferrum-store/src/pg/dispatch.rs and `COMPLETE_ONE` of pg/completions.rs (a completion
-- that is not coalesced), with the bound values written in. Keep them equal.
WITH cand AS (
  SELECT q.task_id, c.max_concurrency IS NOT NULL OR p.max_concurrency IS NOT NULL AS limited
  FROM task_queue q
  JOIN codes c ON c.id = q.code_id
  JOIN projects p ON p.id = q.project_id
  WHERE NOT q.leased AND NOT q.paused AND NOT q.held AND q.cluster = 'default'
    AND q.run_at <= now()
    AND NOT c.paused
    AND (c.max_concurrency IS NULL OR c.max_concurrency > (
          SELECT count(*) FROM task_queue a WHERE a.code_id = c.id AND a.leased))
    AND (p.max_concurrency IS NULL OR p.max_concurrency > (
          SELECT count(*) FROM task_queue a WHERE a.project_id = p.id AND a.leased))
  ORDER BY q.priority DESC, q.run_at
  LIMIT 10
  FOR UPDATE OF q SKIP LOCKED),
lease AS (
  UPDATE task_queue q SET leased = true, attempt = q.attempt + 1, runner_id = 'ab',
    lease_expires_at = now() + interval '300 s'
  FROM cand WHERE q.task_id = cand.task_id AND NOT cand.limited
  RETURNING q.task_id, q.attempt)
SELECT h.held, l.attempt,
       id, project_id, priority, run_at, timeout, payload, schedule_id, code_revision_id,
       array_agg(l.task_id) OVER () AS ids, array_agg(l.attempt) OVER () AS atts
FROM (SELECT count(*) FILTER (WHERE limited) AS held FROM cand) h
LEFT JOIN (lease l JOIN tasks t ON t.id = l.task_id) ON true
\aset
WITH off AS (DELETE FROM task_queue WHERE task_id = (:ids::text[])[{i}] AND attempt = (:atts::int[])[{i}] AND lease_expires_at IS NOT NULL RETURNING task_id, attempt, runner_id, 'complete'::text AS status, 0::int4 AS exit_code, NULL::text AS error_class, NULL::text AS msg) UPDATE tasks t SET status = off.status, exit_code = off.exit_code, error_class = off.error_class, msg = CASE WHEN off.status = 'complete' THEN t.msg ELSE coalesce(off.msg, t.msg) END, end_time = now(), start_time = coalesce(t.start_time, now()), updated_at = now(), attempt = off.attempt, runner_id = off.runner_id FROM off WHERE t.id = off.task_id RETURNING 1;
