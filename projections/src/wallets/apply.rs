//! Applies wallet events: the balance row takes the balance the event carries (so it is always
//! exactly the aggregate's), and every movement of money adds a ledger entry.

use async_trait::async_trait;
use bountyline_domain::wallet::{BalanceChange, WalletEvent};
use sqlx::{Postgres, Transaction};
use uuid::Uuid;

use crate::{Projection, ProjectionError, StoredEvent};

pub struct WalletsProjection;

/// What a ledger entry names besides its amount.
#[derive(Default)]
pub(super) struct Refs {
    pub(super) reference: Option<String>,
    pub(super) payment_id: Option<Uuid>,
    pub(super) withdrawal_id: Option<Uuid>,
}

/// A wallet event that moved money: its balance change and what its ledger entry names.
/// `None` for another aggregate's event or one that moved nothing.
pub(super) fn movement(
    event: &StoredEvent,
) -> Result<Option<(BalanceChange, Refs)>, ProjectionError> {
    if event.aggregate_type != "Wallet" {
        return Ok(None);
    }
    let wallet: WalletEvent = event
        .decode()
        .map_err(|e| ProjectionError::decode(event, e))?;
    Ok(refs(&wallet).map(|refs| (wallet.balance_change(), refs)))
}

fn refs(event: &WalletEvent) -> Option<Refs> {
    Some(match event {
        WalletEvent::DepositConfirmed { reference, .. } => Refs {
            reference: Some(reference.clone()),
            ..Refs::default()
        },
        WalletEvent::WalletCredited { reason, .. } => Refs {
            reference: Some(reason.clone()),
            ..Refs::default()
        },
        WalletEvent::WithdrawalRequested { withdrawal_id, .. } => Refs {
            withdrawal_id: Some(*withdrawal_id),
            ..Refs::default()
        },
        WalletEvent::WithdrawalCompleted {
            withdrawal_id,
            reference,
            ..
        }
        | WalletEvent::WithdrawalFailed {
            withdrawal_id,
            reference,
            ..
        } => Refs {
            reference: Some(reference.clone()),
            withdrawal_id: Some(*withdrawal_id),
            ..Refs::default()
        },
        WalletEvent::FundsHeld { payment_id, .. }
        | WalletEvent::HoldReleased { payment_id, .. }
        | WalletEvent::HoldRefunded { payment_id, .. }
        | WalletEvent::PaymentReceived { payment_id, .. } => Refs {
            payment_id: Some(*payment_id),
            ..Refs::default()
        },
        // Nothing moved.
        WalletEvent::HoldRejected { .. } => return None,
    })
}

#[async_trait]
impl Projection for WalletsProjection {
    fn name(&self) -> &'static str {
        "wallets"
    }

    fn tables(&self) -> &'static [&'static str] {
        &["wallet_balances", "wallet_entries"]
    }

    fn deferred_indexes(&self) -> &'static [&'static str] {
        &["wallet_entries_user_idx"]
    }

    fn aggregate_types(&self) -> Option<&'static [&'static str]> {
        Some(&["Wallet"])
    }

    async fn apply(
        &self,
        tx: &mut Transaction<'static, Postgres>,
        event: &StoredEvent,
    ) -> Result<(), ProjectionError> {
        let Some((change, refs)) = movement(event)? else {
            return Ok(());
        };
        sqlx::query(
            "INSERT INTO wallet_balances (user_id, currency, available, held, updated_at, position) \
             VALUES ($1, $2, $3, $4, $5, $6) \
             ON CONFLICT (user_id, currency) DO UPDATE SET available = $3, held = $4, \
               updated_at = $5, position = $6 WHERE wallet_balances.position < $6",
        )
        .bind(change.owner)
        .bind(change.currency.as_str())
        .bind(change.available)
        .bind(change.held)
        .bind(event.recorded_at)
        .bind(event.position)
        .execute(&mut **tx)
        .await?;
        sqlx::query(
            "INSERT INTO wallet_entries (event_id, user_id, currency, kind, amount, available, held, \
             reference, payment_id, withdrawal_id, at, position) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) \
             ON CONFLICT (event_id) DO NOTHING",
        )
        .bind(event.event_id)
        .bind(change.owner)
        .bind(change.currency.as_str())
        .bind(entry_kind(&event.event_type))
        .bind(change.amount)
        .bind(change.available)
        .bind(change.held)
        .bind(refs.reference)
        .bind(refs.payment_id)
        .bind(refs.withdrawal_id)
        .bind(event.recorded_at)
        .bind(event.position)
        .execute(&mut **tx)
        .await?;
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

/// `DepositConfirmed` → `deposit_confirmed`.
pub(super) fn entry_kind(event_type: &str) -> String {
    let mut out = String::with_capacity(event_type.len() + 4);
    for (i, c) in event_type.chars().enumerate() {
        if c.is_ascii_uppercase() {
            if i > 0 {
                out.push('_');
            }
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn entry_kinds_are_snake_case() {
        assert_eq!(super::entry_kind("DepositConfirmed"), "deposit_confirmed");
        assert_eq!(super::entry_kind("HoldReleased"), "hold_released");
    }
}
