//! Why a person command was refused.

use uuid::Uuid;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PersonError {
    #[error("the command is addressed to another person")]
    WrongPerson { person: Uuid, named: Uuid },
    #[error("only the person themself or an admin may erase a person")]
    NotAllowed,
}
