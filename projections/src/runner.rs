//! The projection runner: one durable JetStream consumer per process, feeding batches into
//! each projection's apply with its checkpoint in the same transaction (DESIGN.md guarantee 6).
//!
//! - One delivery: each event crosses NATS and is decoded once for all projections; each
//!   projection still applies and checkpoints in a transaction of its own.
//! - Idempotent: events at or below a projection's checkpoint are skipped.
//! - Gap-safe: each message names the position published before it; when that is not where
//!   a projection's checkpoint stands (a lost or reordered delivery, or another worker took
//!   part of the stream), the whole range is read from the event store instead, a page at a
//!   time, however long it is.
//! - Ordered: events apply in global position order, hence in order per aggregate.
//! - Never silent: an event that keeps failing is retried with backoff and then parked in
//!   `parked_events` (logged, counted), and the projection moves on. A fault of the connection
//!   or of the moment (a deadlock, a lock timeout: `is_transient`) is never parked: the
//!   batch is retried until it passes.

use async_nats::jetstream::{self, consumer::pull, consumer::AckPolicy, consumer::DeliverPolicy};
use futures::future::{try_join, try_join_all};
use futures::{StreamExt, TryFutureExt};
use sqlx::PgPool;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

use crate::backoff::Backoff;
use crate::fan_out::fan_out;
use crate::projection::{share_of, types_read};
use crate::signal::Signal;
use crate::wire::{aggregate_type_of, HEADER_POSITION, HEADER_PREV_POSITION};
use crate::{checkpoint, EventReader, Projection, ProjectionError, StoredEvent};

#[derive(Debug, Clone)]
pub struct RunnerConfig {
    /// The JetStream stream the relay publishes to.
    pub stream: String,
    /// The durable consumer's name (one per deployment: every projection it feeds shares it).
    pub durable: String,
    /// At most this many messages are applied in one transaction.
    pub batch: usize,
    /// Events read from the store at a time (for every projection while catching up, for one
    /// while it fills a gap in the stream) and applied in one transaction per projection;
    /// larger than `batch`, since the whole range is waiting already.
    pub catch_up_batch: usize,
    /// Tries of one failing event before it is parked.
    pub max_attempts: u32,
    /// How long JetStream waits for an ack before redelivering.
    pub ack_wait: Duration,
}

/// One projection a runner feeds, and where each checkpoint it stores is announced (core
/// NATS, see [`Signal`]).
pub struct Feed {
    pub projection: Arc<dyn Projection>,
    pub progress_subject: String,
}

/// Feeds every projection of a process from one durable consumer: each event crosses NATS and
/// is decoded once, however many projections read it. Each projection keeps its own
/// checkpoint, transaction and failure handling ([`Applier`]); a batch is acknowledged once
/// every projection has stored it.
pub struct ProjectionRunner {
    js: jetstream::Context,
    reader: EventReader,
    config: RunnerConfig,
    appliers: Vec<Applier>,
}

/// One projection's side of the runner: its checkpointed batches, catch-up from the store,
/// and the retry-then-park path for an event that keeps failing.
struct Applier {
    pool: PgPool,
    reader: EventReader,
    projection: Arc<dyn Projection>,
    progress: Signal,
    progress_subject: String,
    max_attempts: u32,
    /// Events read from the store at a time when a gap in the stream is filled.
    page: i64,
}

type RunError = Box<dyn std::error::Error + Send + Sync>;

/// One delivered event: its position, the position published before it, and the event itself
/// unless it is of a type no projection fed (or, once handed to one, that projection) reads.
struct Delivered {
    position: i64,
    prev: Option<i64>,
    event: Option<StoredEvent>,
}

impl ProjectionRunner {
    pub fn new(
        pool: PgPool,
        js: jetstream::Context,
        feeds: Vec<Feed>,
        config: RunnerConfig,
    ) -> Self {
        let appliers = feeds
            .into_iter()
            .map(|feed| Applier {
                reader: EventReader::in_database(pool.clone()),
                pool: pool.clone(),
                projection: feed.projection,
                progress: Signal::default(),
                progress_subject: feed.progress_subject,
                max_attempts: config.max_attempts,
                page: page_size(config.catch_up_batch),
            })
            .collect();
        Self {
            js,
            reader: EventReader::in_database(pool),
            config,
            appliers,
        }
    }

