-- Cron schedules, schedule pause and misfire policy; per-code webhooks and delivery dedup.
-- The SQLite twin of ../0003_schedules_webhooks.sql (same columns; timestamps in integer
-- microseconds, booleans 0/1).

ALTER TABLE schedules ADD COLUMN cron text;
ALTER TABLE schedules ADD COLUMN timezone text;
ALTER TABLE schedules ADD COLUMN misfire text NOT NULL DEFAULT 'run_once'
    CHECK (misfire IN ('run_once', 'skip', 'catch_up'));
ALTER TABLE schedules ADD COLUMN paused INTEGER NOT NULL DEFAULT 0;

DROP INDEX schedules_due;
CREATE INDEX schedules_due ON schedules (next_start) WHERE status = 'scheduled' AND NOT paused;

CREATE INDEX tasks_delayed ON tasks (run_at) WHERE status = 'queued' AND delay > 0;

CREATE TABLE webhooks (
    id            TEXT PRIMARY KEY,
    project_id    TEXT NOT NULL REFERENCES projects(id),
    code_id       TEXT NOT NULL REFERENCES codes(id),
    token_hash    TEXT NOT NULL UNIQUE,
    signature     TEXT CHECK (signature IN ('slack', 'github', 'hmac')),
    secret        TEXT,
    sync_timeout  INTEGER NOT NULL DEFAULT 0,
    priority      INTEGER,
    timeout       INTEGER NOT NULL,
    delay         INTEGER NOT NULL DEFAULT 0,
    cluster       TEXT NOT NULL,
    label         TEXT,
    created_at    INTEGER NOT NULL
);
CREATE INDEX webhooks_code ON webhooks (project_id, code_id, id DESC);

CREATE TABLE webhook_deliveries (
    project_id  TEXT NOT NULL,
    scope       TEXT NOT NULL,
    key         TEXT NOT NULL,
    task_id     TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    PRIMARY KEY (project_id, scope, key)
);
CREATE INDEX webhook_deliveries_age ON webhook_deliveries (created_at);
