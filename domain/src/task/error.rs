//! Why a task command was refused.

use super::TaskStatus;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TaskError {
    #[error("the task already exists")]
    AlreadyExists,
    #[error("no such task")]
    NotFound,
    #[error("the task is {0}, not queued")]
    NotQueued(TaskStatus),
    #[error("the task is {0}, not claimed")]
    NotClaimed(TaskStatus),
    #[error("only the worker holding the task's lease may do this")]
    NotHolder,
    #[error("the lease named is not the task's current lease")]
    LeaseMismatch,
    #[error("the lease has not expired yet")]
    LeaseNotExpired,
    #[error("the task is already {0}")]
    AlreadyFinished(TaskStatus),
    #[error("only the task's creator or an admin may cancel it")]
    NotCreator,
}
