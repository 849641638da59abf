-- Per-code disk size of a task. The SQLite twin of ../0010_code_disk.sql (same column).

ALTER TABLE code_revisions ADD COLUMN disk_mb INTEGER CHECK (disk_mb > 0);
