//! An inbox: one per user (its aggregate id is the owner's user id), recording which of the
//! user's notifications they have read.
//!
//! Notifications themselves are a read model built from other aggregates' events; only
//! reading one is the user's own act, so it is the one thing recorded here. Marking is
//! idempotent: an id already read is left out of the event, and a command naming only read
//! ids decides nothing.

mod command;
mod error;
mod event;

pub use command::InboxCommand;
pub use error::InboxError;
pub use event::InboxEvent;

use cqrs_es::event_sink::EventSink;
use cqrs_es::Aggregate;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use uuid::Uuid;

/// The most notification ids one command may name.
pub const MAX_IDS_PER_COMMAND: usize = 200;

/// The inbox aggregate's state, folded from its events. `None` until its first event.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Inbox {
    pub state: Option<InboxState>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InboxState {
    pub owner: Uuid,
    /// Every notification marked read so far.
    pub read: BTreeSet<Uuid>,
}

impl Inbox {
    /// Decides which events a command produces, or why it is refused. Pure.
    pub fn decide(&self, command: InboxCommand) -> Result<Vec<InboxEvent>, InboxError> {
        let named = command.owner();
        if let Some(state) = &self.state {
            if state.owner != named {
                return Err(InboxError::WrongInbox {
                    owner: state.owner,
                    named,
                });
            }
        }
        match command {
            InboxCommand::MarkRead {
                owner,
                notification_ids,
                actor,
                at,
            } => {
                if actor.user_id != owner {
                    return Err(InboxError::NotOwner);
                }
                if notification_ids.is_empty() {
                    return Err(InboxError::NoNotifications);
                }
                if notification_ids.len() > MAX_IDS_PER_COMMAND {
                    return Err(InboxError::TooManyNotifications {
                        given: notification_ids.len(),
                        max: MAX_IDS_PER_COMMAND,
                    });
                }
                let mut seen = BTreeSet::new();
                let unread: Vec<Uuid> = notification_ids
                    .into_iter()
                    .filter(|id| !self.has_read(id) && seen.insert(*id))
                    .collect();
                if unread.is_empty() {
                    return Ok(vec![]);
                }
                Ok(vec![InboxEvent::NotificationsRead {
                    owner,
                    notification_ids: unread,
                    at,
                }])
            }
        }
    }

    fn has_read(&self, id: &Uuid) -> bool {
        self.state.as_ref().is_some_and(|s| s.read.contains(id))
    }
}

impl Aggregate for Inbox {
    const TYPE: &'static str = "Inbox";
    type Command = InboxCommand;
    type Event = InboxEvent;
    type Error = InboxError;
    type Services = ();

    async fn handle(
        &mut self,
        command: InboxCommand,
        _services: &(),
        sink: &EventSink<Self>,
    ) -> Result<(), InboxError> {
        for event in self.decide(command)? {
            sink.write(event, self).await;
        }
        Ok(())
    }

    fn apply(&mut self, event: InboxEvent) {
        match event {
            InboxEvent::NotificationsRead {
                owner,
                notification_ids,
                ..
            } => {
                let state = self.state.get_or_insert_with(|| InboxState {
                    owner,
                    read: BTreeSet::new(),
                });
                state.read.extend(notification_ids);
            }
        }
    }
}

#[cfg(test)]
mod tests;
