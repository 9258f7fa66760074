//! The relay: the events table is the outbox, and this publishes every committed event to
//! JetStream in position order (DESIGN.md guarantees 4 and 5).
//!
//! Positions are commit-ordered (see migrations/0001), so reading `position > checkpoint` can
//! never skip an event that an in-flight transaction will still commit. The checkpoint moves
//! only after JetStream acknowledged everything up to it; a crash in between republishes, which
//! `Nats-Msg-Id` deduplication and the consumers' checkpoints make harmless. Only the holder of
//! a session advisory lock publishes, so any number of worker processes can run.
//!
//! Leadership is fenced, not assumed: the lock lasts as long as its session, and a session can
//! end under a relay that is busy (a broken connection, a terminated backend) while another
//! relay takes the lock. So the lock's session answers before every publish, and the
//! checkpoint is stored through that session itself: a deposed relay publishes at most the
//! batch it had under way (copies JetStream drops), and stores no checkpoint.
//!
//! Every event is its own message, under its own `Nats-Msg-Id`. With `sync_interval: always`
//! JetStream fsyncs each message it stores, which held the relay to about 1,400 events/s under
//! a held load (5,300/s on an idle machine), below the rate commands produced them. So the
//! relay publishes each read as JetStream atomic batches (NATS 2.12+): the messages of a batch
//! are stored all or none with one fsync (about 70,000 events/s idle). A batch holding an id
//! JetStream already has is refused whole (a republish after a crash): that batch then goes
//! one message at a time, as on a server without atomic batches, and each duplicate is dropped
//! on its own.

use async_nats::{jetstream, HeaderMap};
use bountyline_projections::{EventReader, StoredEvent};
use futures::{FutureExt, StreamExt};
use sqlx::{Connection, PgConnection, PgPool};
use std::time::Duration;
use tokio::sync::watch;

use bountyline_projections::backoff::Backoff;
use bountyline_projections::wire::{HEADER_MSG_ID, HEADER_POSITION, HEADER_PREV_POSITION};

use crate::nats::Names;

/// 0x626c726c = 'blrl'; a session lock on a dedicated connection: leadership lasts as long
/// as that connection does.
pub const RELAY_LOCK: i64 = 1651274348;
/// Messages in one atomic batch at most (the server's default limit).
const ATOMIC_BATCH: usize = 1000;

