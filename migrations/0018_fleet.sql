-- Issue 19: the fleet: runners heartbeat as runners, and an admin may drain one.
--
-- A runner's own heartbeat (`POST /runner/v1/heartbeat`) writes `last_seen_at` and `running`
-- (its tasks in progress). `version` is what it registered with. An admin's drain sets
-- `drain_requested_at`: from then on its lease calls answer no tasks; once it reports no task
-- running and holds no lease, its heartbeat sets `drained_at`. None of these columns is in an
-- index, so the heartbeat's update stays HOT.
ALTER TABLE runners
    ADD COLUMN version            text NOT NULL DEFAULT '',
    ADD COLUMN running            integer NOT NULL DEFAULT 0,
    ADD COLUMN drain_requested_at timestamptz,
    ADD COLUMN drained_at         timestamptz;
