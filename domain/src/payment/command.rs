//! What can be asked of a payment. Every command comes from a process manager reacting to
//! bounty and wallet events, with the payment id derived deterministically from the bounty,
//! so each is safe to deliver twice.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::money::Money;
use crate::values::Note;

#[derive(Debug, Clone, PartialEq)]
pub enum PaymentCommand {
    /// Open the escrow record; the payer's wallet is asked to hold `money` next.
    Request {
        /// The aggregate id this command is sent to.
        payment_id: Uuid,
        payer: Uuid,
        money: Money,
        bounty_id: Uuid,
        at: DateTime<Utc>,
    },
    /// The payer's wallet recorded `FundsHeld`.
    MarkHeld { at: DateTime<Utc> },
    /// The payer's wallet recorded `HoldRejected`.
    MarkHoldFailed { reason: Note, at: DateTime<Utc> },
    /// Resolve the held escrow in the payee's favour. The first of `Release` and `Refund`
    /// wins; the other is refused.
    Release { payee: Uuid, at: DateTime<Utc> },
    /// Resolve the held escrow in the payer's favour.
    Refund { reason: Note, at: DateTime<Utc> },
    /// The payee received the money and the payer's hold was released.
    MarkReleased { at: DateTime<Utc> },
    /// The payer's hold was refunded.
    MarkRefunded { at: DateTime<Utc> },
}

impl PaymentCommand {
    /// A stable name for logs and metrics.
    pub fn name(&self) -> &'static str {
        match self {
            PaymentCommand::Request { .. } => "RequestPayment",
            PaymentCommand::MarkHeld { .. } => "MarkPaymentHeld",
            PaymentCommand::MarkHoldFailed { .. } => "MarkPaymentHoldFailed",
            PaymentCommand::Release { .. } => "ReleasePayment",
            PaymentCommand::Refund { .. } => "RefundPayment",
            PaymentCommand::MarkReleased { .. } => "MarkPaymentReleased",
            PaymentCommand::MarkRefunded { .. } => "MarkPaymentRefunded",
        }
    }
}
