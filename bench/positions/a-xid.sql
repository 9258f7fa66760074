-- Option a: positions from a sequence without any lock; each row carries its transaction id.
INSERT INTO xid_events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata)
SELECT 'Task', id::text, 1, 'TaskCreated', '1', proto_payload(id), proto_metadata()
  FROM (SELECT gen_random_uuid() AS id FROM generate_series(1, :rows)) AS g;
