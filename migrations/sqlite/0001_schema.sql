-- Ferrum's schema for the embedded SQLite backend (`ferrum dev`). It mirrors the Postgres
-- schema in ../0001_schema.sql table for table and column for column, so both backends share
-- their row mapping; only the storage types differ:
--   * timestamps are INTEGER microseconds since the Unix epoch, UTC (exact, and they compare
--     and add as numbers, e.g. run_at = now + delay * 1000000);
--   * ids are TEXT (24 lowercase hex), byte strings BLOB, JSON TEXT, booleans INTEGER 0/1.
-- The application supplies every timestamp, so "now" is the same clock in both backends.
-- The leasing rule of ../0002_lease.sql lives in the backend's code (src/sqlite/dispatch.rs),
-- run inside one IMMEDIATE write transaction: SQLite serialises writers, so the selection and
-- its limit checks see a stable queue.

CREATE TABLE users (
    id          TEXT PRIMARY KEY,
    email       TEXT NOT NULL UNIQUE,
    is_admin    INTEGER NOT NULL DEFAULT 0,
    created_at  INTEGER NOT NULL
);

-- Tokens are stored as SHA-256 hex of the token, never in the clear.
CREATE TABLE tokens (
    token_hash  TEXT PRIMARY KEY,
    user_id     TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    created_at  INTEGER NOT NULL
);

CREATE TABLE projects (
    id               TEXT PRIMARY KEY,
    name             TEXT NOT NULL,
    owner_id         TEXT NOT NULL REFERENCES users(id),
    max_concurrency  INTEGER CHECK (max_concurrency > 0),
    created_at       INTEGER NOT NULL
);
CREATE INDEX projects_owner ON projects (owner_id);

CREATE TABLE clusters (
    name         TEXT PRIMARY KEY,
    network_mode TEXT NOT NULL DEFAULT 'bridge',
    created_at   INTEGER NOT NULL DEFAULT 0
);
INSERT INTO clusters (name) VALUES ('default');

CREATE TABLE runner_tokens (
    token_hash  TEXT PRIMARY KEY,
    cluster     TEXT NOT NULL REFERENCES clusters(name),
    created_at  INTEGER NOT NULL
);

CREATE TABLE runners (
    id           TEXT PRIMARY KEY,
    cluster      TEXT NOT NULL REFERENCES clusters(name),
    hostname     TEXT NOT NULL,
    concurrency  INTEGER NOT NULL,
    started_at   INTEGER NOT NULL,
    last_seen_at INTEGER NOT NULL
);

CREATE TABLE stacks (
    name        TEXT PRIMARY KEY,
    image       TEXT NOT NULL
);

CREATE TABLE codes (
    id                 TEXT PRIMARY KEY,
    project_id         TEXT NOT NULL REFERENCES projects(id),
    name               TEXT NOT NULL,
    latest_rev         INTEGER NOT NULL,
    latest_revision_id TEXT NOT NULL,
    -- Dispatch settings, copied from the latest revision so leasing reads one row.
    paused             INTEGER NOT NULL DEFAULT 0,
    max_concurrency    INTEGER,
    created_at         INTEGER NOT NULL,
    updated_at         INTEGER NOT NULL,
    deleted_at         INTEGER
);
-- A deleted code's name may be used again.
CREATE UNIQUE INDEX codes_name ON codes (project_id, name) WHERE deleted_at IS NULL;
CREATE INDEX codes_project ON codes (project_id, id DESC) WHERE deleted_at IS NULL;

CREATE TABLE code_revisions (
    id               TEXT PRIMARY KEY,
    code_id          TEXT NOT NULL REFERENCES codes(id),
    project_id       TEXT NOT NULL REFERENCES projects(id),
    rev              INTEGER NOT NULL,
    runtime          TEXT,
    stack            TEXT,
    file_name        TEXT,
    image            TEXT,
    command          TEXT,
    config           TEXT,
    env_vars         TEXT NOT NULL DEFAULT '{}',
    max_concurrency  INTEGER,
    retries          INTEGER NOT NULL DEFAULT 0,
    retries_delay    INTEGER NOT NULL DEFAULT 0,
    default_priority INTEGER NOT NULL DEFAULT 0,
    zip_key          TEXT,
    zip_checksum     TEXT,
    zip_size         INTEGER,
    created_at       INTEGER NOT NULL,
    UNIQUE (code_id, rev)
);

