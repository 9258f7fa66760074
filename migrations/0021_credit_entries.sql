-- Admin credits are idempotent on their id (`WalletCredited.credit_id`, minted from the admin
-- and the request's Idempotency-Key): a wallet reads a credit's entry under its key before it
-- decides, as it does for withdrawals and holds (migration 0014). Credits recorded before they
-- had ids have no key (NULL) and each stands alone.
CREATE OR REPLACE FUNCTION wallet_entry_key(event_type text, payload jsonb) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE event_type
        WHEN 'DepositConfirmed' THEN 'deposit:' || (payload -> event_type ->> 'reference')
        WHEN 'WalletCredited' THEN 'credit:' || (payload -> event_type ->> 'credit_id')
        WHEN 'WithdrawalRequested' THEN 'withdrawal:' || (payload -> event_type ->> 'withdrawal_id')
        WHEN 'WithdrawalCompleted' THEN 'withdrawal:' || (payload -> event_type ->> 'withdrawal_id')
        WHEN 'WithdrawalFailed' THEN 'withdrawal:' || (payload -> event_type ->> 'withdrawal_id')
        WHEN 'FundsHeld' THEN 'hold:' || (payload -> event_type ->> 'payment_id')
        WHEN 'HoldRejected' THEN 'hold:' || (payload -> event_type ->> 'payment_id')
        WHEN 'HoldReleased' THEN 'hold:' || (payload -> event_type ->> 'payment_id')
        WHEN 'HoldRefunded' THEN 'hold:' || (payload -> event_type ->> 'payment_id')
        WHEN 'PaymentReceived' THEN 'receipt:' || (payload -> event_type ->> 'payment_id')
    END
$$;

-- The index holds keys computed by the old function: every stored credit's was NULL.
REINDEX INDEX events_wallet_entry_idx;
