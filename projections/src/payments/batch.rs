//! Applies a batch of payment events set-based: the rows the batch touches are read in one
//! query, the events are folded into them in memory as `apply.rs` applies them one by one (a
//! request inserts a row that does not exist yet; any other event updates an existing row
//! whose position is lower), and the changed rows are written back in one statement.
//! `tests/batch_apply.rs` holds the two paths to the same rows.

use bountyline_domain::payment::PaymentEvent;
use chrono::{DateTime, Utc};
use sqlx::{Postgres, Transaction};
use std::collections::{BTreeSet, HashMap};
use uuid::Uuid;

use super::apply::{decode, payee};
use crate::{ProjectionError, StoredEvent};

/// A `payments` row as stored.
#[derive(Debug, Clone, sqlx::FromRow)]
struct PaymentRow {
    id: Uuid,
    bounty_id: Option<Uuid>,
    payer: Uuid,
    payee: Option<Uuid>,
    amount: i64,
    currency: String,
    status: String,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    version: i64,
    position: i64,
}

const READ_ROWS: &str = "\
SELECT id, bounty_id, payer, payee, amount, currency, status, created_at, updated_at, version, \
       position FROM payments WHERE id = ANY($1)";

const WRITE_ROWS: &str = "\
INSERT INTO payments (id, bounty_id, payer, payee, amount, currency, status, created_at, \
  updated_at, version, position) \
SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::uuid[], $4::uuid[], $5::bigint[], $6::text[], \
  $7::text[], $8::timestamptz[], $9::timestamptz[], $10::bigint[], $11::bigint[]) \
ON CONFLICT (id) DO UPDATE SET bounty_id = excluded.bounty_id, payer = excluded.payer, \
  payee = excluded.payee, amount = excluded.amount, currency = excluded.currency, \
  status = excluded.status, created_at = excluded.created_at, updated_at = excluded.updated_at, \
  version = excluded.version, position = excluded.position";

pub(super) async fn apply(
    tx: &mut Transaction<'static, Postgres>,
    events: &[StoredEvent],
) -> Result<(), ProjectionError> {
    let mut decoded = Vec::new();
    for event in events {
        if let Some((id, payment)) = decode(event)? {
            decoded.push((event, id, payment));
        }
    }
    if decoded.is_empty() {
        return Ok(());
    }
    let ids: Vec<Uuid> = decoded.iter().map(|(_, id, _)| *id).collect();
    let mut rows: HashMap<Uuid, PaymentRow> = sqlx::query_as::<_, PaymentRow>(READ_ROWS)
        .bind(&ids)
        .fetch_all(&mut **tx)
        .await?
        .into_iter()
        .map(|row| (row.id, row))
        .collect();

    let mut changed = BTreeSet::new();
    for (event, id, payment) in decoded {
        if fold(&mut rows, event, id, &payment) {
            changed.insert(id);
        }
    }
    write(tx, changed.iter().filter_map(|id| rows.get(id))).await
}

/// One event, as `apply.rs` applies it; true when it changed a row.
fn fold(
    rows: &mut HashMap<Uuid, PaymentRow>,
    event: &StoredEvent,
    id: Uuid,
    payment: &PaymentEvent,
) -> bool {
    let status = payment.status_after().as_str().to_owned();
    match payment {
        PaymentEvent::PaymentRequested {
            payer,
            bounty_id,
            currency,
            amount,
            at,
        } => {
            if rows.contains_key(&id) {
                return false;
            }
            rows.insert(
                id,
                PaymentRow {
                    id,
                    bounty_id: Some(*bounty_id),
                    payer: *payer,
                    payee: None,
                    amount: *amount,
                    currency: currency.as_str().to_owned(),
                    status,
                    created_at: *at,
                    updated_at: *at,
                    version: event.sequence,
                    position: event.position,
                },
            );
            true
        }
        other => {
            let Some(row) = rows.get_mut(&id).filter(|r| r.position < event.position) else {
                return false;
            };
            row.payee = payee(other).or(row.payee);
            row.status = status;
            row.updated_at = event.recorded_at;
            row.version = event.sequence;
            row.position = event.position;
            true
        }
    }
}

async fn write<'a>(
    tx: &mut Transaction<'static, Postgres>,
    rows: impl Iterator<Item = &'a PaymentRow>,
) -> Result<(), ProjectionError> {
    let mut columns = Columns::default();
    for row in rows {
        columns.push(row);
    }
    if columns.id.is_empty() {
        return Ok(());
    }
    sqlx::query(WRITE_ROWS)
        .bind(columns.id)
        .bind(columns.bounty_id)
        .bind(columns.payer)
        .bind(columns.payee)
        .bind(columns.amount)
        .bind(columns.currency)
        .bind(columns.status)
        .bind(columns.created_at)
        .bind(columns.updated_at)
        .bind(columns.version)
        .bind(columns.position)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// Rows to write, column by column.
#[derive(Default)]
struct Columns {
    id: Vec<Uuid>,
    bounty_id: Vec<Option<Uuid>>,
    payer: Vec<Uuid>,
    payee: Vec<Option<Uuid>>,
    amount: Vec<i64>,
    currency: Vec<String>,
    status: Vec<String>,
    created_at: Vec<DateTime<Utc>>,
    updated_at: Vec<DateTime<Utc>>,
    version: Vec<i64>,
    position: Vec<i64>,
}

impl Columns {
    fn push(&mut self, row: &PaymentRow) {
        self.id.push(row.id);
        self.bounty_id.push(row.bounty_id);
        self.payer.push(row.payer);
        self.payee.push(row.payee);
        self.amount.push(row.amount);
        self.currency.push(row.currency.clone());
        self.status.push(row.status.clone());
        self.created_at.push(row.created_at);
        self.updated_at.push(row.updated_at);
        self.version.push(row.version);
        self.position.push(row.position);
    }
}
