//! A task: a unit of work on a named queue, claimed by one worker at a time under a lease.
//!
//! Lifecycle: queued → claimed → completed; a failed or expired attempt goes back to queued
//! while attempts remain and is dead-lettered after the last; queued or claimed tasks can be
//! cancelled by their creator or an admin. An attempt is counted when it is claimed.

mod command;
mod error;
mod event;

pub use command::{CreateTask, TaskCommand};
pub use error::TaskError;
pub use event::{FailureOutcome, TaskEvent};

use chrono::{DateTime, Duration, Utc};
use cqrs_es::event_sink::EventSink;
use cqrs_es::Aggregate;
use serde::{Deserialize, Serialize};
use std::fmt;
use uuid::Uuid;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TaskStatus {
    Queued,
    Claimed,
    Completed,
    DeadLettered,
    Cancelled,
}

impl TaskStatus {
    pub const ALL: [TaskStatus; 5] = [
        TaskStatus::Queued,
        TaskStatus::Claimed,
        TaskStatus::Completed,
        TaskStatus::DeadLettered,
        TaskStatus::Cancelled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            TaskStatus::Queued => "queued",
            TaskStatus::Claimed => "claimed",
            TaskStatus::Completed => "completed",
            TaskStatus::DeadLettered => "dead_lettered",
            TaskStatus::Cancelled => "cancelled",
        }
    }

    pub fn parse(s: &str) -> Option<TaskStatus> {
        TaskStatus::ALL.into_iter().find(|st| st.as_str() == s)
    }

    pub fn is_finished(self) -> bool {
        matches!(
            self,
            TaskStatus::Completed | TaskStatus::DeadLettered | TaskStatus::Cancelled
        )
    }
}

impl fmt::Display for TaskStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The lease a worker holds while a task is claimed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lease {
    pub worker: Uuid,
    pub lease_id: Uuid,
    pub seconds: u32,
    pub expires_at: DateTime<Utc>,
}

/// The task aggregate's state, folded from its events. `None` until it is created.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Task {
    pub state: Option<TaskState>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskState {
    pub queue: String,
    pub creator: Uuid,
    pub status: TaskStatus,
    pub max_attempts: u32,
    pub attempts: u32,
    pub lease: Option<Lease>,
}

impl Task {
    /// Decides which events a command produces, or why it is refused. Pure.
    pub fn decide(&self, command: TaskCommand) -> Result<Vec<TaskEvent>, TaskError> {
        let state = match (&self.state, command) {
            (None, TaskCommand::Create(create)) => return Ok(vec![created(create)]),
            (Some(_), TaskCommand::Create(_)) => return Err(TaskError::AlreadyExists),
            (None, _) => return Err(TaskError::NotFound),
            (Some(state), command) => (state, command),
        };
        match state {
            (
                state,
                TaskCommand::Claim {
                    worker,
                    lease_id,
                    lease_seconds,
                    at,
                },
            ) => {
                if state.status != TaskStatus::Queued {
                    return Err(TaskError::NotQueued(state.status));
                }
                Ok(vec![TaskEvent::TaskClaimed {
                    queue: state.queue.clone(),
                    worker: worker.user_id,
                    lease_id,
                    attempt: state.attempts + 1,
                    lease_seconds,
                    lease_expires_at: at + Duration::seconds(i64::from(lease_seconds)),
                    claimed_at: at,
                }])
            }
            (
                state,
                TaskCommand::Heartbeat {
                    actor,
                    progress,
                    note,
                    at,
                },
            ) => {
                let lease = state.held_by(&actor)?;
                Ok(vec![TaskEvent::TaskHeartbeatRecorded {
                    worker: actor.user_id,
                    progress,
                    note: note.map(|n| n.as_str().to_owned()),
                    lease_expires_at: at + Duration::seconds(i64::from(lease.seconds)),
                    at,
                }])
            }
            (state, TaskCommand::Complete { actor, result, at }) => {
                state.held_by(&actor)?;
                Ok(vec![TaskEvent::TaskCompleted {
                    queue: state.queue.clone(),
                    worker: actor.user_id,
                    result: result.map(|r| r.as_value().clone()),
                    completed_at: at,
                }])
            }
            (
                state,
                TaskCommand::Fail {
                    actor,
                    error,
                    retryable,
                    at,
                },
            ) => {
                state.held_by(&actor)?;
                Ok(vec![TaskEvent::TaskFailed {
                    queue: state.queue.clone(),
                    worker: actor.user_id,
                    error: error.as_str().to_owned(),
                    attempt: state.attempts,
                    outcome: state.outcome_of_failed_attempt(retryable),
                    failed_at: at,
                }])
            }
            (state, TaskCommand::ExpireLease { lease_id, at }) => {
                let lease = state
                    .lease
                    .as_ref()
                    .ok_or(TaskError::NotClaimed(state.status))?;
                if lease.lease_id != lease_id {
                    return Err(TaskError::LeaseMismatch);
                }
                if at < lease.expires_at {
                    return Err(TaskError::LeaseNotExpired);
                }
                Ok(vec![TaskEvent::TaskLeaseExpired {
                    queue: state.queue.clone(),
                    worker: lease.worker,
                    lease_id,
                    attempt: state.attempts,
                    outcome: state.outcome_of_failed_attempt(true),
                    expired_at: at,
                }])
            }
            (state, TaskCommand::Cancel { actor, at }) => {
                if state.creator != actor.user_id && !actor.is_admin() {
                    return Err(state.unknown_to(&actor).unwrap_or(TaskError::NotCreator));
                }
                if state.status.is_finished() {
                    return Err(TaskError::AlreadyFinished(state.status));
                }
                Ok(vec![TaskEvent::TaskCancelled {
                    queue: state.queue.clone(),
                    cancelled_by: actor.user_id,
                    previous_status: state.status,
                    cancelled_at: at,
                }])
            }
            (_, TaskCommand::Create(_)) => Err(TaskError::AlreadyExists),
        }
    }
}

