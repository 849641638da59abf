-- Ferrum's lease (from ferrum.sql), and a completion that only takes the task off the queue:
-- against ferrum.sql, what updating the task record costs.
DELETE FROM task_queue WHERE task_id = (:ids::text[])[{i}] AND attempt = (:atts::int[])[{i}] AND lease_expires_at IS NOT NULL RETURNING 1;
