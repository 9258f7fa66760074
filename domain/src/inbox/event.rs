//! What happened to an inbox. Read flags are events so that a rebuilt notification feed keeps
//! them: the feed itself is a projection and owns nothing it could not rebuild.

use chrono::{DateTime, Utc};
use cqrs_es::DomainEvent;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum InboxEvent {
    /// Only the ids that were unread until now, in the order they were named.
    NotificationsRead {
        owner: Uuid,
        notification_ids: Vec<Uuid>,
        at: DateTime<Utc>,
    },
}

impl DomainEvent for InboxEvent {
    fn event_type(&self) -> String {
        let name = match self {
            InboxEvent::NotificationsRead { .. } => "NotificationsRead",
        };
        name.to_owned()
    }

    /// Version 1 of every inbox event's stored form; bump it (and add an upcaster) when a
    /// stored shape changes.
    fn event_version(&self) -> String {
        "1".to_owned()
    }
}
