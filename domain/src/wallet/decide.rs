//! The wallet's rules: which events each command produces, or why it is refused. Pure.
//!
//! Webhook- and saga-driven commands are idempotent on their id or reference: the same
//! request again decides nothing, and the id reused for something else is refused. Every
//! debit is checked so that no balance goes below zero.

use uuid::Uuid;

use super::{
    Amount, Balance, Entry, HoldRejection, HoldState, Wallet, WalletCommand, WalletError,
    WalletEvent, WalletState, WithdrawalState,
};
use crate::money::Money;

impl Wallet {
    /// Decides which events a command produces, or why it is refused. Pure.
    /// `entry` is the state of the entry the command names ([`WalletCommand::entry_key`]).
    pub fn decide(
        &self,
        command: WalletCommand,
        entry: &Entry,
    ) -> Result<Vec<WalletEvent>, WalletError> {
        let opened;
        let state = match (&self.state, command.owner()) {
            (Some(state), Some(named)) if named != state.owner => {
                return Err(WalletError::WrongWallet {
                    owner: state.owner,
                    named,
                })
            }
            (Some(state), _) => state,
            (None, Some(owner)) => {
                opened = WalletState::new(owner);
                &opened
            }
            // Only settlements name no owner, and a wallet without history has nothing to
            // settle: the lookups below refuse them as unknown, so no event is ever decided
            // for this placeholder owner.
            (None, None) => {
                opened = WalletState::new(Uuid::nil());
                &opened
            }
        };
        state.decide(command, entry)
    }
}

impl WalletState {
    fn decide(
        &self,
        command: WalletCommand,
        entry: &Entry,
    ) -> Result<Vec<WalletEvent>, WalletError> {
        let owner = self.owner;
        match command {
            WalletCommand::Deposit {
                reference,
                money,
                at,
                ..
            } => {
                if let Some(earlier) = &entry.deposit {
                    return repeat_of(*earlier == Amount::of(money), || {
                        WalletError::ReferenceReused {
                            reference: reference.as_str().to_owned(),
                        }
                    });
                }
                let after = self.moved(money, money.amount(), 0)?;
                Ok(vec![WalletEvent::DepositConfirmed {
                    owner,
                    reference: reference.as_str().to_owned(),
                    currency: money.currency(),
                    amount: money.amount(),
                    available: after.available,
                    held: after.held,
                    at,
                }])
            }
            WalletCommand::Credit {
                credit_id,
                money,
                reason,
                actor,
                at,
                ..
            } => {
                if !actor.is_admin() {
                    return Err(WalletError::NotAllowed);
                }
                if let Some(earlier) = &entry.credit {
                    return repeat_of(*earlier == Amount::of(money), || {
                        WalletError::CreditIdReused { credit_id }
                    });
                }
                let after = self.moved(money, money.amount(), 0)?;
                Ok(vec![WalletEvent::WalletCredited {
                    owner,
                    credit_id: Some(credit_id),
                    currency: money.currency(),
                    amount: money.amount(),
                    reason: reason.as_str().to_owned(),
                    credited_by: actor.user_id,
                    available: after.available,
                    held: after.held,
                    at,
                }])
            }
            WalletCommand::RequestWithdrawal {
                withdrawal_id,
                money,
                actor,
                at,
                ..
            } => {
                if actor.user_id != owner {
                    return Err(WalletError::NotOwner);
                }
                if let Some(earlier) = &entry.withdrawal {
                    return repeat_of(earlier.money == Amount::of(money), || {
                        WalletError::WithdrawalIdReused { withdrawal_id }
                    });
                }
                self.covers(money)?;
                let after = self.moved(money, -money.amount(), money.amount())?;
                Ok(vec![WalletEvent::WithdrawalRequested {
                    owner,
                    withdrawal_id,
                    currency: money.currency(),
                    amount: money.amount(),
                    available: after.available,
                    held: after.held,
                    at,
                }])
            }
            WalletCommand::CompleteWithdrawal {
                withdrawal_id,
                reference,
                at,
            } => {
                let Some(pending) =
                    pending_withdrawal(entry, withdrawal_id, WithdrawalState::Completed)?
                else {
                    return Ok(vec![]);
                };
                let after = self.moved_amount(pending, 0, -pending.amount)?;
                Ok(vec![WalletEvent::WithdrawalCompleted {
                    owner,
                    withdrawal_id,
                    reference: reference.as_str().to_owned(),
                    currency: pending.currency,
                    amount: pending.amount,
                    available: after.available,
                    held: after.held,
                    at,
                }])
            }
            WalletCommand::FailWithdrawal {
                withdrawal_id,
                reference,
                at,
            } => {
                let Some(pending) =
                    pending_withdrawal(entry, withdrawal_id, WithdrawalState::Failed)?
                else {
                    return Ok(vec![]);
                };
                let after = self.moved_amount(pending, pending.amount, -pending.amount)?;
                Ok(vec![WalletEvent::WithdrawalFailed {
                    owner,
                    withdrawal_id,
                    reference: reference.as_str().to_owned(),
                    currency: pending.currency,
                    amount: pending.amount,
                    available: after.available,
                    held: after.held,
                    at,
                }])
            }
            WalletCommand::HoldFunds {
                payment_id,
                money,
                at,
                ..
            } => {
                if let Some(earlier) = &entry.hold {
                    return repeat_of(earlier.money == Amount::of(money), || {
                        WalletError::PaymentIdReused { payment_id }
                    });
                }
                let now = self.balance(money.currency());
                if now.available < money.amount() {
                    // Recorded, not refused: the process manager waiting on this hold must
                    // learn that it failed.
                    return Ok(vec![WalletEvent::HoldRejected {
                        owner,
                        payment_id,
                        currency: money.currency(),
                        amount: money.amount(),
                        reason: HoldRejection::InsufficientFunds,
                        available: now.available,
                        held: now.held,
                        at,
                    }]);
                }
                let after = self.moved(money, -money.amount(), money.amount())?;
                Ok(vec![WalletEvent::FundsHeld {
                    owner,
                    payment_id,
                    currency: money.currency(),
                    amount: money.amount(),
                    available: after.available,
                    held: after.held,
                    at,
                }])
            }
            WalletCommand::ReleaseHold { payment_id, at } => {
                let Some(held) = held_hold(entry, payment_id, HoldState::Released)? else {
                    return Ok(vec![]);
                };
                let after = self.moved_amount(held, 0, -held.amount)?;
                Ok(vec![WalletEvent::HoldReleased {
                    owner,
                    payment_id,
                    currency: held.currency,
                    amount: held.amount,
                    available: after.available,
                    held: after.held,
                    at,
                }])
            }
            WalletCommand::RefundHold { payment_id, at } => {
                let Some(held) = held_hold(entry, payment_id, HoldState::Refunded)? else {
                    return Ok(vec![]);
                };
                let after = self.moved_amount(held, held.amount, -held.amount)?;
                Ok(vec![WalletEvent::HoldRefunded {
                    owner,
                    payment_id,
                    currency: held.currency,
                    amount: held.amount,
                    available: after.available,
                    held: after.held,
                    at,
                }])
            }
            WalletCommand::ReceivePayment {
                payment_id,
                money,
                from,
                at,
                ..
            } => {
                if let Some(earlier) = &entry.receipt {
                    let same = earlier.money == Amount::of(money) && earlier.from == from;
                    return repeat_of(same, || WalletError::PaymentIdReused { payment_id });
                }
                let after = self.moved(money, money.amount(), 0)?;
                Ok(vec![WalletEvent::PaymentReceived {
                    owner,
                    payment_id,
                    from,
                    currency: money.currency(),
                    amount: money.amount(),
                    available: after.available,
                    held: after.held,
                    at,
                }])
            }
        }
    }

