//! An event as the store holds it, with its place on the global position line, and the one
//! way to read the store in that order (postgres-es's own streams swallow errors).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::PgPool;
use uuid::Uuid;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct StoredEvent {
    pub position: i64,
    pub event_id: Uuid,
    pub aggregate_type: String,
    pub aggregate_id: String,
    pub sequence: i64,
    pub event_type: String,
    pub event_version: String,
    pub payload: serde_json::Value,
    pub metadata: serde_json::Value,
    pub recorded_at: DateTime<Utc>,
}

impl StoredEvent {
    /// The domain event, for aggregates whose events serialize as cqrs-es stores them.
    pub fn decode<E: serde::de::DeserializeOwned>(&self) -> Result<E, serde_json::Error> {
        E::deserialize(&self.payload)
    }

    /// The body of the event without cqrs-es's enum wrapper (`{"TaskCreated": {...}}`).
    pub fn body(&self) -> &serde_json::Value {
        self.payload
            .as_object()
            .filter(|o| o.len() == 1)
            .and_then(|o| o.get(&self.event_type))
            .unwrap_or(&self.payload)
    }

    /// A metadata field, e.g. `actor`, `request_id`, `correlation_id`, `causation_id`.
    pub fn meta(&self, key: &str) -> Option<&str> {
        self.metadata.get(key).and_then(|v| v.as_str())
    }

    pub fn aggregate_uuid(&self) -> Option<Uuid> {
        Uuid::parse_str(&self.aggregate_id).ok()
    }
}

const SELECT_EVENTS: &str = "SELECT position, event_id, aggregate_type, aggregate_id, sequence, \
     event_type, event_version, payload, metadata, recorded_at FROM events";

/// Reads the event store in global position order.
#[derive(Clone)]
pub struct EventReader {
    pool: PgPool,
}

impl EventReader {
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }

    /// Up to `limit` events after `after`, in position order.
    pub async fn after(&self, after: i64, limit: i64) -> Result<Vec<StoredEvent>, sqlx::Error> {
        sqlx::query_as::<_, StoredEvent>(&format!(
            "{SELECT_EVENTS} WHERE position > $1 ORDER BY position LIMIT $2"
        ))
        .bind(after)
        .bind(limit)
        .fetch_all(&self.pool)
        .await
    }

    /// Every event in `(after, up_to]`, in position order.
    pub async fn range(&self, after: i64, up_to: i64) -> Result<Vec<StoredEvent>, sqlx::Error> {
        sqlx::query_as::<_, StoredEvent>(&format!(
            "{SELECT_EVENTS} WHERE position > $1 AND position <= $2 ORDER BY position"
        ))
        .bind(after)
        .bind(up_to)
        .fetch_all(&self.pool)
        .await
    }

    /// Up to `limit` events of the given aggregate types (every type for `None`) after
    /// `after`, in position order.
    pub async fn of_types_after(
        &self,
        types: Option<&[&str]>,
        after: i64,
        limit: i64,
    ) -> Result<Vec<StoredEvent>, sqlx::Error> {
        let Some(types) = types else {
            return self.after(after, limit).await;
        };
        let types: Vec<String> = types.iter().map(|t| (*t).to_owned()).collect();
        sqlx::query_as::<_, StoredEvent>(&format!(
            "{SELECT_EVENTS} WHERE position > $1 AND aggregate_type = ANY($2) \
             ORDER BY position LIMIT $3"
        ))
        .bind(after)
        .bind(types)
        .bind(limit)
        .fetch_all(&self.pool)
        .await
    }

    /// Every event of the given aggregate types (every type for `None`) in `(after, up_to]`,
    /// in position order.
    pub async fn of_types_in(
        &self,
        types: Option<&[&str]>,
        after: i64,
        up_to: i64,
    ) -> Result<Vec<StoredEvent>, sqlx::Error> {
        let Some(types) = types else {
            return self.range(after, up_to).await;
        };
        let types: Vec<String> = types.iter().map(|t| (*t).to_owned()).collect();
        sqlx::query_as::<_, StoredEvent>(&format!(
            "{SELECT_EVENTS} WHERE position > $1 AND position <= $2 AND aggregate_type = ANY($3) \
             ORDER BY position"
        ))
        .bind(after)
        .bind(up_to)
        .bind(types)
        .fetch_all(&self.pool)
        .await
    }

    /// The highest committed position (0 for an empty store).
    pub async fn head(&self) -> Result<i64, sqlx::Error> {
        sqlx::query_scalar("SELECT coalesce(max(position), 0)::bigint FROM events")
            .fetch_one(&self.pool)
            .await
    }
}
