-- Per-code resource settings. The SQLite twin of ../0004_code_limits.sql (same columns).

ALTER TABLE code_revisions ADD COLUMN memory_mb INTEGER CHECK (memory_mb > 0);
ALTER TABLE code_revisions ADD COLUMN cpus REAL CHECK (cpus > 0);
ALTER TABLE code_revisions ADD COLUMN pids INTEGER CHECK (pids > 0);
