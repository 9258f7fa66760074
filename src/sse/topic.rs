//! Which events each SSE topic carries and what a message says about them, for one viewer.
//!
//! Public topics (`tasks`, `queues`, `bounties`) say what changed, never private content: a
//! client re-reads what it needs through the API, which applies its own access rules. `me`
//! carries only events that name the viewer, and then the event's fields, all of which a
//! party to it may see. `events` carries every event whole, for auditors and admins. `stats`
//! is not made of events but of snapshots of the stats read model (see `super::stats`).
//!
//! Data shapes:
//! - `tasks`: `{task_id, version, queue, status}` (status null when unchanged);
//! - `queues`: `{queue, task_id, status}`;
//! - `bounties`: `{bounty_id, version, status, title?, reward?}` for every bounty event
//!   (status null when unchanged; title and reward when the event carries them); no
//!   pitches, deliverables, reasons or parties;
//! - `me`: bounty events where the viewer is the poster or the hunter (applicant):
//!   `{bounty_id, version, status, ...the event's fields}`; events of the viewer's wallet:
//!   `{version, ...the event's fields}`, which include the balance after it (`available`,
//!   `held`); the viewer's inbox: `{version, owner, notification_ids, at}`; tasks the viewer
//!   created: `{task_id, version, queue, status, title}` on `TaskCreated`. A task's later
//!   events do not name its creator, so dead letters reach the creator through the
//!   notification feed, not here;
//! - `events`: `{position, event_id, aggregate_type, aggregate_id, sequence, event_type,
//!   recorded_at, payload, metadata}`, the payload without its enum wrapper;
//! - `workers`: what workers do with tasks, `{worker, task_id, queue, activity, status,
//!   attempt?, progress?, lease_expires_at?}` with `activity` one of `claimed`, `heartbeat`,
//!   `completed`, `failed`, `lease-expired`: every worker's for admins and auditors, a member's
//!   own otherwise (no results, errors or notes: those stay behind the task's own read).

use bountyline_domain::bounty::BountyEvent;
use bountyline_domain::task::TaskEvent;
use bountyline_domain::Actor;
use bountyline_projections::StoredEvent;
use serde_json::{json, Map, Value};
use uuid::Uuid;

use crate::privacy::Scope;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Topic {
    /// Every task change, as a signal to re-read: ids, queue and status, no content.
    Tasks,
    /// Queue depth changes: which queue, which task, its new status.
    Queues,
    /// The bounty board's changes: which bounty, its status, title and reward when known.
    Bounties,
    /// What concerns the viewer: their bounties, wallet, inbox and tasks.
    Me,
    /// Every event, whole: auditors and admins only.
    Events,
    /// Snapshots of the platform's figures, coalesced; any member.
    Stats,
    /// Who works on what: claims, heartbeats, completions, failures and lease expiries.
    Workers,
}

/// One SSE message: `id:` is the event's position.
#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    pub position: i64,
    pub event: String,
    pub data: Value,
}

impl Topic {
    pub fn parse(name: &str) -> Option<Topic> {
        match name {
            "tasks" => Some(Topic::Tasks),
            "queues" => Some(Topic::Queues),
            "bounties" => Some(Topic::Bounties),
            "me" => Some(Topic::Me),
            "events" => Some(Topic::Events),
            "stats" => Some(Topic::Stats),
            "workers" => Some(Topic::Workers),
            _ => None,
        }
    }

    /// The aggregate types whose events the topic draws on (for catching up from the store);
    /// `None` for all of them.
    pub fn aggregate_types(self) -> Option<&'static [&'static str]> {
        match self {
            Topic::Tasks | Topic::Queues | Topic::Workers => Some(&["Task"]),
            Topic::Bounties => Some(&["Bounty"]),
            Topic::Me => Some(&["Bounty", "Wallet", "Inbox", "Task"]),
            Topic::Events => None,
            Topic::Stats => Some(&[]),
        }
    }

    /// How a message of this topic names the aggregate of each text it carries (texts are
    /// opened on their way out, `crate::privacy`).
    pub fn scope(self) -> Scope {
        match self {
            Topic::Bounties => Scope::Bounties,
            Topic::Me => Scope::Subjects,
            Topic::Events => Scope::Events,
            Topic::Tasks | Topic::Queues | Topic::Workers | Topic::Stats => Scope::Tasks,
        }
    }

    /// Whether `actor` may subscribe at all. `me` is open to everyone because it only ever
    /// carries what concerns the viewer.
    pub fn allows(self, actor: &Actor) -> bool {
        match self {
            Topic::Tasks
            | Topic::Queues
            | Topic::Bounties
            | Topic::Me
            | Topic::Stats
            | Topic::Workers => true,
            Topic::Events => actor.oversees(),
        }
    }

    /// The message `event` makes on this topic for `viewer`, if any.
    pub fn message(self, event: &StoredEvent, viewer: &Actor) -> Option<Message> {
        if self
            .aggregate_types()
            .is_some_and(|types| !types.contains(&event.aggregate_type.as_str()))
        {
            return None;
        }
        let data = match self {
            Topic::Tasks | Topic::Queues => task_data(self, event)?,
            Topic::Bounties => board_data(event)?,
            Topic::Me => mine(event, viewer.user_id)?,
            Topic::Events => whole(event),
            Topic::Workers => work(event, viewer)?,
            Topic::Stats => return None,
        };
        Some(Message {
            position: event.position,
            event: event.event_type.clone(),
            data,
        })
    }
}

