-- Bounties per status and currency, with their total reward, kept as the events arrive like
-- `stats_task_counts`. `GET /v1/stats` and the stats stream read these few rows instead of
-- grouping every bounty ever posted (a snapshot cost grew with the history: 16 ms at about 65,000
-- bounties, taken twice a second per API process while a dashboard watches).
CREATE TABLE stats_bounty_counts (
    status   text NOT NULL,
    currency text NOT NULL,
    count    bigint NOT NULL,
    amount   bigint NOT NULL,
    PRIMARY KEY (status, currency)
);

INSERT INTO stats_bounty_counts (status, currency, count, amount)
SELECT status, currency, count(*), sum(amount)::bigint FROM stats_bounties GROUP BY 1, 2;
