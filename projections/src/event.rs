//! An event as the store holds it, with its place on the global position line, and the one
//! way to read the store in that order (postgres-es's own streams swallow errors).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::PgPool;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
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

/// Reads the event store in global position order. Every read is bounded: a range is read a
/// page at a time ([`EventReader::pages`]), so memory stays bounded however long it is. A
/// reader made with [`EventReader::new`] returns events (and the head) only once they are
/// durable ([`crate::flushed`]), so that whatever it hands outside the database survives a
/// crash of Postgres; one that only writes what it reads back into the database
/// ([`EventReader::in_database`]) skips that round trip.
#[derive(Clone)]
pub struct EventReader {
    pool: PgPool,
    /// Whether reads wait for what they return to be durable.
    settles: bool,
    /// The most events one read of this reader (or a clone) returned.
    most_read: Arc<AtomicUsize>,
}

impl EventReader {
    /// For readers that hand events outside the database (JetStream, SSE, HTTP answers).
    pub fn new(pool: PgPool) -> Self {
        Self {
            pool,
            settles: true,
            most_read: Arc::default(),
        }
    }

    /// For readers whose every use of what they read is a synchronous commit in the same
    /// database (projections catching up or rebuilt): that commit is flushed only after the
    /// events it read, so a crash takes both or neither, and a settle per page is work for
    /// nothing.
    pub fn in_database(pool: PgPool) -> Self {
        Self {
            settles: false,
            ..Self::new(pool)
        }
    }

    /// The most events one read of this reader, or of a clone of it, has returned: what its
    /// memory grows to (the tests of paged reads check it).
    pub fn most_read(&self) -> usize {
        self.most_read.load(Ordering::Relaxed)
    }

    /// Up to `limit` events after `after`, in position order.
    pub async fn after(&self, after: i64, limit: i64) -> Result<Vec<StoredEvent>, sqlx::Error> {
        let events = sqlx::query_as::<_, StoredEvent>(&format!(
            "{SELECT_EVENTS} WHERE position > $1 ORDER BY position LIMIT $2"
        ))
        .bind(after)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        self.noted(events).await
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
        let events = sqlx::query_as::<_, StoredEvent>(&format!(
            "{SELECT_EVENTS} WHERE position > $1 AND aggregate_type = ANY($2) \
             ORDER BY position LIMIT $3"
        ))
        .bind(after)
        .bind(types)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        self.noted(events).await
    }

    /// The events of the given aggregate types (every type for `None`) in `(after, up_to]`,
    /// read `limit` at a time. `up_to` must be a position already seen committed (the head,
    /// or a published event's): below it, positions are final (visible or rolled back, see
    /// migrations/0001), so the pages cover the range whole however many holes it has.
    pub fn pages(&self, types: Option<&[&str]>, after: i64, up_to: i64, limit: i64) -> Pages {
        Pages {
            reader: self.clone(),
            types: types.map(|types| types.iter().map(|t| (*t).to_owned()).collect()),
            after,
            up_to,
            limit: limit.max(1),
        }
    }

    /// Up to `limit` events of `types` (every type for `None`) in `(after, up_to]`.
    async fn page(
        &self,
        types: Option<&[String]>,
        after: i64,
        up_to: i64,
        limit: i64,
    ) -> Result<Vec<StoredEvent>, sqlx::Error> {
        let events = match types {
            None => {
                sqlx::query_as::<_, StoredEvent>(&format!(
                    "{SELECT_EVENTS} WHERE position > $1 AND position <= $2 \
                     ORDER BY position LIMIT $3"
                ))
                .bind(after)
                .bind(up_to)
                .bind(limit)
                .fetch_all(&self.pool)
                .await?
            }
            Some(types) => {
                sqlx::query_as::<_, StoredEvent>(&format!(
                    "{SELECT_EVENTS} WHERE position > $1 AND position <= $2 \
                     AND aggregate_type = ANY($4) ORDER BY position LIMIT $3"
                ))
                .bind(after)
                .bind(up_to)
                .bind(limit)
                .bind(types)
                .fetch_all(&self.pool)
                .await?
            }
        };
        self.noted(events).await
    }

    /// `events` once they are durable, their number noted in [`EventReader::most_read`].
    async fn noted(&self, events: Vec<StoredEvent>) -> Result<Vec<StoredEvent>, sqlx::Error> {
        self.most_read.fetch_max(events.len(), Ordering::Relaxed);
        if self.settles && !events.is_empty() {
            crate::flushed::settle(&self.pool).await?;
        }
        Ok(events)
    }

    /// The highest committed position (0 for an empty store), once it is durable: a reader
    /// that starts after it never skips an event drawn at a position lost in a crash.
    pub async fn head(&self) -> Result<i64, sqlx::Error> {
        let head = sqlx::query_scalar("SELECT coalesce(max(position), 0)::bigint FROM events")
            .fetch_one(&self.pool)
            .await?;
        if self.settles {
            crate::flushed::settle(&self.pool).await?;
        }
        Ok(head)
    }
}

/// A range of the store read a page at a time ([`EventReader::pages`]).
pub struct Pages {
    reader: EventReader,
    types: Option<Vec<String>>,
    /// Where the next page starts (after).
    after: i64,
    up_to: i64,
    limit: i64,
}

/// One page of a range: its events in position order, and how far it covers the range.
#[derive(Debug)]
pub struct Page {
    pub events: Vec<StoredEvent>,
    /// Every event of the range (of the types read) up to here is in this page or an earlier
    /// one: the position a checkpoint may move to once the page is applied. The range's end
    /// on its last page.
    pub through: i64,
}

impl Pages {
    /// The next page, or `None` once the range is read. A range without events still gives
    /// one (empty) page, through its end.
    pub async fn next(&mut self) -> Result<Option<Page>, sqlx::Error> {
        if self.after >= self.up_to {
            return Ok(None);
        }
        let events = self
            .reader
            .page(self.types.as_deref(), self.after, self.up_to, self.limit)
            .await?;
        // A full page may stop short of the range's end; a page with room to spare reached it.
        // Either way nothing below its last event can appear later: positions are final.
        let through = match events.last() {
            Some(last) if events.len() as i64 >= self.limit => last.position,
            _ => self.up_to,
        };
        self.after = through;
        Ok(Some(Page { events, through }))
    }
}