impl TaskState {
    /// The current lease, if `actor` holds it. Only the creator learns why a task without a
    /// lease cannot be worked (its status); to anyone else it is simply not theirs.
    fn held_by(&self, actor: &crate::Actor) -> Result<&Lease, TaskError> {
        match &self.lease {
            Some(lease) if lease.worker == actor.user_id => Ok(lease),
            None if self.creator == actor.user_id => Err(TaskError::NotClaimed(self.status)),
            _ => Err(self.unknown_to(actor).unwrap_or(TaskError::NotHolder)),
        }
    }

    /// `NotFound` for an actor who may not know the task exists: anyone but its creator, the
    /// worker holding its lease and those who oversee (admins, auditors). A refusal must not
    /// tell a stranger's task from an id that was never used.
    fn unknown_to(&self, actor: &crate::Actor) -> Option<TaskError> {
        let holder = self.lease.as_ref().map(|lease| lease.worker);
        let known =
            self.creator == actor.user_id || holder == Some(actor.user_id) || actor.oversees();
        (!known).then_some(TaskError::NotFound)
    }

    fn outcome_of_failed_attempt(&self, retryable: bool) -> FailureOutcome {
        if retryable && self.attempts < self.max_attempts {
            FailureOutcome::Requeued
        } else {
            FailureOutcome::DeadLettered
        }
    }
}

fn created(create: CreateTask) -> TaskEvent {
    TaskEvent::TaskCreated {
        queue: create.queue.as_str().to_owned(),
        title: create.title.as_str().to_owned(),
        description: create.description.as_str().to_owned(),
        priority: create.priority.get(),
        payload: create.payload.map(|p| p.as_value().clone()),
        max_attempts: create.max_attempts,
        bounty_id: create.bounty_id,
        creator: create.actor.user_id,
        created_at: create.at,
    }
}

impl Aggregate for Task {
    const TYPE: &'static str = "Task";
    type Command = TaskCommand;
    type Event = TaskEvent;
    type Error = TaskError;
    type Services = ();

    async fn handle(
        &mut self,
        command: TaskCommand,
        _services: &(),
        sink: &EventSink<Self>,
    ) -> Result<(), TaskError> {
        for event in self.decide(command)? {
            sink.write(event, self).await;
        }
        Ok(())
    }

    fn apply(&mut self, event: TaskEvent) {
        if let TaskEvent::TaskCreated {
            queue,
            creator,
            max_attempts,
            ..
        } = &event
        {
            self.state = Some(TaskState {
                queue: queue.clone(),
                creator: *creator,
                status: TaskStatus::Queued,
                max_attempts: *max_attempts,
                attempts: 0,
                lease: None,
            });
            return;
        }
        let Some(state) = self.state.as_mut() else {
            return;
        };
        match &event {
            TaskEvent::TaskClaimed {
                worker,
                lease_id,
                attempt,
                lease_seconds,
                lease_expires_at,
                ..
            } => {
                state.attempts = *attempt;
                state.lease = Some(Lease {
                    worker: *worker,
                    lease_id: *lease_id,
                    seconds: *lease_seconds,
                    expires_at: *lease_expires_at,
                });
            }
            TaskEvent::TaskHeartbeatRecorded {
                lease_expires_at, ..
            } => {
                if let Some(lease) = state.lease.as_mut() {
                    lease.expires_at = *lease_expires_at;
                }
            }
            _ => state.lease = None,
        }
        if let Some(status) = event.status_after() {
            state.status = status;
        }
    }
}

#[cfg(test)]
mod tests;
