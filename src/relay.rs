//! The relay: the events table is the outbox, and this publishes every committed event to
//! JetStream in position order (DESIGN.md guarantees 4 and 5).
//!
//! Positions are commit-ordered (see migrations/0001), so reading `position > checkpoint` can
//! never skip an event that an in-flight transaction will still commit. The checkpoint moves
//! only after JetStream acknowledged everything up to it; a crash in between republishes, which
//! `Nats-Msg-Id` deduplication and the consumers' checkpoints make harmless. Only the holder of
//! a session advisory lock publishes, so any number of worker processes can run.

use async_nats::jetstream;
use bountyline_projections::{EventReader, StoredEvent};
use sqlx::postgres::PgListener;
use sqlx::{Connection, PgConnection, PgPool};
use std::time::Duration;
use tokio::sync::watch;

use bountyline_projections::backoff::Backoff;
use bountyline_projections::wire::{HEADER_MSG_ID, HEADER_POSITION, HEADER_PREV_POSITION};

use crate::nats::Names;

/// 0x626c726c = 'blrl'; a session lock on a dedicated connection: leadership lasts as long
/// as that connection does.
const RELAY_LOCK: i64 = 1651274348;
/// A safety net only: NOTIFY wakes the relay; this bounds the delay if a notification is lost.
const IDLE_POLL: Duration = Duration::from_secs(2);

pub struct Relay {
    pub pool: PgPool,
    pub database_url: String,
    pub js: jetstream::Context,
    pub names: Names,
    pub batch: i64,
}

impl Relay {
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) -> anyhow::Result<()> {
        let mut backoff = Backoff::new();
        while !*shutdown.borrow() {
            match self.lead(&mut shutdown, &mut backoff).await {
                Ok(()) => {}
                Err(e) => {
                    metrics::counter!("bountyline_relay_errors_total").increment(1);
                    tracing::warn!(error = format!("{e:#}"), "relay interrupted; retrying");
                    backoff.wait(&mut shutdown).await;
                }
            }
        }
        Ok(())
    }

    /// Waits for leadership, then publishes until shutdown or an error.
    async fn lead(
        &self,
        shutdown: &mut watch::Receiver<bool>,
        backoff: &mut Backoff,
    ) -> anyhow::Result<()> {
        let mut lock_conn = PgConnection::connect(&self.database_url).await?;
        loop {
            let got: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
                .bind(RELAY_LOCK)
                .fetch_one(&mut lock_conn)
                .await?;
            if got {
                break;
            }
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_secs(2)) => {}
                _ = shutdown.changed() => return Ok(()),
            }
        }
        tracing::info!(stream = %self.names.stream(), "relay is the publisher");
        let mut listener = PgListener::connect_with(&self.pool).await?;
        listener.listen("bountyline_events").await?;
        let reader = EventReader::new(self.pool.clone());
        let stream = self.names.stream();
        let mut checkpoint = self.checkpoint(&stream).await?;
        loop {
            if *shutdown.borrow() {
                return Ok(());
            }
            let events = reader.after(checkpoint, self.batch).await?;
            if events.is_empty() {
                // Still the leader? A broken lock connection means another relay may take over.
                sqlx::query("SELECT 1").execute(&mut lock_conn).await?;
                metrics::gauge!("bountyline_relay_lag").set(0.0);
                tokio::select! {
                    n = listener.recv() => { n?; }
                    _ = tokio::time::sleep(IDLE_POLL) => {}
                    _ = shutdown.changed() => return Ok(()),
                }
                continue;
            }
            let last = self.publish(&events, checkpoint).await?;
            sqlx::query(
                "UPDATE relay_checkpoints SET position = $2, updated_at = now() WHERE stream = $1",
            )
            .bind(&stream)
            .bind(last)
            .execute(&self.pool)
            .await?;
            metrics::counter!("bountyline_relay_published_total").increment(events.len() as u64);
            checkpoint = last;
            backoff.reset();
        }
    }

    async fn checkpoint(&self, stream: &str) -> Result<i64, sqlx::Error> {
        sqlx::query("INSERT INTO relay_checkpoints (stream) VALUES ($1) ON CONFLICT DO NOTHING")
            .bind(stream)
            .execute(&self.pool)
            .await?;
        sqlx::query_scalar("SELECT position FROM relay_checkpoints WHERE stream = $1")
            .bind(stream)
            .fetch_one(&self.pool)
            .await
    }

    /// Publishes in order, pipelined: all sends first, then every acknowledgement. Returns the
    /// last position, which is safe to checkpoint only because every ack arrived.
    async fn publish(&self, events: &[StoredEvent], mut prev: i64) -> anyhow::Result<i64> {
        let mut acks = Vec::with_capacity(events.len());
        for event in events {
            let mut headers = async_nats::HeaderMap::new();
            headers.insert(HEADER_MSG_ID, event.event_id.to_string().as_str());
            headers.insert(HEADER_POSITION, event.position.to_string().as_str());
            headers.insert(HEADER_PREV_POSITION, prev.to_string().as_str());
            let payload = serde_json::to_vec(event)?;
            let ack = self
                .js
                .publish_with_headers(
                    self.names.subject(&event.aggregate_type),
                    headers,
                    payload.into(),
                )
                .await
                .map_err(|e| anyhow::anyhow!("publish: {e}"))?;
            acks.push(ack);
            prev = event.position;
        }
        for ack in acks {
            ack.await.map_err(|e| anyhow::anyhow!("publish ack: {e}"))?;
        }
        Ok(prev)
    }
}