    /// Consumes until shutdown, reconnecting with backoff when NATS or Postgres fail.
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) {
        let announced: Vec<_> = self
            .appliers
            .iter()
            .map(|applier| {
                tokio::spawn(applier.progress.clone().publish(
                    self.js.client(),
                    applier.progress_subject.clone(),
                    shutdown.clone(),
                ))
            })
            .collect();
        let mut backoff = Backoff::new();
        while !*shutdown.borrow() {
            if let Err(e) = self.consume(&mut shutdown, &mut backoff).await {
                for applier in &self.appliers {
                    metrics::counter!("bountyline_projection_errors_total",
                        "projection" => applier.projection.name())
                    .increment(1);
                }
                tracing::warn!(durable = %self.config.durable, error = %e,
                    "projections interrupted; retrying");
                backoff.wait(&mut shutdown).await;
            }
        }
        for publisher in announced {
            let _ = publisher.await;
        }
        tracing::info!(durable = %self.config.durable, "projections stopped");
    }

    async fn consume(
        &self,
        shutdown: &mut watch::Receiver<bool>,
        backoff: &mut Backoff,
    ) -> Result<(), RunError> {
        let stream = self.js.get_stream(&self.config.stream).await?;
        // One ack per batch (its last message acknowledges every one before it), not one per
        // message. A new consumer delivers from now on: the catch-up from the store below
        // applies everything published before it.
        let config = pull::Config {
            durable_name: Some(self.config.durable.clone()),
            ack_policy: AckPolicy::All,
            ack_wait: self.config.ack_wait,
            deliver_policy: DeliverPolicy::New,
            max_ack_pending: 20_000,
            ..Default::default()
        };
        let mut consumer: jetstream::consumer::PullConsumer = stream
            .get_or_create_consumer(&self.config.durable, config.clone())
            .await?;
        if consumer.cached_info().config.ack_policy != AckPolicy::All {
            // Made by an earlier version, acknowledging message by message; a consumer's ack
            // policy cannot change, so it is made again.
            tracing::info!(durable = %self.config.durable, "recreating the consumer to acknowledge per batch");
            stream.delete_consumer(&self.config.durable).await?;
            consumer = stream.create_consumer(config).await?;
        }
        // Pull requests ask for two batches, so that the next one is arriving while this one
        // is applied (the stream only asks for more while it is polled).
        let messages = consumer
            .stream()
            .max_messages_per_batch(self.config.batch.saturating_mul(2))
            .heartbeat(Duration::from_secs(15))
            .messages()
            .await?;
        let mut chunks = messages.ready_chunks(self.config.batch);
        // Messages handed to a worker that stopped stay unacknowledged until their ack wait
        // runs out; rather than idle until then, catch up from the store right away. The
        // redeliveries then fall below the checkpoints and are skipped.
        self.catch_up_from_store().await?;
        loop {
            tokio::select! {
                // Outside tokio's cooperative budget, which would end every chunk at 128
                // messages however many are waiting: a transaction (and its fsync) per 128
                // events held the process managers below the rate events arrived at.
                chunk = tokio::task::unconstrained(chunks.next()) => {
                    let Some(chunk) = chunk else {
                        return Err("message stream ended".into());
                    };
                    let mut messages = Vec::with_capacity(chunk.len());
                    for message in chunk {
                        messages.push(message?);
                    }
                    let delivered = self.decode(&messages);
                    let delivered = &delivered;
                    try_join_all(self.appliers.iter().map(|applier| async move {
                        let applied = applier.apply_batch(applier.take(delivered)).await;
                        applied.map_err(|e| applier.failed(e))
                    }))
                    .await?;
                    if let Some(last) = messages.last() {
                        // Acknowledges the whole batch. A lost ack only means redeliveries,
                        // which the checkpoints skip; an ack that covers messages another
                        // worker was given leaves no gap either: the next batch's previous
                        // position does not match, and the range is read from the store.
                        let _ = last.ack().await;
                    }
                    backoff.reset();
                }
                _ = shutdown.changed() => return Ok(()),
            }
        }
    }

    /// Applies everything the store holds beyond each projection's checkpoint. The backlog is
    /// read once for every projection, `catch_up_batch` events of the types they read at a
    /// time, and each projection applies its share of every page beyond its own checkpoint in
    /// a transaction of its own, at its own pace ([`fan_out`]). The pages end at or below the
    /// store's head, and positions become visible in commit order (an append draws its
    /// position under a transaction-scoped advisory lock), so a page holds every event up to
    /// where it reaches and a checkpoint may move there.
    async fn catch_up_from_store(&self) -> Result<(), RunError> {
        let page_size = page_size(self.config.catch_up_batch);
        let mut at = Vec::with_capacity(self.appliers.len());
        for applier in &self.appliers {
            at.push(checkpoint::read(&applier.pool, applier.projection.name()).await?);
        }
        let projections: Vec<&dyn Projection> = self
            .appliers
            .iter()
            .map(|a| a.projection.as_ref())
            .collect();
        let types = types_read(&projections);
        let types = types.as_deref();
        loop {
            let head = self.reader.head().await?;
            let Some(from) = at.iter().copied().min().filter(|from| *from < head) else {
                return Ok(());
            };
            let pages = self.reader.pages(types, from, head, page_size);
            let (read, queues) = fan_out(pages, self.appliers.len(), |_| {});
            let applied = try_join_all(self.appliers.iter().zip(at.iter_mut()).zip(queues).map(
                |((applier, at), mut queue)| async move {
                    while *at < head {
                        let Some(page) = queue.recv().await else {
                            break;
                        };
                        applier
                            .catch_up(at, &page.events, page.through, head)
                            .await?;
                    }
                    Ok::<_, RunError>(())
                },
            ));
            try_join(read.map_err(RunError::from), applied).await?;
        }
    }

    /// The batch in position order, each event decoded once. An event of a type no projection
    /// fed reads is passed over undecoded; its position still counts.
    fn decode(&self, messages: &[jetstream::Message]) -> Vec<Delivered> {
        let mut items: Vec<Delivered> = Vec::with_capacity(messages.len());
        for message in messages {
            let header = |name: &str| {
                message
                    .headers
                    .as_ref()
                    .and_then(|h| h.get(name))
                    .and_then(|v| v.as_str().parse::<i64>().ok())
            };
            let prev = header(HEADER_PREV_POSITION);
            let unread = aggregate_type_of(&message.subject)
                .is_some_and(|t| !self.appliers.iter().any(|applier| applier.reads(t)));
            if let (true, Some(position)) = (unread, header(HEADER_POSITION)) {
                items.push(Delivered {
                    position,
                    prev,
                    event: None,
                });
                continue;
            }
            match serde_json::from_slice::<StoredEvent>(&message.payload) {
                Ok(event) => items.push(Delivered {
                    position: event.position,
                    prev,
                    event: Some(event),
                }),
                // Unreadable on the wire: the store still has it, and the next message's
                // previous position will not match, so the range is backfilled.
                Err(e) => tracing::warn!(error = %e, "undecodable message skipped"),
            }
        }
        items.sort_by_key(|item| item.position);
        items
    }
}

