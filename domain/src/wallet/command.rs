//! What can be asked of a wallet. Values arrive validated; time and ids come from the caller.
//!
//! A wallet's aggregate id is its owner's user id. Every command that can be a wallet's first
//! carries that `owner`, so the first event can record whose wallet it is; the wallet refuses
//! a command that names another owner ([`super::WalletError::WrongWallet`]).

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::money::Money;
use crate::values::{ProviderReference, Reason};
use crate::Actor;

#[derive(Debug, Clone, PartialEq)]
pub enum WalletCommand {
    /// The payment provider's signed webhook confirmed a deposit. Idempotent on `reference`.
    Deposit {
        owner: Uuid,
        reference: ProviderReference,
        money: Money,
        at: DateTime<Utc>,
    },
    /// An admin credits the wallet. Idempotent on `credit_id`.
    Credit {
        owner: Uuid,
        credit_id: Uuid,
        money: Money,
        reason: Reason,
        actor: Actor,
        at: DateTime<Utc>,
    },
    /// The owner asks to withdraw: the amount is reserved at once. Idempotent on
    /// `withdrawal_id`.
    RequestWithdrawal {
        owner: Uuid,
        withdrawal_id: Uuid,
        money: Money,
        actor: Actor,
        at: DateTime<Utc>,
    },
    /// The provider's webhook: the withdrawal was paid out; the money leaves the system.
    CompleteWithdrawal {
        withdrawal_id: Uuid,
        reference: ProviderReference,
        at: DateTime<Utc>,
    },
    /// The provider's webhook: the withdrawal failed; the reserve returns to the balance.
    FailWithdrawal {
        withdrawal_id: Uuid,
        reference: ProviderReference,
        at: DateTime<Utc>,
    },
    /// Escrow, phase one (a process manager): reserve `money` for a payment. Insufficient
    /// funds are recorded as a `HoldRejected` event, not refused. Idempotent on `payment_id`.
    HoldFunds {
        owner: Uuid,
        payment_id: Uuid,
        money: Money,
        at: DateTime<Utc>,
    },
    /// Escrow, phase two: the held amount leaves this wallet for the payee.
    ReleaseHold { payment_id: Uuid, at: DateTime<Utc> },
    /// Escrow, phase two: the held amount returns to this wallet's available balance.
    RefundHold { payment_id: Uuid, at: DateTime<Utc> },
    /// The payee's side of a release. Idempotent on `payment_id`.
    ReceivePayment {
        owner: Uuid,
        payment_id: Uuid,
        money: Money,
        from: Uuid,
        at: DateTime<Utc>,
    },
}

impl WalletCommand {
    /// A stable name for logs and metrics.
    pub fn name(&self) -> &'static str {
        match self {
            WalletCommand::Deposit { .. } => "ConfirmDeposit",
            WalletCommand::Credit { .. } => "CreditWallet",
            WalletCommand::RequestWithdrawal { .. } => "RequestWithdrawal",
            WalletCommand::CompleteWithdrawal { .. } => "CompleteWithdrawal",
            WalletCommand::FailWithdrawal { .. } => "FailWithdrawal",
            WalletCommand::HoldFunds { .. } => "HoldFunds",
            WalletCommand::ReleaseHold { .. } => "ReleaseHold",
            WalletCommand::RefundHold { .. } => "RefundHold",
            WalletCommand::ReceivePayment { .. } => "ReceivePayment",
        }
    }

    /// The wallet's owner, for the commands that may open a wallet.
    pub fn owner(&self) -> Option<Uuid> {
        match self {
            WalletCommand::Deposit { owner, .. }
            | WalletCommand::Credit { owner, .. }
            | WalletCommand::RequestWithdrawal { owner, .. }
            | WalletCommand::HoldFunds { owner, .. }
            | WalletCommand::ReceivePayment { owner, .. } => Some(*owner),
            WalletCommand::CompleteWithdrawal { .. }
            | WalletCommand::FailWithdrawal { .. }
            | WalletCommand::ReleaseHold { .. }
            | WalletCommand::RefundHold { .. } => None,
        }
    }
}