    /// Refuses with `InsufficientFunds` unless the available balance covers `money`.
    fn covers(&self, money: Money) -> Result<(), WalletError> {
        let available = self.balance(money.currency()).available;
        if available < money.amount() {
            return Err(WalletError::InsufficientFunds {
                currency: money.currency(),
                available,
                requested: money.amount(),
            });
        }
        Ok(())
    }

    fn moved(&self, money: Money, to_available: i64, to_held: i64) -> Result<Balance, WalletError> {
        self.moved_amount(Amount::of(money), to_available, to_held)
    }

    fn moved_amount(
        &self,
        amount: Amount,
        to_available: i64,
        to_held: i64,
    ) -> Result<Balance, WalletError> {
        self.balance(amount.currency)
            .moved(amount.currency, to_available, to_held)
    }
}

/// The pending withdrawal's amount; `None` when it already reached `target` (a repeat).
fn pending_withdrawal(
    entry: &Entry,
    withdrawal_id: Uuid,
    target: WithdrawalState,
) -> Result<Option<Amount>, WalletError> {
    let withdrawal = entry
        .withdrawal
        .ok_or(WalletError::UnknownWithdrawal { withdrawal_id })?;
    match withdrawal.state {
        WithdrawalState::Pending => Ok(Some(withdrawal.money)),
        state if state == target => Ok(None),
        state => Err(WalletError::WithdrawalAlreadySettled {
            withdrawal_id,
            state,
        }),
    }
}

/// The held amount; `None` when the hold was already resolved to `target` (a repeat).
fn held_hold(
    entry: &Entry,
    payment_id: Uuid,
    target: HoldState,
) -> Result<Option<Amount>, WalletError> {
    let hold = entry.hold.ok_or(WalletError::UnknownHold { payment_id })?;
    match hold.state {
        HoldState::Held => Ok(Some(hold.money)),
        HoldState::Rejected => Err(WalletError::HoldWasRejected { payment_id }),
        state if state == target => Ok(None),
        state => Err(WalletError::HoldAlreadyResolved { payment_id, state }),
    }
}

/// A command repeated with the same id: nothing more happens if it is the same request,
/// and it is refused if the id now names something different.
fn repeat_of(
    same: bool,
    conflict: impl FnOnce() -> WalletError,
) -> Result<Vec<WalletEvent>, WalletError> {
    if same {
        Ok(vec![])
    } else {
        Err(conflict())
    }
}
