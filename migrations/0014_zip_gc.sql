-- Zips no task needs any more (every revision of a deleted code, and revisions older than the
-- operator's `--keep-revisions`) are deleted from the blob store by the zip collector
-- (crates/ferrum-api/src/zip_gc.rs). The revision row stays, marked with when its zip went.
ALTER TABLE code_revisions ADD COLUMN zip_freed_at timestamptz;
-- The collector looks only at revisions whose zip is still stored.
CREATE INDEX code_revisions_live_zips ON code_revisions (code_id, rev)
    WHERE zip_key IS NOT NULL AND zip_freed_at IS NULL;
-- Whether another revision still holds a zip (options-only uploads share their predecessor's).
CREATE INDEX code_revisions_zip_key ON code_revisions (zip_key) WHERE zip_freed_at IS NULL;
