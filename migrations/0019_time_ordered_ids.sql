-- Event ids in time order (UUID version 7, RFC 9562): the first 48 bits the insert's Unix time
-- in milliseconds, the rest random as before. With random (version 4) ids every append wrote
-- into a random leaf of `events_event_id_key`, so after each checkpoint nearly every append
-- dirtied a leaf page of its own and logged the whole page: on a probe of 20,000 appends into
-- 200,000 events, that index alone cost 300-500 bytes of WAL per event of about 2,800. Ids in
-- time order land in the index's right-most pages. An id is still unique and unguessable
-- enough for what it is (JetStream's deduplication key, an audit handle); the time it shows is
-- the event's `recorded_at`, which is public anyway.
CREATE FUNCTION uuid_v7() RETURNS uuid LANGUAGE sql VOLATILE PARALLEL SAFE AS $$
    -- A version 4 id (random, with its variant bits), its first six bytes replaced by the time
    -- and its version nibble turned from 0100 into 0111 (bits 52 and 53 set).
    SELECT encode(
        set_bit(set_bit(
            overlay(uuid_send(gen_random_uuid())
                    PLACING substring(int8send((extract(epoch FROM clock_timestamp()) * 1000)::bigint) FROM 3)
                    FROM 1 FOR 6),
            52, 1), 53, 1),
        'hex')::uuid
$$;

ALTER TABLE events ALTER COLUMN event_id SET DEFAULT uuid_v7();
