//! The per-process fan-out and the per-client catch-up loop.

use actix_web_lab::sse;
use async_nats::jetstream::{self, consumer};
use bountyline_domain::Actor;
use bountyline_projections::backoff::Backoff;
use bountyline_projections::wire::HEADER_PREV_POSITION;
use bountyline_projections::{EventReader, StoredEvent};
use futures::StreamExt;
use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use tokio::sync::{broadcast, mpsc, watch};
use uuid::Uuid;

use super::topic::{Message, Topic};
use crate::nats::Names;
use crate::privacy::Opener;
use crate::telemetry::SSE_EVENT_AGE;

const PAGE: i64 = Hub::PAGE;

/// Resolves when a subscription must end although its client still listens: its access token
/// expired or its session ended. The client reconnects, and is asked for a valid token.
pub type Ends = futures::future::BoxFuture<'static, ()>;

/// The response body of one subscription.
pub type Stream = sse::Sse<
    actix_web_lab::util::InfallibleStream<tokio_stream::wrappers::ReceiverStream<sse::Event>>,
>;

#[derive(Clone)]
pub struct Hub {
    events: broadcast::Sender<Arc<StoredEvent>>,
    reader: EventReader,
    shutdown: watch::Receiver<bool>,
    /// The last position broadcast, kept across resubscriptions so a gap can be filled.
    last: Arc<AtomicI64>,
    open: OpenStreams,
    /// Opens the texts of each message on its way to a client (ADR 7); without it, messages
    /// carry texts sealed as stored.
    opener: Option<Opener>,
}

/// How many streams each user holds open in this process.
#[derive(Clone, Default)]
pub struct OpenStreams(Arc<Mutex<HashMap<Uuid, usize>>>);

/// One admitted stream; dropping it (when the client goes) frees the place.
pub struct Slot {
    open: OpenStreams,
    user: Uuid,
}

impl OpenStreams {
    /// A place for one more stream of `user`, unless they already hold `max`.
    pub fn admit(&self, user: Uuid, max: usize) -> Option<Slot> {
        let mut open = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let count = open.entry(user).or_default();
        if *count >= max {
            return None;
        }
        *count += 1;
        Some(Slot {
            open: self.clone(),
            user,
        })
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut open = self.open.0.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(count) = open.get_mut(&self.user) {
            *count -= 1;
            if *count == 0 {
                open.remove(&self.user);
            }
        }
    }
}

impl Hub {
    /// Events read from the store at a time (filling a gap in the stream, catching a client
    /// up): what bounds the memory a catch-up takes, however far behind it starts.
    pub const PAGE: i64 = 500;

    /// `start` is the store's head when the process starts, read before any client can
    /// connect: the hub owes live clients everything after it, and catches up from it once
    /// subscribed, so nothing published while it subscribes is lost.
    pub fn new(
        reader: EventReader,
        capacity: usize,
        shutdown: watch::Receiver<bool>,
        start: i64,
    ) -> Self {
        Self {
            events: broadcast::channel(capacity).0,
            reader,
            shutdown,
            last: Arc::new(AtomicI64::new(start)),
            open: OpenStreams::default(),
            opener: None,
        }
    }

    /// The hub whose messages show people's texts opened by `opener`.
    pub fn opening(self, opener: Opener) -> Self {
        Self {
            opener: Some(opener),
            ..self
        }
    }

    /// A place for one more stream of `user` in this process, unless they hold `max` already.
    pub fn admit(&self, user: Uuid, max: usize) -> Option<Slot> {
        self.open.admit(user, max)
    }

    /// Follows the event stream from its end until shutdown, re-subscribing after failures.
    pub async fn follow(self, js: jetstream::Context, names: Names) {
        let mut shutdown = self.shutdown.clone();
        let mut backoff = Backoff::new();
        while !*shutdown.borrow() {
            if let Err(e) = self.follow_once(&js, &names, &mut shutdown).await {
                tracing::warn!(error = %e, "SSE hub lost the event stream; resubscribing");
                backoff.wait(&mut shutdown).await;
            }
        }
    }

