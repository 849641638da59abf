-- The SQLite twin of ../0018_fleet.sql: runners' heartbeat and drain state.
ALTER TABLE runners ADD COLUMN version TEXT NOT NULL DEFAULT '';
ALTER TABLE runners ADD COLUMN running INTEGER NOT NULL DEFAULT 0;
ALTER TABLE runners ADD COLUMN drain_requested_at INTEGER;
ALTER TABLE runners ADD COLUMN drained_at INTEGER;
