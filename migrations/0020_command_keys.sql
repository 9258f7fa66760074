-- Exactly once when the outcome is unknown (DESIGN.md guarantee 3).
--
-- A command sent with an Idempotency-Key whose group commit lost its answer (the connection
-- cut after the statement went out) may or may not have committed. Its retry must find out
-- from the store, and no bug anywhere may ever append a second command under the same key.
-- `command_keys` is that record and that backstop: one row per (actor, key), written by
-- `append_group` in the transaction that appends the command's events, and its primary key
-- refuses a second. It also holds what the command's answer was made of (its aggregate, the
-- sequences of its first and last event, the position of its last), so a retry is answered
-- the original `{id, version, position}` without reading the events.

CREATE TABLE command_keys (
    actor           text   NOT NULL,
    idempotency_key text   NOT NULL,
    command_id      text   NOT NULL,
    aggregate_type  text   NOT NULL,
    aggregate_id    text   NOT NULL,
    first_sequence  bigint NOT NULL,
    last_sequence   bigint NOT NULL,
    position        bigint NOT NULL,
    PRIMARY KEY (actor, idempotency_key)
);

-- The record is history too: nothing may change or remove it.
CREATE TRIGGER command_keys_refuse_update_delete BEFORE UPDATE OR DELETE ON command_keys
    FOR EACH ROW EXECUTE FUNCTION events_refuse_change();
CREATE TRIGGER command_keys_refuse_truncate BEFORE TRUNCATE ON command_keys
    FOR EACH STATEMENT EXECUTE FUNCTION events_refuse_change();

-- Commands already stored: the first command recorded under each (actor, key). A store that
-- already holds two under one key (the defect this migration closes) keeps its history; the
-- record names the first, which is what its retries were meant to get.
INSERT INTO command_keys (actor, idempotency_key, command_id, aggregate_type, aggregate_id,
                          first_sequence, last_sequence, position)
SELECT DISTINCT ON (actor, key) actor, key, command_id, aggregate_type, aggregate_id,
       first_sequence, last_sequence, last_position
  FROM (SELECT metadata ->> 'actor' AS actor, metadata ->> 'idempotency_key' AS key,
               coalesce(metadata ->> 'command_id', '') AS command_id,
               aggregate_type, aggregate_id,
               min(sequence) AS first_sequence, max(sequence) AS last_sequence,
               max(position) AS last_position
          FROM events
         WHERE metadata ? 'idempotency_key' AND metadata ? 'actor'
         GROUP BY 1, 2, 3, 4, 5) AS commands
 ORDER BY actor, key, last_position;

-- An Idempotency-Key whose command ended without an answer the edge could trust (a lost
-- connection, a fault after the append): its next retry resolves it from `command_keys` at
-- once instead of waiting for the claim to go stale.
ALTER TABLE idempotency_keys ADD COLUMN unresolved boolean NOT NULL DEFAULT false;

-- append_group as in 0018, and per command the actor, Idempotency-Key and command id from its
-- first event's metadata. A command whose (actor, key) is already recorded, in the table or by
-- a winner before it in the group, appends nothing and is answered -1: the caller reads what
-- was recorded. Winners with a key are recorded; should this decision ever be wrong, the
-- primary key refuses the whole group (23505), so no bug here can double an effect.
DROP FUNCTION append_group(text[], text[], bigint[], bigint[], text[], text[], text[], int[],
                           text[], text[], bigint[], text[], text[], jsonb[], jsonb[]);

CREATE FUNCTION append_group(
    -- One element per command, in arrival order.
    c_types      text[],
    c_ids        text[],
    c_first      bigint[],  -- the sequence of its first event
    c_last       bigint[],  -- the sequence of its last event
    c_references text[],    -- the delivery it carries out, NULL for none
    c_bodies     text[],    -- that delivery's body, SHA-256 in lowercase hex
    c_deliveries text[],    -- that delivery's event name
    c_actors     text[],    -- who sent it
    c_keys       text[],    -- its Idempotency-Key, NULL for none
    c_commands   text[],    -- its command id
    -- One element per event: the commands' events in arrival order.
    e_commands   int[],     -- the index (from 1) of its command
    e_types      text[],
    e_ids        text[],
    e_sequences  bigint[],
    e_names      text[],
    e_versions   text[],
    e_payloads   jsonb[],
    e_metadata   jsonb[]
) RETURNS bigint[] LANGUAGE plpgsql AS $$
DECLARE
    versions jsonb;  -- stream (as a JSON array of type and id) -> its version
    claimed  jsonb;  -- reference -> the body it was claimed with
    keyed    jsonb;  -- (actor, key) as a JSON array -> true, for keys already recorded
    wins     boolean[] := '{}';
    repeats  boolean[] := '{}';
    stream   text;
    held     text;   -- this command's (actor, key), NULL for none
    result   bigint[];
