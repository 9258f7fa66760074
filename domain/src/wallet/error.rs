//! Why a wallet command was refused.

use uuid::Uuid;

use super::{HistoryError, HoldState, WithdrawalState};
use crate::money::Currency;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WalletError {
    #[error("the command is addressed to another user's wallet")]
    WrongWallet { owner: Uuid, named: Uuid },
    #[error("only an admin may credit a wallet")]
    NotAllowed,
    #[error("only the wallet's owner may withdraw from it")]
    NotOwner,
    #[error("deposit reference {reference} was already used for a different amount")]
    ReferenceReused { reference: String },
    #[error("insufficient funds: {available} {currency} available, {requested} requested")]
    InsufficientFunds {
        currency: Currency,
        available: i64,
        requested: i64,
    },
    #[error("withdrawal {withdrawal_id} was already requested for a different amount")]
    WithdrawalIdReused { withdrawal_id: Uuid },
    #[error("credit {credit_id} was already made for a different amount")]
    CreditIdReused { credit_id: Uuid },
    #[error("no withdrawal {withdrawal_id} in this wallet")]
    UnknownWithdrawal { withdrawal_id: Uuid },
    #[error("withdrawal {withdrawal_id} is already {state}")]
    WithdrawalAlreadySettled {
        withdrawal_id: Uuid,
        state: WithdrawalState,
    },
    #[error("payment {payment_id} was already used here for a different amount or payer")]
    PaymentIdReused { payment_id: Uuid },
    #[error("no hold for payment {payment_id} in this wallet")]
    UnknownHold { payment_id: Uuid },
    #[error("the hold for payment {payment_id} was rejected, so there is nothing to resolve")]
    HoldWasRejected { payment_id: Uuid },
    #[error("the hold for payment {payment_id} is already {state}")]
    HoldAlreadyResolved { payment_id: Uuid, state: HoldState },
    /// A guard, not a business outcome: the wallet's own records disagree with its balance.
    #[error("refused: the {currency} balance would go below zero")]
    BalanceWouldGoNegative { currency: Currency },
    #[error("refused: the {currency} balance would exceed the largest amount a wallet can hold")]
    BalanceOverflow { currency: Currency },
    /// Not a refusal: the wallet's history could not be read, so nothing was decided. The
    /// command bus answers it as a fault.
    #[error("the wallet's history could not be read")]
    HistoryUnavailable(#[source] HistoryError),
}