impl Applier {
    /// `error`, naming the projection it stopped.
    fn failed(&self, error: RunError) -> RunError {
        format!("{}: {error}", self.projection.name()).into()
    }

    /// Whether this projection reads events of `aggregate_type`.
    fn reads(&self, aggregate_type: &str) -> bool {
        self.projection.reads(aggregate_type)
    }

    /// This projection's share of a batch: every position, with the events it reads.
    fn take(&self, delivered: &[Delivered]) -> Vec<Delivered> {
        delivered
            .iter()
            .map(|item| Delivered {
                position: item.position,
                prev: item.prev,
                event: item
                    .event
                    .as_ref()
                    .filter(|event| self.reads(&event.aggregate_type))
                    .cloned(),
            })
            .collect()
    }

    /// Applies a page of the store, `events` up to `up_to`, if this projection's checkpoint
    /// `at` is behind it, and moves `at` there. A page without events for it is passed over:
    /// the checkpoint moves with its next events, or with the page that reaches `head`.
    async fn catch_up(
        &self,
        at: &mut i64,
        events: &[StoredEvent],
        up_to: i64,
        head: i64,
    ) -> Result<(), RunError> {
        if *at >= up_to || !(up_to >= head || self.has_share(events, *at)) {
            return Ok(());
        }
        self.apply_range(events, up_to)
            .await
            .map_err(|e| self.failed(e))?;
        *at = up_to;
        Ok(())
    }

