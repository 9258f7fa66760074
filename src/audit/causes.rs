//! The chain of causes behind an event: each event's metadata names its `causation_id`, the
//! event a process manager reacted to or, for the first event of a chain, the id of the
//! command a person (or a scheduler) sent. Following it back leads to the originating command
//! and its user.

use bountyline_projections::StoredEvent;
use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::PgPool;
use std::collections::HashSet;
use uuid::Uuid;

use super::state::AuditError;

/// The longest chain followed; a longer one is cut here (no flow in bountyline is this deep).
pub const MAX_CHAIN: usize = 100;

/// One event on the chain, the asked-about event first.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct CauseLink {
    pub event_id: Uuid,
    pub position: i64,
    pub aggregate_type: String,
    pub aggregate_id: String,
    pub sequence: i64,
    pub event_type: String,
    pub actor: Option<String>,
    pub command: Option<String>,
    pub command_id: Option<String>,
    pub request_id: Option<String>,
    pub causation_id: Option<String>,
    pub correlation_id: Option<String>,
    pub recorded_at: DateTime<Utc>,
}

impl CauseLink {
    fn of(e: &StoredEvent) -> Self {
        let meta = |k: &str| e.meta(k).map(str::to_owned);
        CauseLink {
            event_id: e.event_id,
            position: e.position,
            aggregate_type: e.aggregate_type.clone(),
            aggregate_id: e.aggregate_id.clone(),
            sequence: e.sequence,
            event_type: e.event_type.clone(),
            actor: meta("actor"),
            command: meta("command"),
            command_id: meta("command_id"),
            request_id: meta("request_id"),
            causation_id: meta("causation_id"),
            correlation_id: meta("correlation_id"),
            recorded_at: e.recorded_at,
        }
    }
}

/// The command the chain started with, and who sent it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Origin {
    pub command: Option<String>,
    pub command_id: Option<String>,
    pub actor: Option<String>,
    pub request_id: Option<String>,
    pub correlation_id: Option<String>,
    /// What the originating command named as its cause: its own id for a command sent over
    /// HTTP, a trigger for one a scheduler issued.
    pub causation_id: Option<String>,
}

/// The origin of a chain: the command behind its last (earliest) event.
pub fn origin(chain: &[CauseLink]) -> Option<Origin> {
    chain.last().map(|l| Origin {
        command: l.command.clone(),
        command_id: l.command_id.clone(),
        actor: l.actor.clone(),
        request_id: l.request_id.clone(),
        correlation_id: l.correlation_id.clone(),
        causation_id: l.causation_id.clone(),
    })
}

const SELECT_EVENT: &str = "SELECT position, event_id, aggregate_type, aggregate_id, sequence, \
     event_type, event_version, payload, metadata, recorded_at FROM events WHERE event_id = $1";

async fn event(pool: &PgPool, id: Uuid) -> Result<Option<StoredEvent>, AuditError> {
    Ok(sqlx::query_as(SELECT_EVENT)
        .bind(id)
        .fetch_optional(pool)
        .await?)
}

/// The chain of causes from `event_id` back to the event whose cause is a command, newest
/// first. A cycle or a chain longer than [`MAX_CHAIN`] is cut where it is detected.
pub async fn causes(pool: &PgPool, event_id: Uuid) -> Result<Vec<CauseLink>, AuditError> {
    let Some(first) = event(pool, event_id).await? else {
        return Err(AuditError::NotFound(format!("no event {event_id}")));
    };
    let mut seen = HashSet::from([first.event_id]);
    let mut chain = vec![CauseLink::of(&first)];
    while chain.len() < MAX_CHAIN {
        let Some(cause) = chain
            .last()
            .and_then(|l| l.causation_id.as_deref())
            .and_then(|c| Uuid::parse_str(c).ok())
        else {
            break;
        };
        if !seen.insert(cause) {
            tracing::warn!(%event_id, %cause, "causation cycle in the event store");
            break;
        }
        match event(pool, cause).await? {
            Some(e) => chain.push(CauseLink::of(&e)),
            // Not an event: the originating command's id.
            None => break,
        }
    }
    // Only what survives a crash of Postgres leaves it (docs/adr/0005).
    bountyline_projections::flushed::settle(pool).await?;
    Ok(chain)
}
