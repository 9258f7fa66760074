//! Why an inbox command was refused.

use uuid::Uuid;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InboxError {
    #[error("the command is addressed to another user's inbox")]
    WrongInbox { owner: Uuid, named: Uuid },
    #[error("only the inbox's owner may mark its notifications read")]
    NotOwner,
    #[error("name at least one notification")]
    NoNotifications,
    #[error("at most {max} notifications may be marked read at once, {given} were named")]
    TooManyNotifications { given: usize, max: usize },
}
