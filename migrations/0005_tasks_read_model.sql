-- Read model of the `tasks` projection. Rebuilt tables are created LIKE these, so every
-- index and default here is carried over by a rebuild.

CREATE TABLE tasks (
    id               uuid PRIMARY KEY,
    queue            text NOT NULL,
    title            text NOT NULL,
    description      text NOT NULL,
    priority         smallint NOT NULL,
    payload          jsonb,
    result           jsonb,
    status           text NOT NULL,
    creator          uuid NOT NULL,
    worker           uuid,
    lease_id         uuid,
    lease_expires_at timestamptz,
    attempts         int NOT NULL,
    max_attempts     int NOT NULL,
    progress         smallint,
    note             text,
    last_error       text,
    bounty_id        uuid,
    created_at       timestamptz NOT NULL,
    updated_at       timestamptz NOT NULL,
    queued_at        timestamptz,
    completed_at     timestamptz,
    version          bigint NOT NULL,
    position         bigint NOT NULL
);

CREATE INDEX tasks_claim_order_idx ON tasks (queue, priority DESC, created_at, id)
    WHERE status = 'queued';
CREATE INDEX tasks_lease_expiry_idx ON tasks (lease_expires_at) WHERE status = 'claimed';
CREATE INDEX tasks_list_idx ON tasks (created_at DESC, id DESC);
CREATE INDEX tasks_queue_status_idx ON tasks (queue, status);
CREATE INDEX tasks_creator_idx ON tasks (creator);
CREATE INDEX tasks_worker_idx ON tasks (worker);
