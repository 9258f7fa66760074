//! What happened to a bounty. Events carry what the board, the notification feed and the
//! process managers need (poster, hunter, payment id, reward) so none of them has to look
//! anything up.

use chrono::{DateTime, Utc};
use cqrs_es::DomainEvent;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{BountyStatus, DisputeOutcome};
use crate::money::Money;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum BountyEvent {
    /// Status `funding`: the escrow hold is asked for next.
    BountyPosted {
        poster: Uuid,
        payment_id: Uuid,
        title: String,
        description: String,
        reward: Money,
        deadline: Option<DateTime<Utc>>,
        tags: Vec<String>,
        at: DateTime<Utc>,
    },
    BountyOpened {
        poster: Uuid,
        payment_id: Uuid,
        reward: Money,
        at: DateTime<Utc>,
    },
    BountyUnfunded {
        poster: Uuid,
        payment_id: Uuid,
        reward: Money,
        reason: String,
        at: DateTime<Utc>,
    },
    /// The escrow hold succeeded after the bounty was cancelled while `funding`: the reward
    /// is held for nothing and must be refunded. The status stays `cancelled`.
    BountyFundedAfterCancel {
        poster: Uuid,
        payment_id: Uuid,
        reward: Money,
        at: DateTime<Utc>,
    },
    ApplicationSubmitted {
        application_id: Uuid,
        hunter: Uuid,
        poster: Uuid,
        pitch: String,
        at: DateTime<Utc>,
    },
    ApplicationWithdrawn {
        application_id: Uuid,
        hunter: Uuid,
        poster: Uuid,
        at: DateTime<Utc>,
    },
    ApplicationAccepted {
        application_id: Uuid,
        hunter: Uuid,
        poster: Uuid,
        at: DateTime<Utc>,
    },
    WorkSubmitted {
        hunter: Uuid,
        poster: Uuid,
        text: Option<String>,
        link: Option<String>,
        /// 1 for the first submission, counting up after each rejection.
        revision: u32,
        at: DateTime<Utc>,
    },
    /// Status `approved`: the reward is to be released to the hunter.
    WorkApproved {
        hunter: Uuid,
        poster: Uuid,
        payment_id: Uuid,
        reward: Money,
        at: DateTime<Utc>,
    },
    WorkRejected {
        hunter: Uuid,
        poster: Uuid,
        reason: String,
        at: DateTime<Utc>,
    },
    /// `refund` is true when the reward is held in escrow now and must go back to the poster.
    BountyCancelled {
        poster: Uuid,
        cancelled_by: Uuid,
        hunter: Option<Uuid>,
        payment_id: Uuid,
        reward: Money,
        previous_status: BountyStatus,
        refund: bool,
        at: DateTime<Utc>,
    },
    BountyDisputed {
        raised_by: Uuid,
        poster: Uuid,
        hunter: Uuid,
        reason: String,
        previous_status: BountyStatus,
        at: DateTime<Utc>,
    },
    /// `PayHunter` leads to status `approved` (a release), `RefundPoster` to `cancelled`
    /// (a refund).
    DisputeResolved {
        outcome: DisputeOutcome,
        resolved_by: Uuid,
        poster: Uuid,
        hunter: Uuid,
        payment_id: Uuid,
        reward: Money,
        at: DateTime<Utc>,
    },
    /// Always refunds: an open bounty's reward is held.
    BountyExpired {
        poster: Uuid,
        payment_id: Uuid,
        reward: Money,
        at: DateTime<Utc>,
    },
    BountyPaid {
        hunter: Uuid,
        poster: Uuid,
        payment_id: Uuid,
        reward: Money,
        at: DateTime<Utc>,
    },
    BountyRefunded {
        poster: Uuid,
        payment_id: Uuid,
        reward: Money,
        at: DateTime<Utc>,
    },
}