fn task_data(topic: Topic, event: &StoredEvent) -> Option<Value> {
    let task: TaskEvent = event.decode().ok()?;
    let status = task.status_after();
    Some(match topic {
        Topic::Queues => json!({
            "queue": queue_of(&task, event)?,
            "task_id": event.aggregate_id,
            "status": status?.as_str(),
        }),
        _ => json!({
            "task_id": event.aggregate_id,
            "version": event.sequence,
            "queue": queue_of(&task, event),
            "status": status.map(|s| s.as_str()),
        }),
    })
}

fn queue_of(task: &TaskEvent, event: &StoredEvent) -> Option<String> {
    match task {
        TaskEvent::TaskCreated { queue, .. }
        | TaskEvent::TaskClaimed { queue, .. }
        | TaskEvent::TaskCompleted { queue, .. }
        | TaskEvent::TaskFailed { queue, .. }
        | TaskEvent::TaskLeaseExpired { queue, .. }
        | TaskEvent::TaskCancelled { queue, .. } => Some(queue.clone()),
        TaskEvent::TaskHeartbeatRecorded { .. } => event
            .body()
            .get("queue")
            .and_then(|q| q.as_str())
            .map(str::to_owned),
    }
}

/// What a worker did with a task, for admins and auditors or the worker themselves.
fn work(event: &StoredEvent, viewer: &Actor) -> Option<Value> {
    let task: TaskEvent = event.decode().ok()?;
    let (worker, activity) = match &task {
        TaskEvent::TaskClaimed { worker, .. } => (worker, "claimed"),
        TaskEvent::TaskHeartbeatRecorded { worker, .. } => (worker, "heartbeat"),
        TaskEvent::TaskCompleted { worker, .. } => (worker, "completed"),
        TaskEvent::TaskFailed { worker, .. } => (worker, "failed"),
        TaskEvent::TaskLeaseExpired { worker, .. } => (worker, "lease-expired"),
        TaskEvent::TaskCreated { .. } | TaskEvent::TaskCancelled { .. } => return None,
    };
    if !(viewer.oversees() || *worker == viewer.user_id) {
        return None;
    }
    let mut data = Map::new();
    data.insert("worker".into(), json!(worker));
    data.insert("task_id".into(), json!(event.aggregate_id));
    data.insert("queue".into(), json!(queue_of(&task, event)));
    data.insert("activity".into(), json!(activity));
    data.insert(
        "status".into(),
        json!(task.status_after().map(|s| s.as_str())),
    );
    match &task {
        TaskEvent::TaskClaimed {
            attempt,
            lease_expires_at,
            ..
        } => {
            data.insert("attempt".into(), json!(attempt));
            data.insert("lease_expires_at".into(), json!(lease_expires_at));
        }
        TaskEvent::TaskHeartbeatRecorded {
            progress,
            lease_expires_at,
            ..
        } => {
            data.insert("progress".into(), json!(progress));
            data.insert("lease_expires_at".into(), json!(lease_expires_at));
        }
        TaskEvent::TaskFailed { attempt, .. } | TaskEvent::TaskLeaseExpired { attempt, .. } => {
            data.insert("attempt".into(), json!(attempt));
        }
        _ => {}
    }
    Some(Value::Object(data))
}

/// A board change: public facts only.
fn board_data(event: &StoredEvent) -> Option<Value> {
    let bounty: BountyEvent = event.decode().ok()?;
    let mut data = Map::new();
    data.insert("bounty_id".into(), json!(event.aggregate_id));
    data.insert("version".into(), json!(event.sequence));
    data.insert(
        "status".into(),
        json!(bounty.status_after().map(|s| s.as_str())),
    );
    if let BountyEvent::BountyPosted { title, .. } = &bounty {
        data.insert("title".into(), json!(title));
    }
    if let Some(reward) = event.body().get("reward") {
        data.insert("reward".into(), reward.clone());
    }
    Some(Value::Object(data))
}

fn whole(event: &StoredEvent) -> Value {
    json!({
        "position": event.position,
        "event_id": event.event_id,
        "aggregate_type": event.aggregate_type,
        "aggregate_id": event.aggregate_id,
        "sequence": event.sequence,
        "event_type": event.event_type,
        "recorded_at": event.recorded_at,
        "payload": event.body(),
        "metadata": event.metadata,
    })
}

