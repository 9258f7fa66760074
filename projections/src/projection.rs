//! What a projection is: a stable name, the tables it owns, and an idempotent apply that
//! writes through the transaction it is given (so rows and checkpoint commit together).

use async_trait::async_trait;
use sqlx::{Postgres, Transaction};
use std::borrow::Cow;

use crate::StoredEvent;

#[derive(Debug, thiserror::Error)]
pub enum ProjectionError {
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
    #[error("event {position} ({event_type}) could not be decoded: {source}")]
    Decode {
        position: i64,
        event_type: String,
        source: serde_json::Error,
    },
    #[error("{0}")]
    Invalid(String),
    /// A dependency failed (a command's database, say): retry later, never park.
    #[error("{0}")]
    Transient(String),
}

impl ProjectionError {
    pub fn decode(event: &StoredEvent, source: serde_json::Error) -> Self {
        ProjectionError::Decode {
            position: event.position,
            event_type: event.event_type.clone(),
            source,
        }
    }
}

#[async_trait]
pub trait Projection: Send + Sync + 'static {
    /// Stable name: the checkpoint's key and the durable consumer's name.
    fn name(&self) -> &'static str;

    /// The tables this projection owns; a rebuild recreates and swaps exactly these.
    fn tables(&self) -> &'static [&'static str];

    /// Indexes of its tables that its apply never reads through (only queries of the API
    /// do). A rebuild loads its shadow tables without them and builds them once, after the
    /// load, which costs far less than keeping them up to date row by row. Every other index
    /// (the unique ones that `ON CONFLICT` and the row look-ups need, say) is there from the
    /// start. A name that is not an index of the projection's tables fails the rebuild.
    fn deferred_indexes(&self) -> &'static [&'static str] {
        &[]
    }

    /// The aggregate types whose events can change this projection, or `None` for every
    /// event. A rebuild reads only these from the store; it still ends at the store's head.
    fn aggregate_types(&self) -> Option<&'static [&'static str]> {
        None
    }

    /// Whether this projection reads events of `aggregate_type`.
    fn reads(&self, aggregate_type: &str) -> bool {
        self.aggregate_types()
            .is_none_or(|types| types.contains(&aggregate_type))
    }

    /// Applies one event. Table names are unqualified: the runner points `search_path` at the
    /// live schema or at a rebuild's shadow schema, so live and rebuild share this code.
    /// Events the projection does not care about are ignored.
    async fn apply(
        &self,
        tx: &mut Transaction<'static, Postgres>,
        event: &StoredEvent,
    ) -> Result<(), ProjectionError>;

    /// Applies events in position order with exactly the effect of applying them one by one
    /// (the runner falls back to that, event by event, when a batch fails). Read models
    /// override it to read and write each row once per batch instead of once per event.
    async fn apply_batch(
        &self,
        tx: &mut Transaction<'static, Postgres>,
        events: &[StoredEvent],
    ) -> Result<(), ProjectionError> {
        for event in events {
            self.apply(tx, event).await?;
        }
        Ok(())
    }
}

/// The events of `events` that `projection` reads: borrowed when it reads them all (events
/// read for several projections are shared, not copied), copied out otherwise.
pub fn share_of<'a>(
    projection: &dyn Projection,
    events: &'a [StoredEvent],
) -> Cow<'a, [StoredEvent]> {
    if events.iter().all(|e| projection.reads(&e.aggregate_type)) {
        return Cow::Borrowed(events);
    }
    Cow::Owned(
        events
            .iter()
            .filter(|e| projection.reads(&e.aggregate_type))
            .cloned()
            .collect(),
    )
}

/// The aggregate types any of `projections` reads, or `None` when one reads every event.
pub fn types_read(projections: &[&dyn Projection]) -> Option<Vec<&'static str>> {
    let mut types: Vec<&'static str> = Vec::new();
    for projection in projections {
        types.extend(projection.aggregate_types()?);
    }
    types.sort_unstable();
    types.dedup();
    Some(types)
}
