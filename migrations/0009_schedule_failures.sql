-- Failed firings in a row of each schedule. The firing duty skips a schedule it cannot fire
-- (every other due schedule still fires), waits before trying it again, and after three
-- failures in a row sets status = 'error' with a msg the tenant sees. A firing resets it.
ALTER TABLE schedules ADD COLUMN fire_failures integer NOT NULL DEFAULT 0;
