-- Cron schedules, schedule pause and misfire policy; per-code webhooks and delivery dedup.

ALTER TABLE schedules
    -- A cron expression (5 fields, or 6 with seconds) instead of run_every, read in timezone
    -- (an IANA name; NULL is UTC).
    ADD COLUMN cron     text,
    ADD COLUMN timezone text,
    -- What to do with slots missed while no replica fired: see ferrum_model::recurrence.
    ADD COLUMN misfire  text NOT NULL DEFAULT 'run_once'
        CHECK (misfire IN ('run_once', 'skip', 'catch_up')),
    ADD COLUMN paused   boolean NOT NULL DEFAULT false;

-- Firing reads only active, unpaused schedules in next_start order.
DROP INDEX schedules_due;
CREATE INDEX schedules_due ON schedules (next_start) WHERE status = 'scheduled' AND NOT paused;

-- When the next delayed task becomes runnable, so replicas wake held lease requests on time.
-- Only delayed rows are in it, so undelayed queueing pays nothing.
CREATE INDEX tasks_delayed ON tasks (run_at) WHERE status = 'queued' AND delay > 0;

-- A webhook queues tasks of one code. Its URL holds a secret, stored as SHA-256 hex like every
-- token; `secret` is the signing secret shared with the third party, needed in the clear to
-- check HMAC signatures.
CREATE TABLE webhooks (
    id            text PRIMARY KEY,
    project_id    text NOT NULL REFERENCES projects(id),
    code_id       text NOT NULL REFERENCES codes(id),
    token_hash    text NOT NULL UNIQUE,
    signature     text CHECK (signature IN ('slack', 'github', 'hmac')),
    secret        text,
    sync_timeout  integer NOT NULL DEFAULT 0,
    priority      integer,
    timeout       integer NOT NULL,
    delay         integer NOT NULL DEFAULT 0,
    cluster       text NOT NULL,
    label         text,
    created_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX webhooks_code ON webhooks (project_id, code_id, id DESC);

-- Deliveries already turned into a task, by a key that stays the same when the sender retries
-- (Idempotency-Key, X-GitHub-Delivery, a Slack event id). Inserted in the transaction that
-- queues the task, so a retry racing the original still makes one task.
CREATE TABLE webhook_deliveries (
    project_id  text NOT NULL,
    scope       text NOT NULL,
    key         text NOT NULL,
    task_id     text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (project_id, scope, key)
);
CREATE INDEX webhook_deliveries_age ON webhook_deliveries (created_at);
