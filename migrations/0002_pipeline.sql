-- Progress of the relay and of each projection, and the events a projection had to park.

CREATE TABLE relay_checkpoints (
    stream     text PRIMARY KEY,
    position   bigint NOT NULL DEFAULT 0,
    updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE projection_checkpoints (
    projection text PRIMARY KEY,
    position   bigint NOT NULL DEFAULT 0,
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- An event a projection could not apply after its retries. The projection moved past it;
-- an operator sees it here, in the logs and in the parked-events metric.
CREATE TABLE parked_events (
    projection text   NOT NULL,
    position   bigint NOT NULL,
    event_id   uuid   NOT NULL,
    event_type text   NOT NULL,
    error      text   NOT NULL,
    attempts   int    NOT NULL,
    parked_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (projection, position)
);
