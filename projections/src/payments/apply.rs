//! Applies payment events to the `payments` table, guarded by position.

use async_trait::async_trait;
use bountyline_domain::payment::PaymentEvent;
use sqlx::{Postgres, Transaction};
use uuid::Uuid;

use crate::{Projection, ProjectionError, StoredEvent};

pub struct PaymentsProjection;

/// A payment event with its payment's id; `None` for another aggregate's event.
pub(super) fn decode(event: &StoredEvent) -> Result<Option<(Uuid, PaymentEvent)>, ProjectionError> {
    if event.aggregate_type != "Payment" {
        return Ok(None);
    }
    let id = event
        .aggregate_uuid()
        .ok_or_else(|| ProjectionError::Invalid(format!("payment id {}", event.aggregate_id)))?;
    let payment = event
        .decode()
        .map_err(|e| ProjectionError::decode(event, e))?;
    Ok(Some((id, payment)))
}

/// The payee an event names, if any: a row keeps the one it has otherwise.
pub(super) fn payee(event: &PaymentEvent) -> Option<Uuid> {
    match event {
        PaymentEvent::ReleaseRequested { payee, .. }
        | PaymentEvent::PaymentReleased { payee, .. } => Some(*payee),
        _ => None,
    }
}

#[async_trait]
impl Projection for PaymentsProjection {
    fn name(&self) -> &'static str {
        "payments"
    }

    fn tables(&self) -> &'static [&'static str] {
        &["payments"]
    }

    fn deferred_indexes(&self) -> &'static [&'static str] {
        // The apply reads rows by id only.
        &[
            "payments_bounty_idx",
            "payments_payer_idx",
            "payments_payee_idx",
        ]
    }

    fn aggregate_types(&self) -> Option<&'static [&'static str]> {
        Some(&["Payment"])
    }

    async fn apply(
        &self,
        tx: &mut Transaction<'static, Postgres>,
        event: &StoredEvent,
    ) -> Result<(), ProjectionError> {
        let Some((id, payment)) = decode(event)? else {
            return Ok(());
        };
        let status = payment.status_after().as_str();
        match &payment {
            PaymentEvent::PaymentRequested {
                payer,
                bounty_id,
                currency,
                amount,
                at,
            } => {
                sqlx::query(
                    "INSERT INTO payments (id, bounty_id, payer, amount, currency, status, \
                     created_at, updated_at, version, position) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $7, $8, $9) ON CONFLICT (id) DO NOTHING",
                )
                .bind(id)
                .bind(bounty_id)
                .bind(payer)
                .bind(amount)
                .bind(currency.as_str())
                .bind(status)
                .bind(at)
                .bind(event.sequence)
                .bind(event.position)
                .execute(&mut **tx)
                .await?;
            }
            other => {
                sqlx::query(
                    "UPDATE payments SET status = $3, payee = coalesce($4, payee), \
                     updated_at = $5, version = $6, position = $2 \
                     WHERE id = $1 AND position < $2",
                )
                .bind(id)
                .bind(event.position)
                .bind(status)
                .bind(payee(other))
                .bind(event.recorded_at)
                .bind(event.sequence)
                .execute(&mut **tx)
                .await?;
            }
        }
        Ok(())
    }

    async fn apply_batch(
        &self,
        tx: &mut Transaction<'static, Postgres>,
        events: &[StoredEvent],
    ) -> Result<(), ProjectionError> {
        super::batch::apply(tx, events).await
    }
}