pub struct Relay {
    pub pool: PgPool,
    pub database_url: String,
    pub js: jetstream::Context,
    pub names: Names,
    pub batch: i64,
    /// A safety net only: every append wakes the relay (`Names::appended`); this bounds the
    /// delay when a wake-up is lost.
    pub idle_poll: Duration,
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
        let mut wake_ups = self.js.client().subscribe(self.names.appended()).await?;
        let reader = EventReader::new(self.pool.clone());
        let stream = self.names.stream();
        let mut checkpoint = self.checkpoint(&stream).await?;
        let atomic = self
            .js
            .get_stream(&stream)
            .await?
            .get_info()
            .await?
            .config
            .allow_atomic_publish;
        if !atomic {
            tracing::warn!(%stream, "the event stream takes no atomic batches; publishing one message at a time");
        }
        loop {
            if *shutdown.borrow() {
                return Ok(());
            }
            let events = reader.after(checkpoint, self.batch).await?;
            if events.is_empty() {
                still_leading(&mut lock_conn).await?;
                metrics::gauge!("bountyline_relay_lag").set(0.0);
                tokio::select! {
                    woken = wake_ups.next() => {
                        woken.ok_or_else(|| anyhow::anyhow!("the wake-up subscription ended"))?;
                        // Wake-ups that queued while the relay published ask for one read, not
                        // one each.
                        while let Some(Some(_)) = wake_ups.next().now_or_never() {}
                    }
                    _ = tokio::time::sleep(self.idle_poll) => {}
                    _ = shutdown.changed() => return Ok(()),
                }
                continue;
            }
            let last = if atomic {
                self.publish_batches(&events, checkpoint, &mut lock_conn)
                    .await?
            } else {
                still_leading(&mut lock_conn).await?;
                self.publish(&events, checkpoint).await?
            };
            // Through the lock's session, so that only the leader stores: once that session
            // has ended this fails. Forward only: the lock's session may still end between
            // the check and this, and the new leader store a later position first.
            sqlx::query(
                "UPDATE relay_checkpoints SET position = $2, updated_at = now() \
                 WHERE stream = $1 AND position < $2",
            )
            .bind(&stream)
            .bind(last)
            .execute(&mut lock_conn)
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

    /// Publishes in order as atomic batches, each once the lock's session (`lock_conn`) has
    /// answered; a batch JetStream refuses goes one message at a time instead. Returns the
    /// last position, safe to checkpoint only because every batch (or every message) was
    /// acknowledged.
    async fn publish_batches(
        &self,
        events: &[StoredEvent],
        mut prev: i64,
        lock_conn: &mut PgConnection,
    ) -> anyhow::Result<i64> {
        for batch in events.chunks(ATOMIC_BATCH) {
            still_leading(lock_conn).await?;
            match self.publish_atomic(batch, prev).await {
                Ok(last) => {
                    metrics::counter!("bountyline_relay_batches_total", "kind" => "atomic")
                        .increment(1);
                    prev = last;
                }
                Err(refused) => {
                    // A republish after a crash (an id JetStream already has) or a limit of
                    // the server: one message at a time is always right.
                    tracing::info!(
                        error = format!("{refused:#}"),
                        events = batch.len(),
                        "atomic batch refused; publishing its events one at a time"
                    );
                    metrics::counter!("bountyline_relay_batches_total", "kind" => "single")
                        .increment(1);
                    prev = self.publish(batch, prev).await?;
                }
            }
        }
        Ok(prev)
    }

    /// One atomic batch: every message but the last is sent without an ack; the last commits
    /// the batch, and its ack says all of them are stored.
    async fn publish_atomic(&self, events: &[StoredEvent], mut prev: i64) -> anyhow::Result<i64> {
        let client = self.js.client();
        let batch_id = uuid::Uuid::new_v4().to_string();
        let mut commit = None;
        for (sequence, event) in (1..).zip(events) {
            let mut headers = headers(event, prev);
            headers.insert("Nats-Batch-Id", batch_id.as_str());
            headers.insert("Nats-Batch-Sequence", sequence.to_string().as_str());
            let subject = self.names.subject(&event.aggregate_type);
            let payload = serde_json::to_vec(event)?.into();
            if sequence == events.len() {
                headers.insert("Nats-Batch-Commit", "1");
                let ack = self
                    .js
                    .publish_with_headers(subject, headers, payload)
                    .await
                    .map_err(|e| anyhow::anyhow!("publish batch commit: {e}"))?;
                commit = Some(ack);
            } else {
                client
                    .publish_with_headers(subject, headers, payload)
                    .await
                    .map_err(|e| anyhow::anyhow!("publish batch message: {e}"))?;
            }
            prev = event.position;
        }
        if let Some(ack) = commit {
            ack.await.map_err(|e| anyhow::anyhow!("batch ack: {e}"))?;
        }
        Ok(prev)
    }

    /// Publishes in order, one message at a time, pipelined: all sends first, then every
    /// acknowledgement. Returns the last position, which is safe to checkpoint only because
    /// every ack arrived.
    async fn publish(&self, events: &[StoredEvent], mut prev: i64) -> anyhow::Result<i64> {
        let mut acks = Vec::with_capacity(events.len());
        for event in events {
            let payload = serde_json::to_vec(event)?;
            let ack = self
                .js
                .publish_with_headers(
                    self.names.subject(&event.aggregate_type),
                    headers(event, prev),
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

/// Fails unless the session that holds the relay's lock (`lock_conn`) still answers: one that
/// ended released the lock, and another relay may lead now. Alive, it holds the lock (nothing
/// else releases a session lock), so a round trip is the whole check.
async fn still_leading(lock_conn: &mut PgConnection) -> anyhow::Result<()> {
    sqlx::query("SELECT 1")
        .execute(lock_conn)
        .await
        .map_err(|e| anyhow::anyhow!("leadership lost: the relay lock's session ended: {e}"))?;
    Ok(())
}

/// What every event's message carries: its id (JetStream's deduplication key), its position
/// and the position published before it.
fn headers(event: &StoredEvent, prev: i64) -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert(HEADER_MSG_ID, event.event_id.to_string().as_str());
    headers.insert(HEADER_POSITION, event.position.to_string().as_str());
    headers.insert(HEADER_PREV_POSITION, prev.to_string().as_str());
    headers
}