BEGIN
    PERFORM pg_advisory_xact_lock(1651271030);

    SELECT coalesce(jsonb_object_agg(jsonb_build_array(s.t, s.i)::text,
               coalesce((SELECT max(e.sequence) FROM events e
                          WHERE e.aggregate_type = s.t AND e.aggregate_id = s.i), 0)), '{}')
      INTO versions
      FROM (SELECT DISTINCT t, i FROM unnest(c_types, c_ids) AS u(t, i)) AS s;
    SELECT coalesce(jsonb_object_agg(reference, encode(body_hash, 'hex')), '{}')
      INTO claimed
      FROM webhook_deliveries
     WHERE reference = ANY(c_references);
    SELECT coalesce(jsonb_object_agg(jsonb_build_array(r.actor, r.idempotency_key)::text, true),
                    '{}')
      INTO keyed
      FROM command_keys AS r
      JOIN unnest(c_actors, c_keys) AS u(a, k)
        ON r.actor = u.a AND r.idempotency_key = u.k;

    FOR n IN 1 .. coalesce(array_length(c_types, 1), 0) LOOP
        stream := jsonb_build_array(c_types[n], c_ids[n])::text;
        held := CASE WHEN c_keys[n] IS NOT NULL
                     THEN jsonb_build_array(c_actors[n], c_keys[n])::text END;
        repeats[n] := held IS NOT NULL AND keyed ? held;
        wins[n] := NOT repeats[n]
            AND c_first[n] = (versions ->> stream)::bigint + 1
            AND (c_references[n] IS NULL
                 OR coalesce(claimed ->> c_references[n] = c_bodies[n], true));
        IF wins[n] THEN
            versions := jsonb_set(versions, ARRAY[stream], to_jsonb(c_last[n]));
            IF c_references[n] IS NOT NULL THEN
                claimed := claimed || jsonb_build_object(c_references[n], c_bodies[n]);
            END IF;
            IF held IS NOT NULL THEN
                keyed := keyed || jsonb_build_object(held, true);
            END IF;
        END IF;
    END LOOP;

    WITH inserted AS (
        INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version,
                            payload, metadata)
        SELECT e.t, e.i, e.s, e.name, e.version, e.payload, e.metadata
          FROM unnest(e_commands, e_types, e_ids, e_sequences, e_names, e_versions, e_payloads,
                      e_metadata)
               WITH ORDINALITY AS e(c, t, i, s, name, version, payload, metadata, n)
         WHERE wins[e.c]
         ORDER BY e.n
        RETURNING aggregate_type, aggregate_id, sequence, position)
    SELECT array_agg(CASE WHEN c.repeat THEN -1 ELSE coalesce(inserted.position, 0) END
                     ORDER BY c.n)
      INTO result
      FROM unnest(c_types, c_ids, c_last, wins, repeats)
           WITH ORDINALITY AS c(t, i, last, won, repeat, n)
      LEFT JOIN inserted
        ON c.won AND inserted.aggregate_type = c.t AND inserted.aggregate_id = c.i
       AND inserted.sequence = c.last;

    INSERT INTO webhook_deliveries (reference, body_hash, event)
    SELECT c.reference, decode(c.body, 'hex'), c.delivery
      FROM unnest(c_references, c_bodies, c_deliveries, wins) AS c(reference, body, delivery, won)
     WHERE c.won AND c.reference IS NOT NULL
    ON CONFLICT (reference) DO NOTHING;

    -- No ON CONFLICT: a second command under a recorded key fails the group.
    INSERT INTO command_keys (actor, idempotency_key, command_id, aggregate_type, aggregate_id,
                              first_sequence, last_sequence, position)
    SELECT c.a, c.k, c.command, c.t, c.i, c.first, c.last, result[c.n]
      FROM unnest(c_actors, c_keys, c_commands, c_types, c_ids, c_first, c_last, wins)
           WITH ORDINALITY AS c(a, k, command, t, i, first, last, won, n)
     WHERE c.won AND c.k IS NOT NULL;

    RETURN coalesce(result, '{}');
END $$;
