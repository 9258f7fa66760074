-- The event store. postgres-es writes the first seven columns; the rest are ours.
--
-- Positions are commit-ordered (DESIGN.md guarantee 5): the insert trigger takes one
-- transaction-scoped advisory lock before it draws a position, so a transaction that holds a
-- position holds the lock until it commits or rolls back, and positions become visible in
-- order. A reader that sees position p can therefore trust that every position below p is
-- either visible or was rolled back; a hole is never a transaction still in flight.
-- See docs/adr/0001-commit-ordered-positions.md.

CREATE SEQUENCE events_position_seq AS bigint MINVALUE 1;

CREATE TABLE events (
    aggregate_type text   NOT NULL,
    aggregate_id   text   NOT NULL,
    sequence       bigint NOT NULL CHECK (sequence >= 1),
    event_type     text   NOT NULL,
    event_version  text   NOT NULL,
    payload        jsonb  NOT NULL,
    metadata       jsonb  NOT NULL,
    position       bigint NOT NULL,
    event_id       uuid   NOT NULL DEFAULT gen_random_uuid(),
    recorded_at    timestamptz NOT NULL DEFAULT clock_timestamp(),
    PRIMARY KEY (aggregate_type, aggregate_id, sequence)
);

CREATE UNIQUE INDEX events_position_key ON events (position);
CREATE UNIQUE INDEX events_event_id_key ON events (event_id);
CREATE INDEX events_idempotency_idx ON events ((metadata ->> 'idempotency_key'))
    WHERE metadata ? 'idempotency_key';
CREATE INDEX events_correlation_idx ON events ((metadata ->> 'correlation_id'));

-- postgres-es can keep snapshots here; bountyline does not use them yet.
CREATE TABLE snapshots (
    aggregate_type   text   NOT NULL,
    aggregate_id     text   NOT NULL,
    last_sequence    bigint NOT NULL CHECK (last_sequence >= 0),
    current_snapshot bigint NOT NULL CHECK (current_snapshot >= 0),
    payload          jsonb  NOT NULL,
    PRIMARY KEY (aggregate_type, aggregate_id, last_sequence)
);

CREATE FUNCTION events_assign_position() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    -- 0x626c6576 = 'blev': the append lock. Released at commit or rollback.
    PERFORM pg_advisory_xact_lock(1651271030);
    NEW.position := nextval('events_position_seq');
    NEW.recorded_at := clock_timestamp();
    IF NEW.event_id IS NULL THEN
        NEW.event_id := gen_random_uuid();
    END IF;
    RETURN NEW;
END $$;

CREATE TRIGGER events_assign_position BEFORE INSERT ON events
    FOR EACH ROW EXECUTE FUNCTION events_assign_position();

-- Wakes the relay; notifications with one payload collapse to one per transaction.
CREATE FUNCTION events_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('bountyline_events', '');
    RETURN NULL;
END $$;

CREATE TRIGGER events_notify AFTER INSERT ON events
    FOR EACH STATEMENT EXECUTE FUNCTION events_notify();

-- History is append-only: the database itself refuses to change or remove it.
CREATE FUNCTION events_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the events table is append-only: % is not allowed', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END $$;

CREATE TRIGGER events_refuse_update_delete BEFORE UPDATE OR DELETE ON events
    FOR EACH ROW EXECUTE FUNCTION events_refuse_change();
CREATE TRIGGER events_refuse_truncate BEFORE TRUNCATE ON events
    FOR EACH STATEMENT EXECUTE FUNCTION events_refuse_change();
