-- Per-code disk size of a task in MiB (Ferrum's addition to the upload's data JSON, next to
-- memory_mb/cpus/pids). NULL leaves the runner's default; runners clamp it to their ceiling.

ALTER TABLE code_revisions ADD COLUMN disk_mb integer CHECK (disk_mb > 0);
