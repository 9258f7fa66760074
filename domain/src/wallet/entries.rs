//! A wallet's keyed history: its deposits (by the provider's reference), withdrawals (by id),
//! escrow holds and received payments (by payment id).
//!
//! A command names at most one entry ([`WalletCommand::entry_key`]), and only that entry's
//! events matter to it: whether a deposit reference was used before and for how much, whether
//! a hold is still held. So the wallet keeps only its balances in memory, and before it
//! decides, the entry's events are read under the command's key ([`WalletHistory`], the
//! aggregate's service). A wallet's memory then stays the same size however long its history
//! grows: kept whole, every deposit reference and hold stayed in each hot wallet, about 140
//! bytes a deposit, and a held load's API grew by half in ten minutes.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use uuid::Uuid;

use super::{Amount, Hold, HoldState, Receipt, Withdrawal, WithdrawalState};
use super::{WalletCommand, WalletEvent};

/// The entry a command or an event is about.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum EntryKey {
    Deposit(String),
    Credit(Uuid),
    Withdrawal(Uuid),
    Hold(Uuid),
    Receipt(Uuid),
}

impl EntryKey {
    /// The key as the event store indexes it (migrations/0014, `wallet_entry_key`).
    pub fn stored(&self) -> String {
        match self {
            EntryKey::Deposit(reference) => format!("deposit:{reference}"),
            EntryKey::Credit(id) => format!("credit:{id}"),
            EntryKey::Withdrawal(id) => format!("withdrawal:{id}"),
            EntryKey::Hold(id) => format!("hold:{id}"),
            EntryKey::Receipt(id) => format!("receipt:{id}"),
        }
    }
}

impl WalletCommand {
    /// The entry this command reads or writes.
    pub fn entry_key(&self) -> Option<EntryKey> {
        Some(match self {
            WalletCommand::Deposit { reference, .. } => {
                EntryKey::Deposit(reference.as_str().to_owned())
            }
            WalletCommand::Credit { credit_id, .. } => EntryKey::Credit(*credit_id),
            WalletCommand::RequestWithdrawal { withdrawal_id, .. }
            | WalletCommand::CompleteWithdrawal { withdrawal_id, .. }
            | WalletCommand::FailWithdrawal { withdrawal_id, .. } => {
                EntryKey::Withdrawal(*withdrawal_id)
            }
            WalletCommand::HoldFunds { payment_id, .. }
            | WalletCommand::ReleaseHold { payment_id, .. }
            | WalletCommand::RefundHold { payment_id, .. } => EntryKey::Hold(*payment_id),
            WalletCommand::ReceivePayment { payment_id, .. } => EntryKey::Receipt(*payment_id),
        })
    }
}

impl WalletEvent {
    /// The entry this event records; `None` for a credit recorded before credits had ids.
    pub fn entry_key(&self) -> Option<EntryKey> {
        Some(match self {
            WalletEvent::DepositConfirmed { reference, .. } => EntryKey::Deposit(reference.clone()),
            WalletEvent::WalletCredited { credit_id, .. } => EntryKey::Credit((*credit_id)?),
            WalletEvent::WithdrawalRequested { withdrawal_id, .. }
            | WalletEvent::WithdrawalCompleted { withdrawal_id, .. }
            | WalletEvent::WithdrawalFailed { withdrawal_id, .. } => {
                EntryKey::Withdrawal(*withdrawal_id)
            }
            WalletEvent::FundsHeld { payment_id, .. }
            | WalletEvent::HoldRejected { payment_id, .. }
            | WalletEvent::HoldReleased { payment_id, .. }
            | WalletEvent::HoldRefunded { payment_id, .. } => EntryKey::Hold(*payment_id),
            WalletEvent::PaymentReceived { payment_id, .. } => EntryKey::Receipt(*payment_id),
        })
    }
}

/// The state of one entry, folded from its events; all `None` for an entry never used.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Entry {
    pub deposit: Option<Amount>,
    pub credit: Option<Amount>,
    pub withdrawal: Option<Withdrawal>,
    pub hold: Option<Hold>,
    pub receipt: Option<Receipt>,
}

impl Entry {
    /// Folds the events recorded under `key`, in order; events under other keys are passed
    /// over, so a whole history may be given.
    pub fn under<'a>(key: &EntryKey, events: impl IntoIterator<Item = &'a WalletEvent>) -> Self {
        let mut entry = Entry::default();
        for event in events {
            if event.entry_key().as_ref() == Some(key) {
                entry.apply(event);
            }
        }
        entry
    }

    fn apply(&mut self, event: &WalletEvent) {
        let change = event.balance_change();
        let money = Amount {
            currency: change.currency,
            amount: change.amount,
        };
        match event {
            WalletEvent::DepositConfirmed { .. } => self.deposit = Some(money),
            WalletEvent::WalletCredited { .. } => self.credit = Some(money),
            WalletEvent::WithdrawalRequested { .. } => {
                self.withdrawal = Some(Withdrawal {
                    money,
                    state: WithdrawalState::Pending,
                });
            }
            WalletEvent::WithdrawalCompleted { .. } => {
                self.settle_withdrawal(WithdrawalState::Completed)
            }
            WalletEvent::WithdrawalFailed { .. } => self.settle_withdrawal(WithdrawalState::Failed),
            WalletEvent::FundsHeld { .. } => {
                self.hold = Some(Hold {
                    money,
                    state: HoldState::Held,
                });
            }
            WalletEvent::HoldRejected { .. } => {
                self.hold = Some(Hold {
                    money,
                    state: HoldState::Rejected,
                });
            }
            WalletEvent::HoldReleased { .. } => self.resolve_hold(HoldState::Released),
            WalletEvent::HoldRefunded { .. } => self.resolve_hold(HoldState::Refunded),
            WalletEvent::PaymentReceived { from, .. } => {
                self.receipt = Some(Receipt { money, from: *from });
            }
        }
    }

    fn settle_withdrawal(&mut self, state: WithdrawalState) {
        if let Some(withdrawal) = &mut self.withdrawal {
            withdrawal.state = state;
        }
    }

    fn resolve_hold(&mut self, state: HoldState) {
        if let Some(hold) = &mut self.hold {
            hold.state = state;
        }
    }
}

/// Why the history could not be read: the store's own error, kept whole (not flattened into
/// text) so that the HTTP edge can tell a database out of reach (503) from a fault (500). The
/// command fails as a fault, never as a refusal.
#[derive(Debug, Clone)]
pub struct HistoryError(pub Arc<dyn std::error::Error + Send + Sync>);

impl HistoryError {
    pub fn new(cause: impl std::error::Error + Send + Sync + 'static) -> Self {
        Self(Arc::new(cause))
    }
}

impl PartialEq for HistoryError {
    /// The same failure, not an equal one: errors have no equality of their own.
    fn eq(&self, other: &Self) -> bool {
        std::ptr::addr_eq(Arc::as_ptr(&self.0), Arc::as_ptr(&other.0))
    }
}

impl Eq for HistoryError {}

impl std::fmt::Display for HistoryError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl std::error::Error for HistoryError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&*self.0)
    }
}

/// Reads the events one wallet recorded under one key, in order.
pub trait WalletHistory: Send + Sync {
    fn events_under<'a>(
        &'a self,
        wallet: Uuid,
        key: &'a EntryKey,
    ) -> Pin<Box<dyn Future<Output = Result<Vec<WalletEvent>, HistoryError>> + Send + 'a>>;
}

/// The wallet aggregate's service: where its keyed history is read.
pub type WalletServices = Arc<dyn WalletHistory>;
