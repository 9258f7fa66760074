-- pgbench script for bench/run phase 1: one durable one-row append per transaction, a row of
-- the shape and size the app writes for TaskCreated (payload and metadata about as large), into
-- bench_events, a copy of events with its defaults and indexes and without its triggers.
INSERT INTO bench_events
    (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata, position, hash)
SELECT 'Task', id::text, 1, 'TaskCreated', '1',
       jsonb_build_object('TaskCreated', jsonb_build_object(
           'task_id', id, 'queue', 'bench-3', 'title', 'bench task 12-345',
           'description', 'created by bench/run', 'priority', 3, 'payload', NULL,
           'max_attempts', 3, 'bounty_id', NULL,
           'creator', jsonb_build_object('user_id', gen_random_uuid(), 'roles', jsonb_build_array('member')),
           'at', clock_timestamp())),
       jsonb_build_object(
           'actor', gen_random_uuid(), 'request_id', gen_random_uuid(),
           'correlation_id', gen_random_uuid(), 'causation_id', gen_random_uuid(),
           'command', 'create', 'command_id', gen_random_uuid()),
       nextval('bench_events_position_seq'),
       sha256(convert_to(id::text, 'UTF8'))
  FROM gen_random_uuid() AS id;
