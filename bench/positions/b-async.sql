-- Option b: order under the lock, durability outside it. The insert commits asynchronously
-- (the lock is released as soon as the commit record is in the WAL buffers), then a
-- synchronous WAL-writing statement returns only once the WAL is flushed past it, hence past
-- the append's commit: only then would the command be answered.
BEGIN;
SET LOCAL synchronous_commit = off;
INSERT INTO locked_events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata)
SELECT 'Task', id::text, 1, 'TaskCreated', '1', proto_payload(id), proto_metadata()
  FROM (SELECT gen_random_uuid() AS id FROM generate_series(1, :rows)) AS g;
COMMIT;
SELECT pg_logical_emit_message(true, 'bountyline-flush', '');
