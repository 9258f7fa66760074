//! What happened to a task. Events carry what the read side needs (queue, attempt, the
//! outcome of a failure), so projections never have to reconstruct state.

use chrono::{DateTime, Utc};
use cqrs_es::DomainEvent;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::TaskStatus;

/// Where a failed or expired attempt left the task.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureOutcome {
    Requeued,
    DeadLettered,
}

impl FailureOutcome {
    pub fn status(self) -> TaskStatus {
        match self {
            FailureOutcome::Requeued => TaskStatus::Queued,
            FailureOutcome::DeadLettered => TaskStatus::DeadLettered,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum TaskEvent {
    TaskCreated {
        queue: String,
        title: String,
        description: String,
        priority: u8,
        payload: Option<serde_json::Value>,
        max_attempts: u32,
        bounty_id: Option<Uuid>,
        creator: Uuid,
        created_at: DateTime<Utc>,
    },
    TaskClaimed {
        queue: String,
        worker: Uuid,
        lease_id: Uuid,
        attempt: u32,
        lease_seconds: u32,
        lease_expires_at: DateTime<Utc>,
        claimed_at: DateTime<Utc>,
    },
    TaskHeartbeatRecorded {
        worker: Uuid,
        progress: Option<u8>,
        note: Option<String>,
        lease_expires_at: DateTime<Utc>,
        at: DateTime<Utc>,
    },
    TaskCompleted {
        queue: String,
        worker: Uuid,
        result: Option<serde_json::Value>,
        completed_at: DateTime<Utc>,
    },
    TaskFailed {
        queue: String,
        worker: Uuid,
        error: String,
        attempt: u32,
        outcome: FailureOutcome,
        failed_at: DateTime<Utc>,
    },
    TaskLeaseExpired {
        queue: String,
        worker: Uuid,
        lease_id: Uuid,
        attempt: u32,
        outcome: FailureOutcome,
        expired_at: DateTime<Utc>,
    },
    TaskCancelled {
        queue: String,
        cancelled_by: Uuid,
        previous_status: TaskStatus,
        cancelled_at: DateTime<Utc>,
    },
}

impl TaskEvent {
    /// The status the task is in after this event, if the event changes it.
    pub fn status_after(&self) -> Option<TaskStatus> {
        match self {
            TaskEvent::TaskCreated { .. } => Some(TaskStatus::Queued),
            TaskEvent::TaskClaimed { .. } => Some(TaskStatus::Claimed),
            TaskEvent::TaskHeartbeatRecorded { .. } => None,
            TaskEvent::TaskCompleted { .. } => Some(TaskStatus::Completed),
            TaskEvent::TaskFailed { outcome, .. } | TaskEvent::TaskLeaseExpired { outcome, .. } => {
                Some(outcome.status())
            }
            TaskEvent::TaskCancelled { .. } => Some(TaskStatus::Cancelled),
        }
    }
}

impl DomainEvent for TaskEvent {
    fn event_type(&self) -> String {
        let name = match self {
            TaskEvent::TaskCreated { .. } => "TaskCreated",
            TaskEvent::TaskClaimed { .. } => "TaskClaimed",
            TaskEvent::TaskHeartbeatRecorded { .. } => "TaskHeartbeatRecorded",
            TaskEvent::TaskCompleted { .. } => "TaskCompleted",
            TaskEvent::TaskFailed { .. } => "TaskFailed",
            TaskEvent::TaskLeaseExpired { .. } => "TaskLeaseExpired",
            TaskEvent::TaskCancelled { .. } => "TaskCancelled",
        };
        name.to_owned()
    }

    /// The version of this event type's stored form: 1 plus the upcasting steps registered
    /// for it ([`crate::upcast`], which says how to change an event).
    fn event_version(&self) -> String {
        crate::upcast::current_version(&self.event_type()).to_string()
    }
}
