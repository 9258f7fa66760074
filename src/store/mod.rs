//! The event store behind cqrs-es: reads are postgres-es's, appends are group-committed.
//!
//! One fsynced transaction per command would serialise every command on the append lock for a
//! whole commit (docs/adr/0001). Instead each command's events go to the process's committer,
//! which appends concurrent commands together in one transaction, each command all or nothing
//! and optimistic concurrency exact per aggregate (docs/adr/0003-group-commit.md).

mod cached;
mod committer;
mod group;
mod keys;

pub use cached::{CachedStore, CACHED_AGGREGATES};
pub use committer::{AppendError, Outcome, RepeatedKey, APPLICATION_NAME, FLUSHER_NAME};
pub use keys::{recorded, Recorded};

/// The metadata keys under which a command names the payment provider's delivery it carries
/// out (`commands::DeliveryClaim`); the group commit claims the delivery's reference in the
/// transaction that appends the command's events.
pub(crate) mod delivery_keys {
    pub const REFERENCE: &str = "delivery_reference";
    pub const BODY_SHA256: &str = "delivery_body_sha256";
    pub const EVENT: &str = "delivery_event";
}

use crate::timing;
use bountyline_projections::signal::Signal;
use committer::Committer;
use cqrs_es::persist::{
    PersistedEventRepository, PersistenceError, ReplayStream, SerializedEvent, SerializedSnapshot,
};
use cqrs_es::Aggregate;
use postgres_es::PostgresEventRepository;
use serde_json::Value;
use sqlx::PgPool;
use std::cell::Cell;
use std::future::Future;
use std::sync::Arc;

/// What one command's append stored: the sequences of its first and last event, and the
/// global position of its last.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Receipt {
    pub first: i64,
    pub last: i64,
    pub position: i64,
}

impl Receipt {
    fn of(events: &[SerializedEvent], position: i64) -> Self {
        let sequence = |e: Option<&SerializedEvent>| e.map_or(0, |e| e.sequence as i64);
        Self {
            first: sequence(events.first()),
            last: sequence(events.last()),
            position,
        }
    }
}

tokio::task_local! {
    /// The receipt of the append made by the command running on this task: cqrs-es's
    /// `persist` returns nothing, so the receipt travels beside it (see [`with_receipt`]).
    static RECEIPT: Cell<Option<Receipt>>;
}

/// Runs one command's execution and returns its result with the receipt of what it
/// appended: `None` when it appended nothing.
pub async fn with_receipt<F: Future>(execution: F) -> (F::Output, Option<Receipt>) {
    RECEIPT
        .scope(Cell::new(None), async {
            let output = execution.await;
            (output, RECEIPT.with(Cell::get))
        })
        .await
}

/// Whether a database error means the connection broke: cqrs-es then gets a connection error,
/// which the HTTP edge answers with 503 rather than 500.
fn connection_broke(error: &sqlx::Error) -> bool {
    matches!(error, sqlx::Error::Io(_) | sqlx::Error::Tls(_))
}

/// The `events` table for cqrs-es: one per process, shared by every aggregate type (clones
/// share the committer).
#[derive(Clone)]
pub struct EventRepository {
    pool: PgPool,
    reads: Arc<PostgresEventRepository>,
    committer: Committer,
    appended: Signal,
}

impl EventRepository {
    /// Must be called within the Tokio runtime: it starts the committer task.
    pub fn new(pool: PgPool) -> Self {
        let appended = Signal::default();
        Self {
            committer: Committer::start(&pool, appended.clone()),
            reads: Arc::new(PostgresEventRepository::new(pool.clone())),
            pool,
            appended,
        }
    }

    /// Raised with the last position of every group this process commits (the relay's
    /// wake-up, once published).
    pub fn appended(&self) -> &Signal {
        &self.appended
    }

    /// The store for aggregate `A` and the services its commands are given, event-sourced (no snapshots: the events are the only
    /// truth), its [`CACHED_AGGREGATES`] most recently used kept in memory.
    pub fn cached<A: Aggregate>(&self, services: A::Services) -> CachedStore<A> {
        CachedStore::new(self.clone(), CACHED_AGGREGATES, services)
    }
}

impl PersistedEventRepository for EventRepository {
    async fn get_events<A: Aggregate>(
        &self,
        aggregate_id: &str,
    ) -> Result<Vec<SerializedEvent>, PersistenceError> {
        timing::in_store(self.reads.get_events::<A>(aggregate_id)).await
    }

    /// The events after `last_sequence`. postgres-es writes the sequence into the statement's
    /// text, a new prepared statement per version; the cache of hot aggregates asks this on
    /// every command, so here it is a parameter and one statement serves them all.
    async fn get_last_events<A: Aggregate>(
        &self,
        aggregate_id: &str,
        last_sequence: usize,
    ) -> Result<Vec<SerializedEvent>, PersistenceError> {
        let rows: Vec<(i64, String, String, Value, Value)> = timing::in_store(
            sqlx::query_as(
                "SELECT sequence, event_type, event_version, payload, metadata FROM events \
                 WHERE aggregate_type = $1 AND aggregate_id = $2 AND sequence > $3 \
                 ORDER BY sequence",
            )
            .bind(A::TYPE)
            .bind(aggregate_id)
            .bind(i64::try_from(last_sequence).unwrap_or(i64::MAX))
            .fetch_all(&self.pool),
        )
        .await
        .map_err(|error| {
            if connection_broke(&error) {
                PersistenceError::ConnectionError(Box::new(error))
            } else {
                PersistenceError::UnknownError(Box::new(error))
            }
        })?;
        Ok(rows
            .into_iter()
            .map(|(sequence, event_type, event_version, payload, metadata)| {
                SerializedEvent::new(
                    aggregate_id.to_owned(),
                    sequence as usize,
                    A::TYPE.to_owned(),
                    event_type,
                    event_version,
                    payload,
                    metadata,
                )
            })
            .collect())
    }

    async fn get_snapshot<A: Aggregate>(
        &self,
        aggregate_id: &str,
    ) -> Result<Option<SerializedSnapshot>, PersistenceError> {
        self.reads.get_snapshot::<A>(aggregate_id).await
    }

    async fn persist<A: Aggregate>(
        &self,
        events: &[SerializedEvent],
        snapshot_update: Option<(String, Value, usize)>,
    ) -> Result<(), PersistenceError> {
        if snapshot_update.is_some() {
            // Only a snapshot store asks for this, and the command bus uses none: postgres-es
            // writes the snapshot with the events in a transaction of their own (no receipt).
            return self.reads.persist::<A>(events, snapshot_update).await;
        }
        if events.is_empty() {
            return Ok(());
        }
        let receipt = timing::in_store(self.committer.append(events.to_vec())).await?;
        // Outside `with_receipt` (a caller of the framework that wants none) it is dropped.
        let _ = RECEIPT.try_with(|slot| slot.set(Some(receipt)));
        Ok(())
    }

    async fn stream_events<A: Aggregate>(
        &self,
        aggregate_id: &str,
    ) -> Result<ReplayStream, PersistenceError> {
        self.reads.stream_events::<A>(aggregate_id).await
    }

    async fn stream_all_events<A: Aggregate>(&self) -> Result<ReplayStream, PersistenceError> {
        self.reads.stream_all_events::<A>().await
    }
}
