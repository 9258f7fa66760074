-- Read model of the `stats` projection: the platform's figures for dashboards. Counters are
-- kept as the events arrive, so `GET /v1/stats` reads a handful of small rows however long the
-- history is. Rebuilt tables are created LIKE these.

-- Each bounty's status and reward: open bounties and their total reward, bounties by status.
CREATE TABLE stats_bounties (
    bounty_id uuid PRIMARY KEY,
    status    text NOT NULL,
    currency  text NOT NULL,
    amount    bigint NOT NULL
);

CREATE INDEX stats_bounties_status_idx ON stats_bounties (status);

-- Money held in escrow by payments, per currency.
CREATE TABLE stats_escrow (
    currency text PRIMARY KEY,
    held     bigint NOT NULL
);

-- Each task's queue and status (a task's later events need the status they leave), and the
-- counts per queue and status they add up to.
CREATE TABLE stats_tasks (
    task_id uuid PRIMARY KEY,
    queue   text NOT NULL,
    status  text NOT NULL
);

CREATE TABLE stats_task_counts (
    queue  text NOT NULL,
    status text NOT NULL,
    count  bigint NOT NULL,
    PRIMARY KEY (queue, status)
);

-- Events and task completions per second of recording time; seconds older than an hour
-- before the newest event are pruned (by event time, so a rebuild prunes alike).
CREATE TABLE stats_seconds (
    second      timestamptz PRIMARY KEY,
    events      bigint NOT NULL,
    completions bigint NOT NULL
);

-- Who issued a command on which day (UTC); days older than a week before the newest event
-- are pruned.
CREATE TABLE stats_active_users (
    day     date NOT NULL,
    user_id uuid NOT NULL,
    PRIMARY KEY (day, user_id)
);
