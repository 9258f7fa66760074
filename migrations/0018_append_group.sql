-- A group commit in one statement (docs/adr/0003-group-commit.md, amended). The committer sent
-- four round trips per group (BEGIN with the append lock, the versions, the insert, COMMIT),
-- each one a wake-up of the committer and of its backend on a loaded machine, all while
-- holding the append lock that every other append waits on. This function does the same work
-- in one statement, which the committer runs outside any explicit transaction: the statement
-- is its own transaction, committed (and fsynced) before its answer comes back.
--
-- Under the append lock (the key of events_assign_position, 0x626c6576 = 'blev') each query
-- here takes a fresh snapshot (plpgsql, READ COMMITTED), so the stored versions and claims it
-- reads are exact: no other transaction can append until this one ends.
--
-- Commands are decided in arrival order. A command wins when its first event follows its
-- stream's version, counting the winners before it in the group, and when the delivery it
-- carries out (if any) is unclaimed or claimed with the same body; otherwise it conflicts and
-- moves neither its stream's version nor the claim. The winners' events go in as one insert in
-- arrival order, so the position and hash-chain triggers see each row after the ones before
-- it; the winners' references are claimed in the same transaction.
--
-- Returns, per command, the position of its last event, or 0 when it conflicts.
CREATE FUNCTION append_group(
    -- One element per command, in arrival order.
    c_types      text[],
    c_ids        text[],
    c_first      bigint[],  -- the sequence of its first event
    c_last       bigint[],  -- the sequence of its last event
    c_references text[],    -- the delivery it carries out, NULL for none
    c_bodies     text[],    -- that delivery's body, SHA-256 in lowercase hex
    c_deliveries text[],    -- that delivery's event name
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
    wins     boolean[] := '{}';
    stream   text;
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

    FOR n IN 1 .. coalesce(array_length(c_types, 1), 0) LOOP
        stream := jsonb_build_array(c_types[n], c_ids[n])::text;
        wins[n] := c_first[n] = (versions ->> stream)::bigint + 1
            AND (c_references[n] IS NULL
                 OR coalesce(claimed ->> c_references[n] = c_bodies[n], true));
        IF wins[n] THEN
            versions := jsonb_set(versions, ARRAY[stream], to_jsonb(c_last[n]));
            IF c_references[n] IS NOT NULL THEN
                claimed := claimed || jsonb_build_object(c_references[n], c_bodies[n]);
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
    SELECT array_agg(coalesce(inserted.position, 0) ORDER BY c.n)
      INTO result
      FROM unnest(c_types, c_ids, c_last, wins) WITH ORDINALITY AS c(t, i, last, won, n)
      LEFT JOIN inserted
        ON c.won AND inserted.aggregate_type = c.t AND inserted.aggregate_id = c.i
       AND inserted.sequence = c.last;

    INSERT INTO webhook_deliveries (reference, body_hash, event)
    SELECT c.reference, decode(c.body, 'hex'), c.delivery
      FROM unnest(c_references, c_bodies, c_deliveries, wins) AS c(reference, body, delivery, won)
     WHERE c.won AND c.reference IS NOT NULL
    ON CONFLICT (reference) DO NOTHING;

    RETURN coalesce(result, '{}');
END $$;
