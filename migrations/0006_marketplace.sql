-- Read models of the marketplace projections (bounties, wallets, payments, notifications),
-- the progress of the process managers, and the payment provider's webhook deliveries.

CREATE TABLE bounties (
    id              uuid PRIMARY KEY,
    poster          uuid NOT NULL,
    title           text NOT NULL,
    description     text NOT NULL,
    reward_amount   bigint NOT NULL,
    reward_currency text NOT NULL,
    deadline        timestamptz,
    tags            text[] NOT NULL DEFAULT '{}',
    status          text NOT NULL,
    hunter          uuid,
    payment_id      uuid NOT NULL,
    refunded        boolean NOT NULL DEFAULT false,
    created_at      timestamptz NOT NULL,
    updated_at      timestamptz NOT NULL,
    version         bigint NOT NULL,
    position        bigint NOT NULL,
    search          tsvector GENERATED ALWAYS AS
                      (to_tsvector('simple', title || ' ' || description)) STORED
);

CREATE INDEX bounties_board_idx ON bounties (status, created_at DESC, id DESC);
CREATE INDEX bounties_reward_idx ON bounties (reward_amount DESC, id DESC);
CREATE INDEX bounties_tags_idx ON bounties USING gin (tags);
CREATE INDEX bounties_search_idx ON bounties USING gin (search);
CREATE INDEX bounties_poster_idx ON bounties (poster);
CREATE INDEX bounties_hunter_idx ON bounties (hunter);
CREATE INDEX bounties_expiry_idx ON bounties (deadline) WHERE status = 'open';

CREATE TABLE bounty_applications (
    id          uuid PRIMARY KEY,
    bounty_id   uuid NOT NULL,
    hunter      uuid NOT NULL,
    pitch       text NOT NULL,
    status      text NOT NULL,
    created_at  timestamptz NOT NULL,
    updated_at  timestamptz NOT NULL,
    position    bigint NOT NULL
);

CREATE INDEX bounty_applications_bounty_idx ON bounty_applications (bounty_id, created_at);
CREATE INDEX bounty_applications_hunter_idx ON bounty_applications (hunter);

CREATE TABLE wallet_balances (
    user_id    uuid NOT NULL,
    currency   text NOT NULL,
    available  bigint NOT NULL CHECK (available >= 0),
    held       bigint NOT NULL CHECK (held >= 0),
    updated_at timestamptz NOT NULL,
    position   bigint NOT NULL,
    PRIMARY KEY (user_id, currency)
);

-- The ledger: one row per wallet event, with the balance after it.
CREATE TABLE wallet_entries (
    event_id       uuid PRIMARY KEY,
    user_id        uuid NOT NULL,
    currency       text NOT NULL,
    kind           text NOT NULL,
    amount         bigint NOT NULL,
    available      bigint NOT NULL,
    held           bigint NOT NULL,
    reference      text,
    payment_id     uuid,
    withdrawal_id  uuid,
    at             timestamptz NOT NULL,
    position       bigint NOT NULL
);

CREATE INDEX wallet_entries_user_idx ON wallet_entries (user_id, position DESC);

CREATE TABLE payments (
    id         uuid PRIMARY KEY,
    bounty_id  uuid,
    payer      uuid NOT NULL,
    payee      uuid,
    amount     bigint NOT NULL,
    currency   text NOT NULL,
    status     text NOT NULL,
    created_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL,
    version    bigint NOT NULL,
    position   bigint NOT NULL
);

CREATE INDEX payments_bounty_idx ON payments (bounty_id);
CREATE INDEX payments_payer_idx ON payments (payer);
CREATE INDEX payments_payee_idx ON payments (payee);

CREATE TABLE notifications (
    id         uuid PRIMARY KEY,
    user_id    uuid NOT NULL,
    kind       text NOT NULL,
    subject_id uuid,
    data       jsonb NOT NULL,
    created_at timestamptz NOT NULL,
    read_at    timestamptz,
    position   bigint NOT NULL
);

CREATE INDEX notifications_user_idx ON notifications (user_id, position DESC);
CREATE INDEX notifications_unread_idx ON notifications (user_id) WHERE read_at IS NULL;

-- Who created each task, so that dead-letter notifications need no other read model.
CREATE TABLE notification_task_owners (
    task_id uuid PRIMARY KEY,
    creator uuid NOT NULL,
    title   text NOT NULL
);

-- Process managers' flows (one per payment): what step each is at, so that an operator sees
-- which are in flight and which are stuck. Written by the process managers, not rebuilt.
CREATE TABLE process_flows (
    flow_id      uuid PRIMARY KEY,
    kind         text NOT NULL,
    bounty_id    uuid,
    step         text NOT NULL,
    done         boolean NOT NULL DEFAULT false,
    last_error   text,
    started_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    position     bigint NOT NULL
);

CREATE INDEX process_flows_open_idx ON process_flows (updated_at) WHERE NOT done;

-- The payment provider's webhook deliveries, unique by its reference across all wallets.
CREATE TABLE webhook_deliveries (
    reference    text PRIMARY KEY,
    body_hash    bytea NOT NULL,
    event        text NOT NULL,
    received_at  timestamptz NOT NULL DEFAULT now(),
    processed_at timestamptz
);
