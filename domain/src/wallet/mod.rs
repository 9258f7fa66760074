//! A wallet: one per user (its aggregate id is the owner's user id), holding per currency an
//! available balance and a held one (reserved for a pending withdrawal or an escrow hold).
//!
//! Money enters through confirmed deposits, admin credits and received payments, and leaves
//! through completed withdrawals and released holds. Every webhook- or saga-driven command
//! is idempotent on its id or reference, so a message that arrives twice moves no money
//! twice; an id reused for a different amount is refused. No balance ever goes below zero:
//! `decide` refuses any command that would make one negative, and every event carries the
//! balance after it.
//!
//! The aggregate's state is its balances; what a command's id or reference names in the
//! wallet's history (a deposit, a withdrawal, a hold, a received payment) is read when a
//! command needs it ([`entries`]).

mod command;
mod decide;
mod entries;
mod error;
mod event;
pub(crate) mod upcast;

pub use command::WalletCommand;
pub use entries::{Entry, EntryKey, HistoryError, WalletHistory, WalletServices};
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

/// A wallet's owner and balances: all it keeps, whatever its history (see [`entries`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WalletState {
    pub owner: Uuid,
    pub balances: BTreeMap<Currency, Balance>,
}

impl WalletState {
    fn new(owner: Uuid) -> Self {
        Self {
            owner,
            balances: BTreeMap::new(),
        }
    }

    /// The balance of one currency; zero for a currency the wallet never saw.
    pub fn balance(&self, currency: Currency) -> Balance {
        self.balances.get(&currency).copied().unwrap_or_default()
    }
}

impl Aggregate for Wallet {
    const TYPE: &'static str = "Wallet";
    type Command = WalletCommand;
    type Event = WalletEvent;
    type Error = WalletError;
    type Services = WalletServices;

    /// Reads the entry the command names (a wallet without events has none), then decides.
    async fn handle(
        &mut self,
        command: WalletCommand,
        history: &WalletServices,
        sink: &EventSink<Self>,
    ) -> Result<(), WalletError> {
        let entry = match (&self.state, command.entry_key()) {
            (Some(state), Some(key)) => {
                let events = history
                    .events_under(state.owner, &key)
                    .await
                    .map_err(WalletError::HistoryUnavailable)?;
                Entry::under(&key, &events)
            }
            _ => Entry::default(),
        };
        for event in self.decide(command, &entry)? {
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
    }
}

#[cfg(test)]
mod tests;
