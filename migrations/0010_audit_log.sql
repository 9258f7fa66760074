-- Audit reads are themselves audited: who read or exported which slice of the event store.
-- `filter` holds the query's filter (never a credential); `rows` how many events it returned
-- when that is known (a stream records what it was asked for before it starts).

CREATE TABLE audit_reads (
    id     uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    actor  uuid        NOT NULL,
    what   text        NOT NULL,
    filter jsonb       NOT NULL DEFAULT '{}'::jsonb,
    rows   bigint,
    at     timestamptz NOT NULL DEFAULT clock_timestamp()
);

CREATE INDEX audit_reads_at_idx ON audit_reads (at DESC, id DESC);
CREATE INDEX audit_reads_actor_idx ON audit_reads (actor, at DESC);

-- Filters the audit export uses besides position and correlation id (which 0001 indexes).
CREATE INDEX events_event_type_position_idx ON events (event_type, position);
CREATE INDEX events_actor_idx ON events ((metadata ->> 'actor'), position);
CREATE INDEX events_recorded_at_idx ON events (recorded_at);
