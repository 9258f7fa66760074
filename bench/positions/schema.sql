-- Scratch schema for the position-line prototypes (issue 24, docs/adr/0005-*.md). Each table is
-- a copy of `events` in shape (the columns, the two unique indexes) under one discipline:
--   plain_events   no lock: pgbench's durable one-row insert, the machine's limit
--   locked_events  ADR 1: the append lock taken by the insert trigger and held to the commit
--   xid_events     option a: no lock; each row carries its transaction id (xid8) so that readers
--                  take only what lies below the oldest transaction still running
-- Option b uses locked_events with an asynchronous commit and a flush afterwards (b-async.sql).
CREATE SEQUENCE proto_position;
CREATE TABLE plain_events (
    aggregate_type text NOT NULL, aggregate_id text NOT NULL, sequence bigint NOT NULL,
    event_type text NOT NULL, event_version text NOT NULL, payload jsonb NOT NULL,
    metadata jsonb NOT NULL,
    position bigint NOT NULL DEFAULT nextval('proto_position'),
    event_id uuid NOT NULL DEFAULT gen_random_uuid(),
    recorded_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    hash bytea,
    PRIMARY KEY (aggregate_type, aggregate_id, sequence)
);
CREATE UNIQUE INDEX ON plain_events (position);
CREATE UNIQUE INDEX ON plain_events (event_id);

CREATE TABLE locked_events (LIKE plain_events INCLUDING ALL);
CREATE SEQUENCE locked_position;
CREATE FUNCTION locked_assign() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_advisory_xact_lock(1651271030);
    NEW.position := nextval('locked_position');
    RETURN NEW;
END $$;
CREATE TRIGGER locked_assign BEFORE INSERT ON locked_events
    FOR EACH ROW EXECUTE FUNCTION locked_assign();

CREATE TABLE xid_events (LIKE plain_events INCLUDING ALL,
                         xid xid8 NOT NULL DEFAULT pg_current_xact_id());
CREATE INDEX ON xid_events (xid, position);

-- The row every script inserts: the shape and size of a TaskCreated event.
CREATE FUNCTION proto_payload(id uuid) RETURNS jsonb LANGUAGE sql AS $$
    SELECT jsonb_build_object('TaskCreated', jsonb_build_object(
           'task_id', id, 'queue', 'bench-3', 'title', 'bench task 12-345',
           'description', 'created by bench/positions', 'priority', 3, 'payload', NULL,
           'max_attempts', 3, 'bounty_id', NULL,
           'creator', jsonb_build_object('user_id', gen_random_uuid(),
                                         'roles', jsonb_build_array('member')),
           'at', clock_timestamp()))
$$;
CREATE FUNCTION proto_metadata() RETURNS jsonb LANGUAGE sql AS $$
    SELECT jsonb_build_object(
           'actor', gen_random_uuid(), 'request_id', gen_random_uuid(),
           'correlation_id', gen_random_uuid(), 'causation_id', gen_random_uuid(),
           'command', 'create', 'command_id', gen_random_uuid())
$$;
