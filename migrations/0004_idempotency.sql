-- Idempotency-Key bookkeeping: one row per (user, key), holding the request's digest and,
-- once answered, the response that every retry gets back.

CREATE TABLE idempotency_keys (
    user_id        uuid  NOT NULL,
    key            text  NOT NULL,
    request_hash   bytea NOT NULL,
    started_at     timestamptz NOT NULL DEFAULT now(),
    completed_at   timestamptz,
    response_status smallint,
    response_body  jsonb,
    PRIMARY KEY (user_id, key)
);