CREATE TABLE schedules (
    id             TEXT PRIMARY KEY,
    project_id     TEXT NOT NULL REFERENCES projects(id),
    code_id        TEXT NOT NULL REFERENCES codes(id),
    code_name      TEXT NOT NULL,
    payload        BLOB NOT NULL,
    status         TEXT NOT NULL DEFAULT 'scheduled',
    msg            TEXT,
    start_at       INTEGER NOT NULL,
    end_at         INTEGER,
    next_start     INTEGER,
    last_run_time  INTEGER,
    run_every      INTEGER,
    run_times      INTEGER,
    run_count      INTEGER NOT NULL DEFAULT 0,
    priority       INTEGER NOT NULL DEFAULT 0,
    timeout        INTEGER NOT NULL,
    task_delay     INTEGER NOT NULL DEFAULT 0,
    cluster        TEXT NOT NULL,
    label          TEXT,
    created_at     INTEGER NOT NULL,
    updated_at     INTEGER NOT NULL
);
CREATE INDEX schedules_project ON schedules (project_id, id DESC);
CREATE INDEX schedules_due ON schedules (next_start) WHERE status = 'scheduled';

CREATE TABLE batches (
    id             TEXT PRIMARY KEY,
    project_id     TEXT NOT NULL REFERENCES projects(id),
    code_id        TEXT NOT NULL REFERENCES codes(id),
    reduce_code_id TEXT REFERENCES codes(id),
    size           INTEGER NOT NULL,
    reduce_task_id TEXT,
    created_at     INTEGER NOT NULL
);

-- The queue; see ../0001_schema.sql for the meaning of each column.
CREATE TABLE tasks (
    id                TEXT PRIMARY KEY,
    project_id        TEXT NOT NULL REFERENCES projects(id),
    code_id           TEXT NOT NULL REFERENCES codes(id),
    code_name         TEXT NOT NULL,
    code_revision_id  TEXT NOT NULL REFERENCES code_revisions(id),
    code_rev          INTEGER NOT NULL,
    status            TEXT NOT NULL,
    priority          INTEGER NOT NULL,
    payload           BLOB NOT NULL,
    timeout           INTEGER NOT NULL,
    delay             INTEGER NOT NULL DEFAULT 0,
    cluster           TEXT NOT NULL,
    label             TEXT,
    schedule_id       TEXT,
    batch_id          TEXT,
    original_task_id  TEXT,
    retry_count       INTEGER NOT NULL DEFAULT 0,
    retries_left      INTEGER NOT NULL DEFAULT 0,
    retries_delay     INTEGER NOT NULL DEFAULT 0,
    msg               TEXT,
    percent           INTEGER,
    exit_code         INTEGER,
    error_class       TEXT,
    created_at        INTEGER NOT NULL,
    updated_at        INTEGER NOT NULL,
    run_at            INTEGER NOT NULL,
    start_time        INTEGER,
    end_time          INTEGER,
    log_size          INTEGER NOT NULL DEFAULT 0,
    attempt           INTEGER NOT NULL DEFAULT 0,
    runner_id         TEXT,
    lease_expires_at  INTEGER,
    cancel_requested  INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX tasks_runnable ON tasks (cluster, priority DESC, run_at, id) WHERE status = 'queued';
CREATE INDEX tasks_project ON tasks (project_id, id DESC);
CREATE INDEX tasks_code ON tasks (code_id, id DESC);
CREATE INDEX tasks_leased ON tasks (lease_expires_at) WHERE status IN ('preparing', 'running');
CREATE INDEX tasks_leased_code ON tasks (code_id) WHERE status IN ('preparing', 'running');
CREATE INDEX tasks_leased_project ON tasks (project_id) WHERE status IN ('preparing', 'running');
CREATE INDEX tasks_schedule ON tasks (schedule_id) WHERE schedule_id IS NOT NULL;

-- Log chunks of a task's attempts, idempotent by (task, attempt, seq).
CREATE TABLE task_log_chunks (
    task_id   TEXT NOT NULL,
    attempt   INTEGER NOT NULL,
    seq       INTEGER NOT NULL,
    stream    TEXT NOT NULL CHECK (stream IN ('stdout', 'stderr')),
    data      BLOB NOT NULL,
    PRIMARY KEY (task_id, attempt, seq)
);

CREATE TABLE task_results (
    task_id      TEXT PRIMARY KEY,
    content_type TEXT NOT NULL,
    data         BLOB,
    blob_key     TEXT,
    created_at   INTEGER NOT NULL
);
