-- A webhook delivery is claimed in one statement and no longer marked processed afterwards
-- (a second transaction, and fsync, per delivery): the wallet is idempotent on the reference,
-- so a repeat appends nothing and is answered `duplicate` from that.
ALTER TABLE webhook_deliveries DROP COLUMN processed_at;
