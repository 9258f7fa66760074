//! What can be asked of a bounty. Values arrive validated; time and ids come from the caller.
//! Commands a person issues carry the acting [`Actor`]; `Mark*` and `Expire` come from
//! process managers and the scheduler, and are safe to deliver twice.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::{Deliverable, DisputeOutcome, Tags};
use crate::money::Money;
use crate::values::{Description, Note, Pitch, Reason, Title};
use crate::Actor;

#[derive(Debug, Clone, PartialEq)]
pub enum BountyCommand {
    Post(PostBounty),
    /// The poster's escrow hold succeeded.
    MarkFunded {
        at: DateTime<Utc>,
    },
    /// The poster's wallet could not cover the reward.
    MarkUnfunded {
        reason: Note,
        at: DateTime<Utc>,
    },
    Apply {
        application_id: Uuid,
        hunter: Actor,
        pitch: Pitch,
        at: DateTime<Utc>,
    },
    WithdrawApplication {
        application_id: Uuid,
        actor: Actor,
        at: DateTime<Utc>,
    },
    Accept {
        application_id: Uuid,
        actor: Actor,
        at: DateTime<Utc>,
    },
    Submit {
        deliverable: Deliverable,
        actor: Actor,
        at: DateTime<Utc>,
    },
    Approve {
        actor: Actor,
        at: DateTime<Utc>,
    },
    Reject {
        reason: Reason,
        actor: Actor,
        at: DateTime<Utc>,
    },
    Cancel {
        actor: Actor,
        at: DateTime<Utc>,
    },
    Dispute {
        reason: Reason,
        actor: Actor,
        at: DateTime<Utc>,
    },
    Resolve {
        outcome: DisputeOutcome,
        actor: Actor,
        at: DateTime<Utc>,
    },
    /// The scheduler: the deadline may have passed.
    Expire {
        at: DateTime<Utc>,
    },
    /// The hunter received the reward.
    MarkPaid {
        at: DateTime<Utc>,
    },
    /// The poster's escrow was refunded.
    MarkRefunded {
        at: DateTime<Utc>,
    },
}

impl BountyCommand {
    /// A stable name for logs and metrics.
    pub fn name(&self) -> &'static str {
        match self {
            BountyCommand::Post(_) => "PostBounty",
            BountyCommand::MarkFunded { .. } => "MarkBountyFunded",
            BountyCommand::MarkUnfunded { .. } => "MarkBountyUnfunded",
            BountyCommand::Apply { .. } => "ApplyForBounty",
            BountyCommand::WithdrawApplication { .. } => "WithdrawApplication",
            BountyCommand::Accept { .. } => "AcceptApplication",
            BountyCommand::Submit { .. } => "SubmitWork",
            BountyCommand::Approve { .. } => "ApproveWork",
            BountyCommand::Reject { .. } => "RejectWork",
            BountyCommand::Cancel { .. } => "CancelBounty",
            BountyCommand::Dispute { .. } => "DisputeBounty",
            BountyCommand::Resolve { .. } => "ResolveDispute",
            BountyCommand::Expire { .. } => "ExpireBounty",
            BountyCommand::MarkPaid { .. } => "MarkBountyPaid",
            BountyCommand::MarkRefunded { .. } => "MarkBountyRefunded",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct PostBounty {
    pub bounty_id: Uuid,
    /// The escrow payment's id, chosen by the caller (derive it from `bounty_id`) so that the
    /// process manager's hold is the same however often it runs.
    pub payment_id: Uuid,
    pub poster: Actor,
    pub title: Title,
    pub description: Description,
    pub reward: Money,
    pub deadline: Option<DateTime<Utc>>,
    pub tags: Tags,
    pub at: DateTime<Utc>,
}