/// What `event` shows `viewer` on `me`, if it concerns them: its own fields, with the
/// subject's id, version and status.
fn mine(event: &StoredEvent, viewer: Uuid) -> Option<Value> {
    let body = event.body();
    let body = body.as_object()?;
    let names = |field: &str| {
        body.get(field)
            .and_then(Value::as_str)
            .and_then(|v| Uuid::parse_str(v).ok())
            == Some(viewer)
    };
    let mut data = Map::new();
    match event.aggregate_type.as_str() {
        "Bounty" => {
            if !(names("poster") || names("hunter")) {
                return None;
            }
            let bounty: BountyEvent = event.decode().ok()?;
            data.insert("bounty_id".into(), json!(event.aggregate_id));
            data.insert(
                "status".into(),
                json!(bounty.status_after().map(|s| s.as_str())),
            );
        }
        // A wallet's and an inbox's aggregate id is their owner's user id.
        "Wallet" | "Inbox" => {
            if event.aggregate_uuid() != Some(viewer) {
                return None;
            }
        }
        "Task" => {
            let TaskEvent::TaskCreated {
                queue,
                title,
                creator,
                ..
            } = event.decode().ok()?
            else {
                return None;
            };
            if creator != viewer {
                return None;
            }
            return Some(json!({
                "task_id": event.aggregate_id,
                "version": event.sequence,
                "queue": queue,
                "status": "queued",
                "title": title,
            }));
        }
        _ => return None,
    }
    for (key, value) in body {
        data.entry(key.clone()).or_insert_with(|| value.clone());
    }
    data.insert("version".into(), json!(event.sequence));
    Some(Value::Object(data))
}

#[cfg(test)]
mod tests {
    use super::*;
    use bountyline_domain::Role;
    use chrono::Utc;

    const POSTER: Uuid = Uuid::from_u128(1);
    const HUNTER: Uuid = Uuid::from_u128(2);
    const STRANGER: Uuid = Uuid::from_u128(3);

    fn viewer(id: Uuid) -> Actor {
        Actor::new(id, vec![Role::Member])
    }

    fn stored(
        aggregate_type: &str,
        aggregate_id: Uuid,
        event_type: &str,
        body: Value,
    ) -> StoredEvent {
        StoredEvent {
            position: 7,
            event_id: Uuid::from_u128(99),
            aggregate_type: aggregate_type.into(),
            aggregate_id: aggregate_id.to_string(),
            sequence: 3,
            event_type: event_type.into(),
            event_version: "1".into(),
            payload: json!({ event_type: body }),
            metadata: json!({}),
            recorded_at: Utc::now(),
        }
    }

    fn applied() -> StoredEvent {
        stored(
            "Bounty",
            Uuid::from_u128(10),
            "ApplicationSubmitted",
            json!({
                "application_id": Uuid::from_u128(11),
                "hunter": HUNTER,
                "poster": POSTER,
                "pitch": "hire me",
                "at": "2026-01-01T12:00:00Z",
            }),
        )
    }

    #[test]
    fn the_board_shows_no_pitch() {
        let message = Topic::Bounties
            .message(&applied(), &viewer(STRANGER))
            .expect("a board message");
        assert_eq!(
            message.data,
            json!({"bounty_id": Uuid::from_u128(10).to_string(), "version": 3, "status": null})
        );
    }

    #[test]
    fn me_shows_a_bounty_event_to_its_parties_only() {
        let event = applied();
        for party in [POSTER, HUNTER] {
            let message = Topic::Me.message(&event, &viewer(party)).expect("mine");
            assert_eq!(message.data["pitch"], "hire me");
            assert_eq!(message.data["version"], 3);
        }
        assert_eq!(Topic::Me.message(&event, &viewer(STRANGER)), None);
    }

    #[test]
    fn me_shows_only_my_own_wallet() {
        let deposit = stored(
            "Wallet",
            POSTER,
            "DepositConfirmed",
            json!({
                "owner": POSTER, "reference": "r1", "currency": "USD", "amount": 500,
                "available": 500, "held": 0, "at": "2026-01-01T12:00:00Z",
            }),
        );
        let message = Topic::Me.message(&deposit, &viewer(POSTER)).expect("mine");
        assert_eq!(message.data["available"], 500);
        assert_eq!(Topic::Me.message(&deposit, &viewer(HUNTER)), None);
    }

    #[test]
    fn events_is_for_overseers_and_carries_the_event_whole() {
        assert!(!Topic::Events.allows(&viewer(STRANGER)));
        assert!(Topic::Events.allows(&Actor::new(STRANGER, vec![Role::Auditor])));
        let message = Topic::Events
            .message(&applied(), &viewer(STRANGER))
            .expect("every event");
        assert_eq!(message.event, "ApplicationSubmitted");
        assert_eq!(message.data["payload"]["pitch"], "hire me");
        assert_eq!(message.data["position"], 7);
    }

    #[test]
    fn me_carries_no_other_aggregates_even_when_a_field_names_me() {
        let mut event = applied();
        event.aggregate_type = "Payment".into();
        assert_eq!(Topic::Me.message(&event, &viewer(POSTER)), None);
    }
}
