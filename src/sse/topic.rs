//! Which events each SSE topic carries and what a message says about them.

use bountyline_domain::task::TaskEvent;
use bountyline_domain::Actor;
use bountyline_projections::StoredEvent;
use serde_json::json;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Topic {
    /// Every task change, as a signal to re-read: ids, queue and status, no content.
    Tasks,
    /// Queue depth changes: which queue, which task, its new status.
    Queues,
}

/// One SSE message: `id:` is the event's position.
#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    pub position: i64,
    pub event: String,
    pub data: serde_json::Value,
}

impl Topic {
    pub fn parse(name: &str) -> Option<Topic> {
        match name {
            "tasks" => Some(Topic::Tasks),
            "queues" => Some(Topic::Queues),
            _ => None,
        }
    }

    /// The aggregate types whose events the topic draws on (for catching up from the store).
    pub fn aggregate_types(self) -> &'static [&'static str] {
        match self {
            Topic::Tasks | Topic::Queues => &["Task"],
        }
    }

    /// Whether `actor` may subscribe at all.
    pub fn allows(self, _actor: &Actor) -> bool {
        match self {
            Topic::Tasks | Topic::Queues => true,
        }
    }

    /// The message `event` makes on this topic, if any.
    pub fn message(self, event: &StoredEvent) -> Option<Message> {
        if !self
            .aggregate_types()
            .contains(&event.aggregate_type.as_str())
        {
            return None;
        }
        let task: TaskEvent = event.decode().ok()?;
        let status = task.status_after();
        let data = match self {
            Topic::Tasks => json!({
                "task_id": event.aggregate_id,
                "version": event.sequence,
                "queue": queue_of(&task, event),
                "status": status.map(|s| s.as_str()),
            }),
            Topic::Queues => json!({
                "queue": queue_of(&task, event)?,
                "task_id": event.aggregate_id,
                "status": status?.as_str(),
            }),
        };
        Some(Message {
            position: event.position,
            event: event.event_type.clone(),
            data,
        })
    }
}

fn queue_of<'a>(task: &'a TaskEvent, event: &'a StoredEvent) -> Option<&'a str> {
    match task {
        TaskEvent::TaskCreated { queue, .. }
        | TaskEvent::TaskClaimed { queue, .. }
        | TaskEvent::TaskCompleted { queue, .. }
        | TaskEvent::TaskFailed { queue, .. }
        | TaskEvent::TaskLeaseExpired { queue, .. }
        | TaskEvent::TaskCancelled { queue, .. } => Some(queue),
        TaskEvent::TaskHeartbeatRecorded { .. } => {
            event.body().get("queue").and_then(|q| q.as_str())
        }
    }
}
