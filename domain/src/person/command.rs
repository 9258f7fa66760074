//! What can be asked of a person. Time and ids come from the caller.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::Actor;

#[derive(Debug, Clone, PartialEq)]
pub enum PersonCommand {
    /// Forget the person: their data key is destroyed and their account scrubbed by the
    /// process that appends the event (and, after a crash, by the workers). Asked by the
    /// person themself or by an admin.
    Erase {
        person: Uuid,
        actor: Actor,
        at: DateTime<Utc>,
    },
}

impl PersonCommand {
    /// A stable name for logs and metrics.
    pub fn name(&self) -> &'static str {
        match self {
            PersonCommand::Erase { .. } => "ErasePerson",
        }
    }

    /// The person every command names (the aggregate's id).
    pub fn person(&self) -> Uuid {
        match self {
            PersonCommand::Erase { person, .. } => *person,
        }
    }
}
