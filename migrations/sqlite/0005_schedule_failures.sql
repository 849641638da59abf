-- Failed firings in a row of each schedule (see migrations/0009_schedule_failures.sql).
ALTER TABLE schedules ADD COLUMN fire_failures INTEGER NOT NULL DEFAULT 0;
