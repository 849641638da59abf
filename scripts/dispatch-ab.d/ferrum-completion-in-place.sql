-- Ferrum's lease (from ferrum.sql), and a completion that writes only the queue row, in place,
-- taking it out of every dispatch index: what a design with one table for the task's state
-- (so one write per completion) would pay, against ferrum.sql and ferrum-without-record.sql.
UPDATE task_queue SET leased = false, lease_expires_at = NULL, paused = true, runner_id = NULL WHERE task_id = (:ids::text[])[{i}] AND attempt = (:atts::int[])[{i}] AND lease_expires_at IS NOT NULL RETURNING 1;
