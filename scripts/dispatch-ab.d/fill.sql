-- The template database's content (after the migrations): one project with one code, and
-- :tasks queued tasks of it, each with its queue row, in the order Ferrum's enqueue leaves
-- them; beside them :tasks jobs of the raw floor's table, as `dispatch_bench.rs` makes it.
INSERT INTO users (id, email) VALUES ('000000000000000000000001', 'ab@example.com');
INSERT INTO projects (id, name, owner_id)
VALUES ('000000000000000000000002', 'ab', '000000000000000000000001');
INSERT INTO codes (id, project_id, name, latest_rev, latest_revision_id)
VALUES ('000000000000000000000003', '000000000000000000000002', 'noop', 1,
        '000000000000000000000004');
INSERT INTO code_revisions (id, code_id, project_id, rev, image)
VALUES ('000000000000000000000004', '000000000000000000000003', '000000000000000000000002',
        1, 'busybox');
INSERT INTO tasks (id, project_id, code_id, code_name, code_revision_id, code_rev, status,
                   priority, payload, timeout, cluster, run_at)
SELECT lpad(to_hex(g), 24, '0'), '000000000000000000000002', '000000000000000000000003',
       'noop', '000000000000000000000004', 1, 'queued', 0, '\x7b7d', 3600, 'default',
       now() - interval '1 hour' + g * interval '1 microsecond'
FROM generate_series(1, :tasks) g;
INSERT INTO task_queue (task_id, project_id, code_id, cluster, priority, run_at)
SELECT id, project_id, code_id, cluster, priority, run_at FROM tasks ORDER BY id;
CREATE TABLE bench_raw_jobs (id bigserial PRIMARY KEY, status text NOT NULL,
    priority smallint NOT NULL, run_at timestamptz NOT NULL DEFAULT now(), payload bytea);
CREATE INDEX bench_raw_runnable ON bench_raw_jobs (priority DESC, run_at)
    WHERE status = 'queued';
INSERT INTO bench_raw_jobs (status, priority, payload)
SELECT 'queued', 0, '\x7b7d' FROM generate_series(1, :tasks);
