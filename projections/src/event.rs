//! An event as the store holds it, with its place on the global position line, and the one
//! way to read the store in that order (postgres-es's own streams swallow errors).

use bountyline_domain::upcast::{upcast, UpcastError};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::PgPool;
use std::borrow::Cow;
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
    /// The payload in the current form of its event type: as stored, or upcast from the
    /// older version it was stored at ([`bountyline_domain::upcast`]). `payload` itself stays
    /// as stored: it is what the hash chain covers and what exports and the relay carry.
    pub fn current_payload(&self) -> Result<Cow<'_, serde_json::Value>, UpcastError> {
        upcast(&self.event_type, &self.event_version, &self.payload)
    }

    /// The domain event, for aggregates whose events serialize as cqrs-es stores them, upcast
    /// first if it was stored at an older version (an upcast that fails is a decode error).
    pub fn decode<E: serde::de::DeserializeOwned>(&self) -> Result<E, serde_json::Error> {
        let payload = self
            .current_payload()
            .map_err(<serde_json::Error as serde::de::Error>::custom)?;
        E::deserialize(payload.as_ref())
    }

    /// The body of the event in its current form without cqrs-es's enum wrapper
    /// (`{"TaskCreated": {...}}`); as stored if it cannot be upcast (no current form to give).
    pub fn body(&self) -> Cow<'_, serde_json::Value> {
        match self
            .current_payload()
            .unwrap_or(Cow::Borrowed(&self.payload))
        {
            Cow::Borrowed(payload) => Cow::Borrowed(unwrapped(payload, &self.event_type)),
            Cow::Owned(payload) => Cow::Owned(unwrapped(&payload, &self.event_type).clone()),
        }
    }

    /// A metadata field, e.g. `actor`, `request_id`, `correlation_id`, `causation_id`.
    pub fn meta(&self, key: &str) -> Option<&str> {
        self.metadata.get(key).and_then(|v| v.as_str())
    }

    pub fn aggregate_uuid(&self) -> Option<Uuid> {
        Uuid::parse_str(&self.aggregate_id).ok()
    }
}

/// A payload's body: what cqrs-es's enum wrapper `{"<event_type>": ...}` holds.
fn unwrapped<'a>(payload: &'a serde_json::Value, event_type: &str) -> &'a serde_json::Value {
    payload
        .as_object()
        .filter(|o| o.len() == 1)
        .and_then(|o| o.get(event_type))
        .unwrap_or(payload)
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

#[cfg(test)]
mod tests {
    use super::StoredEvent;
    use bountyline_domain::wallet::WalletEvent;
    use serde_json::json;
    use uuid::Uuid;

    /// An admin's credit as stored before credits had ids: `WalletCredited` v1.
    fn old_credit() -> StoredEvent {
        StoredEvent {
            position: 7,
            event_id: Uuid::from_u128(7),
            aggregate_type: "Wallet".into(),
            aggregate_id: Uuid::from_u128(1).to_string(),
            sequence: 2,
            event_type: "WalletCredited".into(),
            event_version: "1".into(),
            payload: json!({"WalletCredited": {
                "owner": Uuid::from_u128(1), "currency": "USD", "amount": 250,
                "reason": "goodwill", "credited_by": Uuid::from_u128(2),
                "available": 1250, "held": 0, "at": "2026-11-01T12:00:00Z"}}),
            metadata: json!({}),
            recorded_at: chrono::Utc::now(),
        }
    }

    #[test]
    fn an_event_stored_at_an_older_version_decodes_in_its_current_form() {
        let event = old_credit();
        let decoded: WalletEvent = event.decode().expect("upcast, then decoded");
        assert!(matches!(
            decoded,
            WalletEvent::WalletCredited {
                credit_id: None,
                amount: 250,
                ..
            }
        ));
        let mut newer = event.clone();
        newer.event_version = "9".into();
        assert!(
            newer.decode::<WalletEvent>().is_err(),
            "a version this build does not know"
        );
    }

    #[test]
    fn the_body_is_in_the_current_form_while_the_payload_stays_as_stored() {
        let event = old_credit();
        // `get`, not indexing, which gives null for a missing key too.
        assert_eq!(event.body().get("credit_id"), Some(&json!(null)));
        assert_eq!(event.body()["amount"], 250);
        assert!(event.payload["WalletCredited"].get("credit_id").is_none());
    }
}