    /// Whether `events` (in position order) hold any this projection reads beyond `at`.
    fn has_share(&self, events: &[StoredEvent], at: i64) -> bool {
        let beyond = &events[events.partition_point(|e| e.position <= at)..];
        beyond.iter().any(|e| self.reads(&e.aggregate_type))
    }

    /// Applies everything after the checkpoint up to the batch's last position.
    async fn apply_batch(&self, items: Vec<Delivered>) -> Result<(), RunError> {
        let name = self.projection.name();
        let Some(up_to) = items.last().map(|item| item.position) else {
            return Ok(());
        };
        let mut tx = self.pool.begin().await?;
        let at = checkpoint::lock(&mut tx, name).await?;
        if up_to <= at {
            tx.commit().await?;
            return Ok(());
        }
        let mut expected = at;
        let mut contiguous = true;
        let mut events = Vec::with_capacity(items.len());
        for item in items.into_iter().filter(|item| item.position > at) {
            contiguous &= item.prev == Some(expected);
            expected = item.position;
            events.extend(item.event);
        }
        if !contiguous {
            metrics::counter!("bountyline_projection_backfills_total", "projection" => name)
                .increment(1);
            // Nothing written yet; each page takes the checkpoint again.
            tx.commit().await?;
            return self.backfill(at, up_to).await;
        }
        self.apply_locked(tx, &events, up_to).await
    }

    /// Applies this projection's share of `(after, up_to]` from the store, however long the
    /// range (a worker back after a long absence, a stream that lost messages): a page of
    /// `page` events at a time, each with its checkpoint in a transaction of its own.
    async fn backfill(&self, after: i64, up_to: i64) -> Result<(), RunError> {
        let types = self.projection.aggregate_types();
        let mut pages = self.reader.pages(types, after, up_to, self.page);
        while let Some(page) = pages.next().await? {
            self.apply_range(&page.events, page.through).await?;
        }
        Ok(())
    }

    /// Applies this projection's share of `events` (every event of a range of the store of
    /// the types it reads, in position order, ending at `up_to`) and moves the checkpoint to
    /// `up_to`.
    async fn apply_range(&self, events: &[StoredEvent], up_to: i64) -> Result<(), RunError> {
        let mut tx = self.pool.begin().await?;
        let at = checkpoint::lock(&mut tx, self.projection.name()).await?;
        if up_to <= at {
            tx.commit().await?;
            return Ok(());
        }
        self.apply_share(tx, at, events, up_to).await
    }

    /// Applies this projection's share of `events` beyond the checkpoint `at`, which `tx`
    /// holds locked, and moves it to `up_to`.
    async fn apply_share(
        &self,
        tx: sqlx::Transaction<'static, sqlx::Postgres>,
        at: i64,
        events: &[StoredEvent],
        up_to: i64,
    ) -> Result<(), RunError> {
        let beyond = &events[events.partition_point(|e| e.position <= at)..];
        let share = share_of(self.projection.as_ref(), beyond);
        self.apply_locked(tx, &share, up_to).await
    }

    /// Applies `events` in the transaction that holds the checkpoint lock and stores `up_to`
    /// with them; a failing batch is retried event by event.
    async fn apply_locked(
        &self,
        mut tx: sqlx::Transaction<'static, sqlx::Postgres>,
        events: &[StoredEvent],
        up_to: i64,
    ) -> Result<(), RunError> {
        let name = self.projection.name();
        let started = std::time::Instant::now();
        match self.projection.apply_batch(&mut tx, events).await {
            Ok(()) => {
                let applied = started.elapsed();
                checkpoint::store(&mut tx, name, up_to).await?;
                tx.commit().await?;
                self.progress.raise(up_to);
                tracing::debug!(
                    projection = name,
                    events = events.len(),
                    apply_ms = applied.as_millis() as u64,
                    commit_ms = (started.elapsed() - applied).as_millis() as u64,
                    "batch applied"
                );
                metrics::counter!("bountyline_projection_applied_total", "projection" => name)
                    .increment(events.len() as u64);
                Ok(())
            }
            Err(e) if is_transient(&e) => Err(e.into()),
            Err(e) => {
                tx.rollback().await?;
                tracing::warn!(projection = name, error = %e, "batch failed; applying one by one");
                self.apply_one_by_one(events, up_to).await
            }
        }
    }

