-- The SQLite twin of ../0011_task_events.sql (same tables and columns; see there for why).

ALTER TABLE tasks ADD COLUMN parent_id TEXT;
ALTER TABLE tasks ADD COLUMN result_size INTEGER;
CREATE INDEX tasks_parent ON tasks (project_id, parent_id, id DESC) WHERE parent_id IS NOT NULL;

CREATE TABLE task_events (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    task_id       TEXT NOT NULL,
    project_id    TEXT NOT NULL,
    status        TEXT NOT NULL,
    batch_id      TEXT,
    parent_id     TEXT,
    retried       INTEGER NOT NULL,
    created_at    INTEGER NOT NULL,
    claimed_until INTEGER
);

CREATE TRIGGER tasks_final_update AFTER UPDATE OF status ON tasks
    WHEN OLD.status NOT IN ('complete', 'error', 'cancelled', 'killed', 'timeout')
         AND NEW.status IN ('complete', 'error', 'cancelled', 'killed', 'timeout')
BEGIN
    INSERT INTO task_events (task_id, project_id, status, batch_id, parent_id, retried,
                             created_at)
    VALUES (NEW.id, NEW.project_id, NEW.status, NEW.batch_id, NEW.parent_id,
            NEW.status IN ('error', 'timeout') AND NEW.retries_left > 0, NEW.updated_at);
END;
CREATE TRIGGER tasks_final_insert AFTER INSERT ON tasks
    WHEN NEW.status IN ('complete', 'error', 'cancelled', 'killed', 'timeout')
BEGIN
    INSERT INTO task_events (task_id, project_id, status, batch_id, parent_id, retried,
                             created_at)
    VALUES (NEW.id, NEW.project_id, NEW.status, NEW.batch_id, NEW.parent_id,
            NEW.status IN ('error', 'timeout') AND NEW.retries_left > 0, NEW.updated_at);
END;

ALTER TABLE task_results ADD COLUMN size INTEGER NOT NULL DEFAULT 0;

CREATE TABLE task_tokens (
    token_hash TEXT PRIMARY KEY,
    task_id    TEXT NOT NULL,
    project_id TEXT NOT NULL,
    attempt    INTEGER NOT NULL,
    spawned    INTEGER NOT NULL DEFAULT 0,
    created_at INTEGER NOT NULL
);
CREATE INDEX task_tokens_task ON task_tokens (task_id);
