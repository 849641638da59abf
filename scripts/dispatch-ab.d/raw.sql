-- The floor of `dispatch_bench.rs`: claim 10 jobs, then complete each one.
WITH c AS (
  UPDATE bench_raw_jobs SET status = 'running' WHERE id IN (
    SELECT id FROM bench_raw_jobs WHERE status = 'queued' AND run_at <= now()
    ORDER BY priority DESC, run_at LIMIT 10 FOR UPDATE SKIP LOCKED)
  RETURNING id)
SELECT array_agg(id) AS ids FROM c
\gset
UPDATE bench_raw_jobs SET status = 'done' WHERE id = (:ids::bigint[])[{i}];