    /// Isolates the failing event: each event in its own transaction, retried with backoff,
    /// parked after the last try.
    async fn apply_one_by_one(&self, events: &[StoredEvent], up_to: i64) -> Result<(), RunError> {
        let name = self.projection.name();
        for event in events {
            let mut delay = Duration::from_millis(100);
            let mut attempt = 1;
            loop {
                let mut tx = self.pool.begin().await?;
                let at = checkpoint::lock(&mut tx, name).await?;
                if event.position <= at {
                    break;
                }
                match self.projection.apply(&mut tx, event).await {
                    Ok(()) => {
                        checkpoint::store(&mut tx, name, event.position).await?;
                        tx.commit().await?;
                        break;
                    }
                    Err(e) if is_transient(&e) => return Err(e.into()),
                    Err(e) if attempt >= self.max_attempts => {
                        tx.rollback().await?;
                        self.park(event, &e, attempt).await?;
                        break;
                    }
                    Err(e) => {
                        tx.rollback().await?;
                        tracing::warn!(projection = name, position = event.position, attempt,
                            error = %e, "event failed; will retry");
                        tokio::time::sleep(delay).await;
                        delay *= 4;
                        attempt += 1;
                    }
                }
            }
        }
        let mut tx = self.pool.begin().await?;
        let at = checkpoint::lock(&mut tx, name).await?;
        if up_to > at {
            checkpoint::store(&mut tx, name, up_to).await?;
        }
        tx.commit().await?;
        self.progress.raise(up_to);
        Ok(())
    }

    async fn park(
        &self,
        event: &StoredEvent,
        error: &ProjectionError,
        attempts: u32,
    ) -> Result<(), RunError> {
        let name = self.projection.name();
        let mut tx = self.pool.begin().await?;
        checkpoint::lock(&mut tx, name).await?;
        sqlx::query(
            "INSERT INTO public.parked_events \
             (projection, position, event_id, event_type, error, attempts) \
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING",
        )
        .bind(name)
        .bind(event.position)
        .bind(event.event_id)
        .bind(&event.event_type)
        .bind(error.to_string())
        .bind(attempts as i32)
        .execute(&mut *tx)
        .await?;
        // Past the event, unless another worker went further while this one retried.
        checkpoint::store(&mut tx, name, event.position).await?;
        tx.commit().await?;
        metrics::counter!("bountyline_projection_parked_total", "projection" => name).increment(1);
        tracing::error!(projection = name, position = event.position, event_id = %event.event_id,
            event_type = %event.event_type, error = %error, "event parked after {attempts} tries");
        Ok(())
    }
}

/// A page size in events, at least one.
fn page_size(events: usize) -> i64 {
    i64::try_from(events).unwrap_or(i64::MAX).max(1)
}

/// Faults of the connection or of the moment rather than of the event: retry the batch later,
/// never park. Postgres refuses a sound statement for the moment when it loses a deadlock
/// (40P01) or a serialization conflict (40001), or when a lock or statement timeout runs out
/// (55P03, 57014) behind another transaction; the same event applies once that one is gone.
fn is_transient(error: &ProjectionError) -> bool {
    match error {
        ProjectionError::Transient(_) => true,
        ProjectionError::Db(
            sqlx::Error::Io(_)
            | sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::WorkerCrashed
            | sqlx::Error::Protocol(_)
            | sqlx::Error::Tls(_),
        ) => true,
        // Also the connection's own faults as Postgres reports them: class 08, the server
        // shutting down or starting (57P01-57P03), too many connections (53300).
        ProjectionError::Db(sqlx::Error::Database(db)) => db.code().is_some_and(|code| {
            code.starts_with("08")
                || matches!(
                    &*code,
                    "40P01" | "40001" | "55P03" | "57014" | "57P01" | "57P02" | "57P03" | "53300"
                )
        }),
        _ => false,
    }
}
