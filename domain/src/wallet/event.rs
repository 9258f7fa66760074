//! What happened to a wallet. Every event names the owner and carries the affected currency's
//! balance *after* it (`available`, `held`), so a balance read model or a ledger row never has
//! to add anything up.

use chrono::{DateTime, Utc};
use cqrs_es::DomainEvent;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::money::Currency;

/// Why an escrow hold could not be taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HoldRejection {
    InsufficientFunds,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum WalletEvent {
    DepositConfirmed {
        owner: Uuid,
        reference: String,
        currency: Currency,
        amount: i64,
        available: i64,
        held: i64,
        at: DateTime<Utc>,
    },
    WalletCredited {
        owner: Uuid,
        /// `None` for credits recorded before credits had ids (each of those stands alone):
        /// version 1 left the field out, version 2 writes `null` (`wallet/upcast.rs`). Required
        /// when read (serde would take a missing `Option` for `None`), so a v2 credit without
        /// it is refused rather than taken for one without an id.
        #[serde(deserialize_with = "Option::deserialize")]
        credit_id: Option<Uuid>,
        currency: Currency,
        amount: i64,
        reason: String,
        credited_by: Uuid,
        available: i64,
        held: i64,
        at: DateTime<Utc>,
    },
    WithdrawalRequested {
        owner: Uuid,
        withdrawal_id: Uuid,
        currency: Currency,
        amount: i64,
        available: i64,
        held: i64,
        at: DateTime<Utc>,
    },
    WithdrawalCompleted {
        owner: Uuid,
        withdrawal_id: Uuid,
        reference: String,
        currency: Currency,
        amount: i64,
        available: i64,
        held: i64,
        at: DateTime<Utc>,
    },
    WithdrawalFailed {
        owner: Uuid,
        withdrawal_id: Uuid,
        reference: String,
        currency: Currency,
        amount: i64,
        available: i64,
        held: i64,
        at: DateTime<Utc>,
    },
    FundsHeld {
        owner: Uuid,
        payment_id: Uuid,
        currency: Currency,
        amount: i64,
        available: i64,
        held: i64,
        at: DateTime<Utc>,
    },
    /// The hold was refused; balances are unchanged. An event rather than an error, so that
    /// the process manager waiting on the hold learns its outcome.
    HoldRejected {
        owner: Uuid,
        payment_id: Uuid,
        currency: Currency,
        amount: i64,
        reason: HoldRejection,
        available: i64,
        held: i64,
        at: DateTime<Utc>,
    },
    HoldReleased {
        owner: Uuid,
        payment_id: Uuid,
        currency: Currency,
        amount: i64,
        available: i64,
        held: i64,
        at: DateTime<Utc>,
    },
    HoldRefunded {
        owner: Uuid,
        payment_id: Uuid,
        currency: Currency,
        amount: i64,
        available: i64,
        held: i64,
        at: DateTime<Utc>,
    },
    PaymentReceived {
        owner: Uuid,
        payment_id: Uuid,
        from: Uuid,
        currency: Currency,
        amount: i64,
        available: i64,
        held: i64,
        at: DateTime<Utc>,
    },
}

/// The fields every wallet event shares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BalanceChange {
    pub owner: Uuid,
    pub currency: Currency,
    pub amount: i64,
    pub available: i64,
    pub held: i64,
}

impl WalletEvent {
    /// Whose wallet, which currency, how much, and the balance after the event.
    pub fn balance_change(&self) -> BalanceChange {
        match self {
            WalletEvent::DepositConfirmed {
                owner,
                currency,
                amount,
                available,
                held,
                ..
            }
            | WalletEvent::WalletCredited {
                owner,
                currency,
                amount,
                available,
                held,
                ..
            }
            | WalletEvent::WithdrawalRequested {
                owner,
                currency,
                amount,
                available,
                held,
                ..
            }
            | WalletEvent::WithdrawalCompleted {
                owner,
                currency,
                amount,
                available,
                held,
                ..
            }
            | WalletEvent::WithdrawalFailed {
                owner,
                currency,
                amount,
                available,
                held,
                ..
            }
            | WalletEvent::FundsHeld {
                owner,
                currency,
                amount,
                available,
                held,
                ..
            }
            | WalletEvent::HoldRejected {
                owner,
                currency,
                amount,
                available,
                held,
                ..
            }
            | WalletEvent::HoldReleased {
                owner,
                currency,
                amount,
                available,
                held,
                ..
            }
            | WalletEvent::HoldRefunded {
                owner,
                currency,
                amount,
                available,
                held,
                ..
            }
            | WalletEvent::PaymentReceived {
                owner,
                currency,
                amount,
                available,
                held,
                ..
            } => BalanceChange {
                owner: *owner,
                currency: *currency,
                amount: *amount,
                available: *available,
                held: *held,
            },
        }
    }
}

impl DomainEvent for WalletEvent {
    fn event_type(&self) -> String {
        let name = match self {
            WalletEvent::DepositConfirmed { .. } => "DepositConfirmed",
            WalletEvent::WalletCredited { .. } => "WalletCredited",
            WalletEvent::WithdrawalRequested { .. } => "WithdrawalRequested",
            WalletEvent::WithdrawalCompleted { .. } => "WithdrawalCompleted",
            WalletEvent::WithdrawalFailed { .. } => "WithdrawalFailed",
            WalletEvent::FundsHeld { .. } => "FundsHeld",
            WalletEvent::HoldRejected { .. } => "HoldRejected",
            WalletEvent::HoldReleased { .. } => "HoldReleased",
            WalletEvent::HoldRefunded { .. } => "HoldRefunded",
            WalletEvent::PaymentReceived { .. } => "PaymentReceived",
        };
        name.to_owned()
    }

    /// The version of this event type's stored form: 1 plus the upcasting steps registered
    /// for it ([`crate::upcast`], which says how to change an event).
    fn event_version(&self) -> String {
        crate::upcast::current_version(&self.event_type()).to_string()
    }
}
