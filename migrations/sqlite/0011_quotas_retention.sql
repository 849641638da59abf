-- Issue 19: per-project quotas and retention (see migrations/0015_quotas_retention.sql).
ALTER TABLE projects ADD COLUMN max_queued INTEGER CHECK (max_queued > 0);
ALTER TABLE projects ADD COLUMN tasks_per_minute INTEGER CHECK (tasks_per_minute > 0);
ALTER TABLE projects ADD COLUMN rate_tokens REAL;
ALTER TABLE projects ADD COLUMN rate_at INTEGER;
ALTER TABLE projects ADD COLUMN retention_days INTEGER CHECK (retention_days > 0);

CREATE INDEX tasks_project_queued ON tasks (project_id) WHERE status = 'queued';
