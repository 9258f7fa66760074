-- The re-seal (ADR 7, step 3; `bountyline privacy reseal`): texts written before sealing are
-- sealed in place under their authors' keys, and the hash chain of each stream holding one is
-- recomputed from its first changed event. Every event whose hash changed is recorded here with
-- its old and new hash, under the epoch whose `ChainResealed` event (aggregate `Epoch`) counts
-- them and carries a digest over them; an auditor's exported head that names an old hash is
-- answered by `heads/check` as resealed in that epoch, not as tampering.
CREATE TABLE resealed_links (
    aggregate_type text   NOT NULL,
    aggregate_id   text   NOT NULL,
    sequence       bigint NOT NULL,
    epoch          uuid   NOT NULL,
    old_hash       bytea  NOT NULL,
    new_hash       bytea  NOT NULL,
    PRIMARY KEY (aggregate_type, aggregate_id, sequence, epoch)
);

-- Recomputes one stream's chain from `from_sequence` on, storing each event's new hash (the
-- caller lifts the append-only trigger for its transaction, and holds appends off), and
-- answers the events whose hash changed.
CREATE FUNCTION events_rechain(stream_type text, stream_id text, from_sequence bigint)
RETURNS TABLE (changed_sequence bigint, old_hash bytea, new_hash bytea)
LANGUAGE plpgsql AS $$
DECLARE
    r    record;
    prev bytea;
    h    bytea;
BEGIN
    SELECT e.hash INTO prev FROM events e
     WHERE e.aggregate_type = stream_type AND e.aggregate_id = stream_id
       AND e.sequence = from_sequence - 1;
    FOR r IN SELECT * FROM events e
              WHERE e.aggregate_type = stream_type AND e.aggregate_id = stream_id
                AND e.sequence >= from_sequence
              ORDER BY e.sequence LOOP
        h := event_hash(r.aggregate_type, r.aggregate_id, r.sequence, r.event_type,
                        r.event_version, r.payload, r.metadata, r.event_id, r.recorded_at, prev);
        IF h IS DISTINCT FROM r.hash THEN
            UPDATE events e SET hash = h
             WHERE e.aggregate_type = stream_type AND e.aggregate_id = stream_id
               AND e.sequence = r.sequence;
            changed_sequence := r.sequence;
            old_hash := r.hash;
            new_hash := h;
            RETURN NEXT;
        END IF;
        prev := h;
    END LOOP;
END $$;
