-- As migrations/0014_zip_gc.sql: when a revision's zip was deleted from the blob store.
ALTER TABLE code_revisions ADD COLUMN zip_freed_at INTEGER;
CREATE INDEX code_revisions_live_zips ON code_revisions (code_id, rev)
    WHERE zip_key IS NOT NULL AND zip_freed_at IS NULL;
CREATE INDEX code_revisions_zip_key ON code_revisions (zip_key) WHERE zip_freed_at IS NULL;
