-- A wallet keeps only its balances in memory; before it decides a command, the events of the
-- one entry the command names (a deposit reference, a withdrawal, a hold, a received payment)
-- are read with this index (domain/src/wallet/entries.rs). The key is the domain's
-- `EntryKey::stored`: the kind of entry, a colon, and the reference or id.
CREATE FUNCTION wallet_entry_key(event_type text, payload jsonb) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE event_type
        WHEN 'DepositConfirmed' THEN 'deposit:' || (payload -> event_type ->> 'reference')
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

CREATE INDEX events_wallet_entry_idx ON events (aggregate_id, wallet_entry_key(event_type, payload))
    WHERE aggregate_type = 'Wallet';