    async fn follow_once(
        &self,
        js: &jetstream::Context,
        names: &Names,
        shutdown: &mut watch::Receiver<bool>,
    ) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
        let stream = js.get_stream(names.stream()).await?;
        let ordered = stream
            .create_consumer(consumer::pull::OrderedConfig {
                deliver_policy: consumer::DeliverPolicy::New,
                ..Default::default()
            })
            .await?;
        let mut messages = ordered.messages().await?;
        // Subscribed: now fill in whatever was published while we were not (start-up, a restart
        // of NATS or of this subscription); `broadcast` drops anything sent twice.
        let mut last = self.last.load(Ordering::Acquire);
        loop {
            let missed = self.reader.after(last, PAGE).await?;
            let Some(end) = missed.last().map(|e| e.position) else {
                break;
            };
            for event in missed {
                self.broadcast(Arc::new(event));
            }
            last = end;
        }
        loop {
            tokio::select! {
                next = messages.next() => {
                    let Some(message) = next else { return Err("stream ended".into()) };
                    let message = message?;
                    let Ok(event) = serde_json::from_slice::<StoredEvent>(&message.payload) else {
                        continue;
                    };
                    record_age(&message, &event);
                    let prev = message
                        .headers
                        .as_ref()
                        .and_then(|h| h.get(HEADER_PREV_POSITION))
                        .and_then(|v| v.as_str().parse::<i64>().ok());
                    let last = self.last.load(Ordering::Acquire);
                    if prev.is_some_and(|p| p > last) {
                        // We missed messages (a resubscription starts at the stream's end):
                        // the store has them, however many.
                        let mut pages = self.reader.pages(None, last, event.position - 1, PAGE);
                        while let Some(page) = pages.next().await? {
                            for missed in page.events {
                                self.broadcast(Arc::new(missed));
                            }
                        }
                    }
                    self.broadcast(Arc::new(event));
                }
                _ = shutdown.changed() => return Ok(()),
            }
        }
    }

    fn broadcast(&self, event: Arc<StoredEvent>) {
        if event.position <= self.last.load(Ordering::Acquire) {
            return;
        }
        self.last.store(event.position, Ordering::Release);
        // No receivers is fine: nobody is watching.
        let _ = self.events.send(event);
    }

    /// Starts a client for `viewer`: catch up after `last_event_id` (if given) from the store,
    /// then live. Without one, "live" starts at the store's head read here, before the client
    /// has its answer: whatever commits once it is subscribed reaches it.
    pub async fn subscribe(
        &self,
        slot: Slot,
        topic: Topic,
        viewer: Actor,
        last_event_id: Option<i64>,
        buffer: usize,
        until: Ends,
    ) -> Result<Stream, sqlx::Error> {
        let sent = match last_event_id {
            Some(after) => after,
            None => self.reader.head().await?,
        };
        let (tx, rx) = mpsc::channel(buffer);
        let client = Client {
            _slot: slot,
            topic,
            viewer,
            live: self.events.subscribe(),
            reader: self.reader.clone(),
            tx,
            sent,
            shutdown: self.shutdown.clone(),
            until,
            opener: self.opener.clone(),
        };
        tokio::spawn(client.run());
        Ok(sse::Sse::from_infallible_receiver(rx))
    }
}

struct Client {
    _slot: Slot,
    topic: Topic,
    /// Who subscribed: topics such as `me` show each viewer only what concerns them.
    viewer: Actor,
    live: broadcast::Receiver<Arc<StoredEvent>>,
    reader: EventReader,
    tx: mpsc::Sender<sse::Event>,
    /// The last position sent (or the client already had, or the head when it came).
    sent: i64,
    shutdown: watch::Receiver<bool>,
    /// When the subscriber's credentials end (their token expires or their session ends).
    until: Ends,
    opener: Option<Opener>,
}

impl Client {
    async fn run(mut self) {
        let gauge = metrics::gauge!("bountyline_sse_clients");
        gauge.increment(1.0);
        if let Err(e) = self.serve().await {
            tracing::debug!(reason = %e, "SSE client ended");
        }
        gauge.decrement(1.0);
    }

    async fn serve(&mut self) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
        // From where it resumes, or from the head when it came: what was committed before is
        // history it did not ask for (and must never be replayed to it after a lag).
        self.catch_up(self.sent).await?;
        loop {
            tokio::select! {
                received = self.live.recv() => match received {
                    Ok(event) => self.send(&event).await?,
                    Err(broadcast::error::RecvError::Lagged(missed)) => {
                        // The ring moved on without us: the store has everything we missed.
                        metrics::counter!("bountyline_sse_lagged_total").increment(1);
                        tracing::debug!(missed, topic = ?self.topic, "SSE client fell behind the fan-out; catching up from the store");
                        self.catch_up(self.sent).await?;
                    }
                    Err(broadcast::error::RecvError::Closed) => return Ok(()),
                },
                // The client went away while nothing was sent: free its place now.
                _ = self.tx.closed() => return Ok(()),
                _ = self.shutdown.changed() => return Ok(()),
                _ = &mut self.until => return Ok(()),
            }
        }
    }

    async fn catch_up(
        &mut self,
        mut after: i64,
    ) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
        loop {
            let events = self
                .reader
                .of_types_after(self.topic.aggregate_types(), after, PAGE)
                .await?;
            let Some(last) = events.last().map(|e| e.position) else {
                return Ok(());
            };
            for event in &events {
                self.send(event).await?;
            }
            after = last;
        }
    }

    async fn send(
        &mut self,
        event: &StoredEvent,
    ) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
        if event.position <= self.sent {
            return Ok(());
        }
        if let Some(Message {
            position,
            event: name,
            mut data,
        }) = self.topic.message(event, &self.viewer)
        {
            if let Some(opener) = &self.opener {
                opener.open(&mut data, self.topic.scope()).await?;
            }
            let data = sse::Data::new_json(data)?
                .id(position.to_string())
                .event(name);
            self.tx.send(sse::Event::Data(data)).await?;
        }
        self.sent = event.position;
        Ok(())
    }
}

/// How old a live event is when the hub has it, counted from its insert into the store
/// (`recorded_at`, in its append's transaction): `stage="stored"` when JetStream stored it
/// (the append's commit, the relay's wake-up, read and publish), `stage="received"` when it
/// reached this hub (JetStream's fsync and delivery as well). What a live screen waits for
/// beyond its command's own answer, by stage; the benchmark reports both.
fn record_age(message: &jetstream::Message, event: &StoredEvent) {
    let Some(recorded) = event.recorded_at.timestamp_nanos_opt() else {
        return;
    };
    let age = |nanos: i128| (nanos - i128::from(recorded)).max(0) as f64 / 1e9;
    if let Ok(info) = message.info() {
        metrics::histogram!(SSE_EVENT_AGE, "stage" => "stored")
            .record(age(info.published.unix_timestamp_nanos()));
    }
    if let Some(now) = chrono::Utc::now().timestamp_nanos_opt() {
        metrics::histogram!(SSE_EVENT_AGE, "stage" => "received").record(age(i128::from(now)));
    }
}
