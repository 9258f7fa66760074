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

    /// The version of this event type's stored form: 1 plus the upcasting steps registered
    /// for it ([`crate::upcast`], which says how to change an event).
    fn event_version(&self) -> String {
        crate::upcast::current_version(&self.event_type()).to_string()
    }
}
