-- ADR 1: the append lock held from the insert through the commit's WAL flush.
INSERT INTO locked_events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata)
SELECT 'Task', id::text, 1, 'TaskCreated', '1', proto_payload(id), proto_metadata()
  FROM (SELECT gen_random_uuid() AS id FROM generate_series(1, :rows)) AS g;
