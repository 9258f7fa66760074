//! What can be asked of an inbox. Time and ids come from the caller.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::Actor;

#[derive(Debug, Clone, PartialEq)]
pub enum InboxCommand {
    /// The owner has read these notifications (1 to [`super::MAX_IDS_PER_COMMAND`] ids).
    /// Which notifications exist and whose they are is the read side's knowledge: the HTTP
    /// edge checks that each id is one of the owner's before it asks.
    MarkRead {
        owner: Uuid,
        notification_ids: Vec<Uuid>,
        actor: Actor,
        at: DateTime<Utc>,
    },
}

impl InboxCommand {
    /// A stable name for logs and metrics.
    pub fn name(&self) -> &'static str {
        match self {
            InboxCommand::MarkRead { .. } => "MarkNotificationsRead",
        }
    }

    /// The inbox's owner, whom every command names.
    pub fn owner(&self) -> Uuid {
        match self {
            InboxCommand::MarkRead { owner, .. } => *owner,
        }
    }
}
