-- Issue 19: per-project quotas and retention, set by an operator (`/2/projects/{id}/quotas`).
--
-- `max_queued` caps the project's tasks waiting in the queue, `tasks_per_minute` its task
-- creation rate (a token bucket: `rate_tokens` left at `rate_at`, refilled continuously up to
-- one minute's worth), `retention_days` how long its finished tasks are kept (NULL: the
-- operator's default). NULL is "no limit" throughout, like `max_concurrency`.
ALTER TABLE projects
    ADD COLUMN max_queued       integer CHECK (max_queued > 0),
    ADD COLUMN tasks_per_minute integer CHECK (tasks_per_minute > 0),
    ADD COLUMN rate_tokens      double precision,
    ADD COLUMN rate_at          timestamptz,
    ADD COLUMN retention_days   integer CHECK (retention_days > 0);

-- A capped project's queued tasks, counted (up to the cap) when it queues more. `leased` is
-- already in the predicates of the dispatch indexes, so leases were never HOT; this adds one
-- entry per enqueue and per lease flip, and stays as small as the backlog.
CREATE INDEX task_queue_project ON task_queue (project_id) WHERE NOT leased;
