//! Applies a batch of wallet events in two statements: every ledger entry in one insert, and
//! each (user, currency) balance once, at the last event of the batch that moved it. One by one,
//! each event's upsert overwrites the balance when its position is higher, so the last one's
//! figures are what remains; the entries are inserted once each either way.
//! `tests/batch_apply.rs` holds the two paths to the same rows.

use bountyline_domain::money::Currency;
use bountyline_domain::wallet::BalanceChange;
use chrono::{DateTime, Utc};
use sqlx::{Postgres, Transaction};
use std::collections::HashMap;
use uuid::Uuid;

use super::apply::{entry_kind, movement, Refs};
use crate::{ProjectionError, StoredEvent};

const UPSERT_BALANCES: &str = "\
INSERT INTO wallet_balances (user_id, currency, available, held, updated_at, position) \
SELECT * FROM unnest($1::uuid[], $2::text[], $3::bigint[], $4::bigint[], $5::timestamptz[], $6::bigint[]) \
ON CONFLICT (user_id, currency) DO UPDATE SET available = excluded.available, \
  held = excluded.held, updated_at = excluded.updated_at, position = excluded.position \
  WHERE wallet_balances.position < excluded.position";

const INSERT_ENTRIES: &str = "\
INSERT INTO wallet_entries (event_id, user_id, currency, kind, amount, available, held, \
  reference, payment_id, withdrawal_id, at, position) \
SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::text[], $4::text[], $5::bigint[], \
  $6::bigint[], $7::bigint[], $8::text[], $9::uuid[], $10::uuid[], $11::timestamptz[], \
  $12::bigint[]) \
ON CONFLICT (event_id) DO NOTHING";

/// The ledger rows of a batch, column by column.
#[derive(Default)]
struct Entries {
    event_id: Vec<Uuid>,
    user_id: Vec<Uuid>,
    currency: Vec<String>,
    kind: Vec<String>,
    amount: Vec<i64>,
    available: Vec<i64>,
    held: Vec<i64>,
    reference: Vec<Option<String>>,
    payment_id: Vec<Option<Uuid>>,
    withdrawal_id: Vec<Option<Uuid>>,
    at: Vec<DateTime<Utc>>,
    position: Vec<i64>,
}

impl Entries {
    fn push(&mut self, event: &StoredEvent, change: &BalanceChange, refs: Refs) {
        self.event_id.push(event.event_id);
        self.user_id.push(change.owner);
        self.currency.push(change.currency.as_str().to_owned());
        self.kind.push(entry_kind(&event.event_type));
        self.amount.push(change.amount);
        self.available.push(change.available);
        self.held.push(change.held);
        self.reference.push(refs.reference);
        self.payment_id.push(refs.payment_id);
        self.withdrawal_id.push(refs.withdrawal_id);
        self.at.push(event.recorded_at);
        self.position.push(event.position);
    }
}

/// A balance as the batch leaves it.
struct Balance {
    available: i64,
    held: i64,
    updated_at: DateTime<Utc>,
    position: i64,
}

pub(super) async fn apply(
    tx: &mut Transaction<'static, Postgres>,
    events: &[StoredEvent],
) -> Result<(), ProjectionError> {
    let mut entries = Entries::default();
    // In position order, so each key keeps its last event's figures.
    let mut balances: HashMap<(Uuid, Currency), Balance> = HashMap::new();
    for event in events {
        let Some((change, refs)) = movement(event)? else {
            continue;
        };
        balances.insert(
            (change.owner, change.currency),
            Balance {
                available: change.available,
                held: change.held,
                updated_at: event.recorded_at,
                position: event.position,
            },
        );
        entries.push(event, &change, refs);
    }
    if entries.event_id.is_empty() {
        return Ok(());
    }

    let (mut user_id, mut currency, mut available, mut held, mut updated_at, mut position) = (
        Vec::new(),
        Vec::new(),
        Vec::new(),
        Vec::new(),
        Vec::new(),
        Vec::new(),
    );
    for ((owner, code), balance) in balances {
        user_id.push(owner);
        currency.push(code.as_str().to_owned());
        available.push(balance.available);
        held.push(balance.held);
        updated_at.push(balance.updated_at);
        position.push(balance.position);
    }
    sqlx::query(UPSERT_BALANCES)
        .bind(user_id)
        .bind(currency)
        .bind(available)
        .bind(held)
        .bind(updated_at)
        .bind(position)
        .execute(&mut **tx)
        .await?;
    sqlx::query(INSERT_ENTRIES)
        .bind(entries.event_id)
        .bind(entries.user_id)
        .bind(entries.currency)
        .bind(entries.kind)
        .bind(entries.amount)
        .bind(entries.available)
        .bind(entries.held)
        .bind(entries.reference)
        .bind(entries.payment_id)
        .bind(entries.withdrawal_id)
        .bind(entries.at)
        .bind(entries.position)
        .execute(&mut **tx)
        .await?;
    Ok(())
}
