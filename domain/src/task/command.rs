//! What can be asked of a task. Values arrive validated; time and ids come from the caller.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::values::{Description, JsonDoc, Note, Priority, QueueName, Title};
use crate::Actor;

#[derive(Debug, Clone, PartialEq)]
pub enum TaskCommand {
    Create(CreateTask),
    Claim {
        worker: Actor,
        /// Identifies this lease; the lease-expiry scheduler names it so that a stale expiry
        /// can never end a newer lease.
        lease_id: Uuid,
        lease_seconds: u32,
        at: DateTime<Utc>,
    },
    Heartbeat {
        actor: Actor,
        progress: Option<u8>,
        note: Option<Note>,
        at: DateTime<Utc>,
    },
    Complete {
        actor: Actor,
        result: Option<JsonDoc>,
        at: DateTime<Utc>,
    },
    Fail {
        actor: Actor,
        error: Note,
        retryable: bool,
        at: DateTime<Utc>,
    },
    ExpireLease {
        lease_id: Uuid,
        at: DateTime<Utc>,
    },
    Cancel {
        actor: Actor,
        at: DateTime<Utc>,
    },
}

impl TaskCommand {
    /// A stable name for logs and metrics.
    pub fn name(&self) -> &'static str {
        match self {
            TaskCommand::Create(_) => "CreateTask",
            TaskCommand::Claim { .. } => "ClaimTask",
            TaskCommand::Heartbeat { .. } => "HeartbeatTask",
            TaskCommand::Complete { .. } => "CompleteTask",
            TaskCommand::Fail { .. } => "FailTask",
            TaskCommand::ExpireLease { .. } => "ExpireTaskLease",
            TaskCommand::Cancel { .. } => "CancelTask",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct CreateTask {
    pub task_id: Uuid,
    pub queue: QueueName,
    pub title: Title,
    pub description: Description,
    pub priority: Priority,
    pub payload: Option<JsonDoc>,
    pub max_attempts: u32,
    pub bounty_id: Option<Uuid>,
    pub actor: Actor,
    pub at: DateTime<Utc>,
}
