//! A wallet: one per user (its aggregate id is the owner's user id), holding per currency an
//! available balance and a held one (reserved for a pending withdrawal or an escrow hold).
//!
//! Money enters through confirmed deposits, admin credits and received payments, and leaves
//! through completed withdrawals and released holds. Every webhook- or saga-driven command
//! is idempotent on its id or reference, so a message that arrives twice moves no money
//! twice; an id reused for a different amount is refused. No balance ever goes below zero:
//! `decide` refuses any command that would make one negative, and every event carries the
//! balance after it.

mod command;
mod decide;
mod error;
mod event;

pub use command::WalletCommand;
pub use error::WalletError;
pub use event::{BalanceChange, HoldRejection, WalletEvent};

use cqrs_es::event_sink::EventSink;
use cqrs_es::Aggregate;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;
use uuid::Uuid;

use crate::money::{Currency, Money};

/// One currency's balance, in minor units. Both parts are never negative.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Balance {
    pub available: i64,
    pub held: i64,
}

impl Balance {
    pub fn total(&self) -> i64 {
        self.available + self.held
    }

    /// The balance after moving `to_available` and `to_held` (either may be negative), or
    /// why that is refused.
    fn moved(
        self,
        currency: Currency,
        to_available: i64,
        to_held: i64,
    ) -> Result<Balance, WalletError> {
        let overflow = WalletError::BalanceOverflow { currency };
        let available = self
            .available
            .checked_add(to_available)
            .ok_or(overflow.clone())?;
        let held = self.held.checked_add(to_held).ok_or(overflow.clone())?;
        available.checked_add(held).ok_or(overflow)?;
        if available < 0 || held < 0 {
            return Err(WalletError::BalanceWouldGoNegative { currency });
        }
        Ok(Balance { available, held })
    }
}

/// An amount of one currency recorded against an id or a reference.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Amount {
    pub currency: Currency,
    pub amount: i64,
}

impl Amount {
    fn of(money: Money) -> Self {
        Self {
            currency: money.currency(),
            amount: money.amount(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WithdrawalState {
    Pending,
    Completed,
    Failed,
}

impl fmt::Display for WithdrawalState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            WithdrawalState::Pending => "pending",
            WithdrawalState::Completed => "completed",
            WithdrawalState::Failed => "failed",
        })
    }
}

/// An escrow hold's lifecycle: `held` resolves exactly once, to `released` or `refunded`;
/// `rejected` holds never held anything.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HoldState {
    Held,
    Rejected,
    Released,
    Refunded,
}

impl fmt::Display for HoldState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            HoldState::Held => "held",
            HoldState::Rejected => "rejected",
            HoldState::Released => "released",
            HoldState::Refunded => "refunded",
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Withdrawal {
    pub money: Amount,
    pub state: WithdrawalState,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hold {
    pub money: Amount,
    pub state: HoldState,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Receipt {
    pub money: Amount,
    pub from: Uuid,
}

/// The wallet aggregate's state, folded from its events. `None` until its first event.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Wallet {
    pub state: Option<WalletState>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WalletState {
    pub owner: Uuid,
    pub balances: BTreeMap<Currency, Balance>,
    /// Deposits applied, by the provider's reference.
    pub deposits: BTreeMap<String, Amount>,
    pub withdrawals: BTreeMap<Uuid, Withdrawal>,
    /// Escrow holds taken (or rejected) from this wallet, by payment id.
    pub holds: BTreeMap<Uuid, Hold>,
    /// Payments received into this wallet, by payment id.
    pub received: BTreeMap<Uuid, Receipt>,
}

impl WalletState {
    fn new(owner: Uuid) -> Self {
        Self {
            owner,
            balances: BTreeMap::new(),
            deposits: BTreeMap::new(),
            withdrawals: BTreeMap::new(),
            holds: BTreeMap::new(),
            received: BTreeMap::new(),
        }
    }

    /// The balance of one currency; zero for a currency the wallet never saw.
    pub fn balance(&self, currency: Currency) -> Balance {
        self.balances.get(&currency).copied().unwrap_or_default()
    }

    fn set_withdrawal(&mut self, withdrawal_id: Uuid, state: WithdrawalState) {
        if let Some(withdrawal) = self.withdrawals.get_mut(&withdrawal_id) {
            withdrawal.state = state;
        }
    }

    fn set_hold(&mut self, payment_id: Uuid, state: HoldState) {
        if let Some(hold) = self.holds.get_mut(&payment_id) {
            hold.state = state;
        }
    }
}

impl Aggregate for Wallet {
    const TYPE: &'static str = "Wallet";
    type Command = WalletCommand;
    type Event = WalletEvent;
    type Error = WalletError;
    type Services = ();

    async fn handle(
        &mut self,
        command: WalletCommand,
        _services: &(),
        sink: &EventSink<Self>,
    ) -> Result<(), WalletError> {
        for event in self.decide(command)? {
            sink.write(event, self).await;
        }
        Ok(())
    }

    fn apply(&mut self, event: WalletEvent) {
        let change = event.balance_change();
        let state = self
            .state
            .get_or_insert_with(|| WalletState::new(change.owner));
        state.balances.insert(
            change.currency,
            Balance {
                available: change.available,
                held: change.held,
            },
        );
        let money = Amount {
            currency: change.currency,
            amount: change.amount,
        };
        match event {
            WalletEvent::DepositConfirmed { reference, .. } => {
                state.deposits.insert(reference, money);
            }
            WalletEvent::WalletCredited { .. } => {}
            WalletEvent::WithdrawalRequested { withdrawal_id, .. } => {
                let pending = Withdrawal {
                    money,
                    state: WithdrawalState::Pending,
                };
                state.withdrawals.insert(withdrawal_id, pending);
            }
            WalletEvent::WithdrawalCompleted { withdrawal_id, .. } => {
                state.set_withdrawal(withdrawal_id, WithdrawalState::Completed);
            }
            WalletEvent::WithdrawalFailed { withdrawal_id, .. } => {
                state.set_withdrawal(withdrawal_id, WithdrawalState::Failed);
            }
            WalletEvent::FundsHeld { payment_id, .. } => {
                let hold = Hold {
                    money,
                    state: HoldState::Held,
                };
                state.holds.insert(payment_id, hold);
            }
            WalletEvent::HoldRejected { payment_id, .. } => {
                let hold = Hold {
                    money,
                    state: HoldState::Rejected,
                };
                state.holds.insert(payment_id, hold);
            }
            WalletEvent::HoldReleased { payment_id, .. } => {
                state.set_hold(payment_id, HoldState::Released);
            }
            WalletEvent::HoldRefunded { payment_id, .. } => {
                state.set_hold(payment_id, HoldState::Refunded);
            }
            WalletEvent::PaymentReceived {
                payment_id, from, ..
            } => {
                state.received.insert(payment_id, Receipt { money, from });
            }
        }
    }
}

#[cfg(test)]
mod tests;
