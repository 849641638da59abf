-- Per-code resource settings (Ferrum's additions to the upload's data JSON). NULL leaves the
-- runner's default; runners clamp every value to their operator's ceiling when they run it.

ALTER TABLE code_revisions
    ADD COLUMN memory_mb integer CHECK (memory_mb > 0),
    ADD COLUMN cpus      double precision CHECK (cpus > 0),
    ADD COLUMN pids      integer CHECK (pids > 0);
