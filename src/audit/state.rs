//! Point-in-time state: an aggregate as it stood at a version or an instant, folded from its
//! events with the domain aggregate's own `apply`.
//!
//! Decisions: a version below 1 or beyond the last one is a 422 that names the last version;
//! an instant before the aggregate's first event is a 404 (the aggregate did not exist then);
//! an unknown aggregate type or an aggregate without events is a 404.

use bountyline_domain::bounty::Bounty;
use bountyline_domain::epoch::Epoch;
use bountyline_domain::inbox::Inbox;
use bountyline_domain::payment::Payment;
use bountyline_domain::person::Person;
use bountyline_domain::task::Task;
use bountyline_domain::wallet::Wallet;
use bountyline_projections::StoredEvent;
use chrono::{DateTime, Utc};
use cqrs_es::Aggregate;
use serde::Serialize;
use sqlx::PgPool;

/// The aggregate types this view can fold.
pub const AGGREGATE_TYPES: [&str; 7] = [
    "Task", "Wallet", "Payment", "Bounty", "Inbox", "Person", "Epoch",
];

/// Why an audit read could not answer.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error("{0}")]
    NotFound(String),
    #[error("{field}: {message}")]
    Invalid {
        field: &'static str,
        message: String,
    },
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl From<sqlx::Error> for AuditError {
    fn from(e: sqlx::Error) -> Self {
        AuditError::Internal(e.into())
    }
}

/// Where in an aggregate's history to stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Point {
    /// After the event with this sequence number (1-based).
    Version(i64),
    /// After the last event recorded at or before this instant.
    Time(DateTime<Utc>),
    /// After the last event.
    Latest,
}

/// An aggregate as it was after a version or an instant.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct AggregateState {
    pub aggregate_type: String,
    pub aggregate_id: String,
    pub version: i64,
    /// When the last folded event was recorded.
    pub as_of: DateTime<Utc>,
    pub state: serde_json::Value,
}

const SELECT_EVENTS: &str = "SELECT position, event_id, aggregate_type, aggregate_id, sequence, \
     event_type, event_version, payload, metadata, recorded_at FROM events \
     WHERE aggregate_type = $1 AND aggregate_id = $2";

/// The aggregate's state at `at`.
pub async fn state_at(
    pool: &PgPool,
    aggregate_type: &str,
    id: &str,
    at: Point,
) -> Result<AggregateState, AuditError> {
    if !AGGREGATE_TYPES.contains(&aggregate_type) {
        return Err(AuditError::NotFound(format!(
            "no aggregate type {aggregate_type:?}; known types: {}",
            AGGREGATE_TYPES.join(", ")
        )));
    }
    let last: Option<i64> = sqlx::query_scalar(
        "SELECT max(sequence) FROM events WHERE aggregate_type = $1 AND aggregate_id = $2",
    )
    .bind(aggregate_type)
    .bind(id)
    .fetch_one(pool)
    .await?;
    let Some(last) = last else {
        return Err(AuditError::NotFound(format!(
            "no {aggregate_type} {id} in the event store"
        )));
    };
    let events: Vec<StoredEvent> = match at {
        Point::Version(v) if v < 1 => {
            return Err(AuditError::Invalid {
                field: "version",
                message: format!("must be at least 1 (the last version is {last})"),
            })
        }
        Point::Version(v) if v > last => {
            return Err(AuditError::Invalid {
                field: "version",
                message: format!(
                    "{aggregate_type} {id} has no version {v}; the last version is {last}"
                ),
            })
        }
        Point::Version(v) => {
            sqlx::query_as(&format!(
                "{SELECT_EVENTS} AND sequence <= $3 ORDER BY sequence"
            ))
            .bind(aggregate_type)
            .bind(id)
            .bind(v)
            .fetch_all(pool)
            .await?
        }
        Point::Time(t) => {
            sqlx::query_as(&format!(
                "{SELECT_EVENTS} AND recorded_at <= $3 ORDER BY sequence"
            ))
            .bind(aggregate_type)
            .bind(id)
            .bind(t)
            .fetch_all(pool)
            .await?
        }
        Point::Latest => {
            sqlx::query_as(&format!("{SELECT_EVENTS} ORDER BY sequence"))
                .bind(aggregate_type)
                .bind(id)
                .fetch_all(pool)
                .await?
        }
    };
    let Some(tail) = events.last() else {
        return Err(AuditError::NotFound(format!(
            "{aggregate_type} {id} did not exist yet at that time"
        )));
    };
    // Only what survives a crash of Postgres leaves it (docs/adr/0005).
    bountyline_projections::flushed::settle(pool).await?;
    let (version, as_of) = (tail.sequence, tail.recorded_at);
    let state = match aggregate_type {
        "Task" => fold::<Task>(&events)?,
        "Wallet" => fold::<Wallet>(&events)?,
        "Payment" => fold::<Payment>(&events)?,
        "Bounty" => fold::<Bounty>(&events)?,
        "Inbox" => fold::<Inbox>(&events)?,
        "Person" => fold::<Person>(&events)?,
        "Epoch" => fold::<Epoch>(&events)?,
        other => {
            return Err(AuditError::NotFound(format!("no aggregate type {other:?}")));
        }
    };
    Ok(AggregateState {
        aggregate_type: aggregate_type.to_owned(),
        aggregate_id: id.to_owned(),
        version,
        as_of,
        state,
    })
}

/// Folds events (in sequence order) into a fresh aggregate and serializes the result. Each
/// event is decoded in the current form of its type, upcast from the version it was stored at
/// (`StoredEvent::decode`, the domain's registry).
fn fold<A: Aggregate>(events: &[StoredEvent]) -> Result<serde_json::Value, AuditError> {
    let mut aggregate = A::default();
    for event in events {
        let decoded = event.decode::<A::Event>().map_err(|e| {
            AuditError::Internal(anyhow::anyhow!(
                "event {} ({} v{}) does not decode: {e}",
                event.event_id,
                event.event_type,
                event.event_version
            ))
        })?;
        aggregate.apply(decoded);
    }
    serde_json::to_value(&aggregate).map_err(|e| AuditError::Internal(e.into()))
}
