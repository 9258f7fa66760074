//! What happened to a payment. Every event carries the payer, the bounty, the amount and
//! currency (and the payee once known), so payment read models need no lookups.

use chrono::{DateTime, Utc};
use cqrs_es::DomainEvent;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::PaymentStatus;
use crate::money::Currency;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum PaymentEvent {
    PaymentRequested {
        payer: Uuid,
        bounty_id: Uuid,
        currency: Currency,
        amount: i64,
        at: DateTime<Utc>,
    },
    PaymentHeld {
        payer: Uuid,
        bounty_id: Uuid,
        currency: Currency,
        amount: i64,
        at: DateTime<Utc>,
    },
    PaymentHoldFailed {
        payer: Uuid,
        bounty_id: Uuid,
        currency: Currency,
        amount: i64,
        reason: String,
        at: DateTime<Utc>,
    },
    ReleaseRequested {
        payer: Uuid,
        payee: Uuid,
        bounty_id: Uuid,
        currency: Currency,
        amount: i64,
        at: DateTime<Utc>,
    },
    RefundRequested {
        payer: Uuid,
        bounty_id: Uuid,
        currency: Currency,
        amount: i64,
        reason: String,
        at: DateTime<Utc>,
    },
    PaymentReleased {
        payer: Uuid,
        payee: Uuid,
        bounty_id: Uuid,
        currency: Currency,
        amount: i64,
        at: DateTime<Utc>,
    },
    PaymentRefunded {
        payer: Uuid,
        bounty_id: Uuid,
        currency: Currency,
        amount: i64,
        at: DateTime<Utc>,
    },
}

impl PaymentEvent {
    /// The status the payment is in after this event.
    pub fn status_after(&self) -> PaymentStatus {
        match self {
            PaymentEvent::PaymentRequested { .. } => PaymentStatus::Requested,
            PaymentEvent::PaymentHeld { .. } => PaymentStatus::Held,
            PaymentEvent::PaymentHoldFailed { .. } => PaymentStatus::HoldFailed,
            PaymentEvent::ReleaseRequested { .. } => PaymentStatus::Releasing,
            PaymentEvent::RefundRequested { .. } => PaymentStatus::Refunding,
            PaymentEvent::PaymentReleased { .. } => PaymentStatus::Released,
            PaymentEvent::PaymentRefunded { .. } => PaymentStatus::Refunded,
        }
    }
}

impl DomainEvent for PaymentEvent {
    fn event_type(&self) -> String {
        let name = match self {
            PaymentEvent::PaymentRequested { .. } => "PaymentRequested",
            PaymentEvent::PaymentHeld { .. } => "PaymentHeld",
            PaymentEvent::PaymentHoldFailed { .. } => "PaymentHoldFailed",
            PaymentEvent::ReleaseRequested { .. } => "ReleaseRequested",
            PaymentEvent::RefundRequested { .. } => "RefundRequested",
            PaymentEvent::PaymentReleased { .. } => "PaymentReleased",
            PaymentEvent::PaymentRefunded { .. } => "PaymentRefunded",
        };
        name.to_owned()
    }

    /// The version of this event type's stored form: 1 plus the upcasting steps registered
    /// for it ([`crate::upcast`], which says how to change an event).
    fn event_version(&self) -> String {
        crate::upcast::current_version(&self.event_type()).to_string()
    }
}