impl BountyEvent {
    /// The status the bounty is in after this event, if the event changes it.
    pub fn status_after(&self) -> Option<BountyStatus> {
        match self {
            BountyEvent::BountyPosted { .. } => Some(BountyStatus::Funding),
            BountyEvent::BountyOpened { .. } => Some(BountyStatus::Open),
            BountyEvent::BountyUnfunded { .. } => Some(BountyStatus::Unfunded),
            BountyEvent::ApplicationAccepted { .. } | BountyEvent::WorkRejected { .. } => {
                Some(BountyStatus::Assigned)
            }
            BountyEvent::WorkSubmitted { .. } => Some(BountyStatus::Submitted),
            BountyEvent::WorkApproved { .. } => Some(BountyStatus::Approved),
            BountyEvent::BountyCancelled { .. } => Some(BountyStatus::Cancelled),
            BountyEvent::BountyDisputed { .. } => Some(BountyStatus::Disputed),
            BountyEvent::DisputeResolved { outcome, .. } => Some(match outcome {
                DisputeOutcome::PayHunter => BountyStatus::Approved,
                DisputeOutcome::RefundPoster => BountyStatus::Cancelled,
            }),
            BountyEvent::BountyExpired { .. } => Some(BountyStatus::Expired),
            BountyEvent::BountyPaid { .. } => Some(BountyStatus::Completed),
            BountyEvent::BountyFundedAfterCancel { .. }
            | BountyEvent::ApplicationSubmitted { .. }
            | BountyEvent::ApplicationWithdrawn { .. }
            | BountyEvent::BountyRefunded { .. } => None,
        }
    }

    /// Whether a process manager must now refund the escrow to the poster. Exactly one event
    /// in a bounty's history says so, and only when the reward is held.
    pub fn requires_refund(&self) -> bool {
        match self {
            BountyEvent::BountyCancelled { refund, .. } => *refund,
            BountyEvent::DisputeResolved { outcome, .. } => {
                *outcome == DisputeOutcome::RefundPoster
            }
            BountyEvent::BountyExpired { .. } | BountyEvent::BountyFundedAfterCancel { .. } => true,
            _ => false,
        }
    }

    /// Whether a process manager must now release the escrow to the hunter.
    pub fn requires_payout(&self) -> bool {
        match self {
            BountyEvent::WorkApproved { .. } => true,
            BountyEvent::DisputeResolved { outcome, .. } => *outcome == DisputeOutcome::PayHunter,
            _ => false,
        }
    }
}

impl DomainEvent for BountyEvent {
    fn event_type(&self) -> String {
        let name = match self {
            BountyEvent::BountyPosted { .. } => "BountyPosted",
            BountyEvent::BountyOpened { .. } => "BountyOpened",
            BountyEvent::BountyUnfunded { .. } => "BountyUnfunded",
            BountyEvent::BountyFundedAfterCancel { .. } => "BountyFundedAfterCancel",
            BountyEvent::ApplicationSubmitted { .. } => "ApplicationSubmitted",
            BountyEvent::ApplicationWithdrawn { .. } => "ApplicationWithdrawn",
            BountyEvent::ApplicationAccepted { .. } => "ApplicationAccepted",
            BountyEvent::WorkSubmitted { .. } => "WorkSubmitted",
            BountyEvent::WorkApproved { .. } => "WorkApproved",
            BountyEvent::WorkRejected { .. } => "WorkRejected",
            BountyEvent::BountyCancelled { .. } => "BountyCancelled",
            BountyEvent::BountyDisputed { .. } => "BountyDisputed",
            BountyEvent::DisputeResolved { .. } => "DisputeResolved",
            BountyEvent::BountyExpired { .. } => "BountyExpired",
            BountyEvent::BountyPaid { .. } => "BountyPaid",
            BountyEvent::BountyRefunded { .. } => "BountyRefunded",
        };
        name.to_owned()
    }

    /// The version of this event type's stored form: 1 plus the upcasting steps registered
    /// for it ([`crate::upcast`], which says how to change an event).
    fn event_version(&self) -> String {
        crate::upcast::current_version(&self.event_type()).to_string()
    }
}
