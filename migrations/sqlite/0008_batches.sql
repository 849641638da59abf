-- The SQLite twin of ../0012_batches.sql (same tables and columns; see there for why).

DROP TABLE batches;
CREATE TABLE batches (
    id                        TEXT PRIMARY KEY,
    project_id                TEXT NOT NULL REFERENCES projects(id),
    code_name                 TEXT NOT NULL,
    status                    TEXT NOT NULL,
    total                     INTEGER NOT NULL,
    done                      INTEGER NOT NULL DEFAULT 0,
    failed                    INTEGER NOT NULL DEFAULT 0,
    max_concurrency           INTEGER,
    tolerated_failure_count   INTEGER,
    tolerated_failure_percent INTEGER,
    reduce_code_name          TEXT,
    reduce_payload            BLOB,
    reduce_timeout            INTEGER,
    reduce_priority           INTEGER,
    reduce_task_id            TEXT,
    cluster                   TEXT NOT NULL,
    label                     TEXT,
    msg                       TEXT,
    created_at                INTEGER NOT NULL,
    updated_at                INTEGER NOT NULL
);
CREATE INDEX batches_project ON batches (project_id, id DESC);

ALTER TABLE tasks ADD COLUMN batch_index INTEGER;
ALTER TABLE tasks ADD COLUMN batch_counted INTEGER NOT NULL DEFAULT 0;
CREATE INDEX tasks_batch ON tasks (batch_id, batch_index, id) WHERE batch_id IS NOT NULL;
