//! Ranges of the event store are read a page at a time, however long they are, and the pages
//! together hold every event of the range once, in position order, also where positions have
//! holes (rolled-back appends) at a page's border: the reader itself, the projection runner
//! filling a gap in the stream, a rebuild's swap and the SSE hub filling a gap.

mod common;

use actix_web::body::{BoxBody, MessageBody};
use async_trait::async_trait;
use bountyline::nats::Names;
use bountyline::sse::{Hub, Topic};
use bountyline::startup::Parts;
use bountyline_domain::Actor;
use bountyline_projections::rebuild::{build_shadow, swap_in, PAGE};
use bountyline_projections::wire::{HEADER_MSG_ID, HEADER_POSITION, HEADER_PREV_POSITION};
use bountyline_projections::{checkpoint, EventReader, Projection, ProjectionError, StoredEvent};
use common::*;
use futures::FutureExt;
use sqlx::{PgPool, Postgres, Transaction};
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use uuid::Uuid;

/// Every test here finishes within this, whatever hangs.
const TEST_LIMIT: Duration = Duration::from_secs(120);

async fn within<F: Future<Output = ()>>(test: F) {
    tokio::time::timeout(TEST_LIMIT, test)
        .await
        .unwrap_or_else(|_| panic!("the test did not finish within {TEST_LIMIT:?}"));
}

/// A test app without workers: nothing publishes or projects but what the test starts.
async fn app_without_workers() -> TestApp {
    let nats_url = std::env::var("NATS_URL").expect("NATS_URL (run scripts/test)");
    TestApp::spawn_with(
        test_settings(&fresh_database().await, &nats_url),
        Parts::API,
    )
    .await
}

#[tokio::test]
async fn a_range_read_in_pages_holds_every_event_once_in_order_across_holes_at_page_borders() {
    within(async {
        let app = app_without_workers().await;
        // Runs of events of two types, with holes of one to three positions between them.
        for run in 0..24 {
            let kind = if run % 3 == 0 { "Other" } else { "Probe" };
            store(&app.pool, kind, run % 5 + 1).await;
            hole(&app.pool, run % 3 + 1).await;
        }
        let head = app.head().await;
        let probes: &[&str] = &["Probe"];
        for limit in [1, 2, 3, 7, 1_000] {
            for types in [None, Some(probes)] {
                for (after, up_to) in [(0, head), (1, head - 1), (5, 40), (head, head)] {
                    let reader = EventReader::new(app.pool.clone());
                    let mut pages = reader.pages(types, after, up_to, limit);
                    let (mut read, mut reached) = (Vec::new(), after);
                    while let Some(page) = pages.next().await.expect("a page") {
                        let case = format!("pages of {limit} of {types:?} in ({after}, {up_to}]");
                        let positions: Vec<i64> = page.events.iter().map(|e| e.position).collect();
                        assert!(
                            positions.len() as i64 <= limit,
                            "{case}: a page of {positions:?}"
                        );
                        assert!(page.through > reached, "{case}: the pages stall at {reached}");
                        assert!(
                            page.events
                                .iter()
                                .all(|e| e.position > reached && e.position <= page.through),
                            "{case}: a page holds events beyond where it says it reaches"
                        );
                        read.extend(positions);
                        reached = page.through;
                    }
                    assert_eq!(reached, up_to.max(after), "the pages reach the range's end");
                    assert_eq!(
                        read,
                        stored(&app.pool, types, after, up_to).await,
                        "pages of {limit} of {types:?} in ({after}, {up_to}]: every event once, in order"
                    );
                    assert!(reader.most_read() as i64 <= limit);
                }
            }
        }
        app.shutdown.trigger().await;
    })
    .await;
}

/// The runner fills a gap in the stream (a message whose previous position is not its
/// checkpoint) from the store, one page of `projection_catch_up_batch` events at a time, as it
/// catches up at start: never the whole range in one read and one transaction.
#[tokio::test]
async fn a_projection_fills_a_long_gap_in_the_stream_from_the_store_a_page_at_a_time() {
    within(async {
        const PAGE_OF_RUNNER: usize = 7;
        let app = app_without_workers().await;
        let names = Names::new(&app.settings.nats_prefix);
        let js = app.jetstream().await;
        store_with_holes(&app.pool, PAGE_OF_RUNNER as i64, 3).await;
        let caught_up = app.head().await;

        let batches = Arc::new(Mutex::new(Vec::new()));
        let recorder = Recorder {
            name: "paged-runner",
            batches: batches.clone(),
        };
        let runner = bountyline::workers::projection_runner(
            &app.pool,
            &js,
            &names,
            &bountyline::config::WorkerSettings {
                projection_catch_up_batch: PAGE_OF_RUNNER,
                ..app.settings.worker.clone()
            },
            format!("{}-paged-runner", app.settings.nats_prefix),
            vec![Arc::new(recorder)],
        );
        let running = RunningRunner::start(runner);
        app.wait_for_projection("paged-runner", caught_up).await;
        let at_start = take(&batches);
        assert_paged(&at_start, PAGE_OF_RUNNER, "catching up at start");
        assert_eq!(
            at_start.concat(),
            stored(&app.pool, Some(&["Probe"]), 0, caught_up).await
        );

        // Many more events, none of them published; then only the last one is: the runner's
        // checkpoint is far behind the position published before it.
        store_with_holes(&app.pool, PAGE_OF_RUNNER as i64, 40).await;
        store(&app.pool, "Probe", 1).await;
        let head = app.head().await;
        let before_last =
            sqlx::query_scalar("SELECT max(position) FROM events WHERE position < $1")
                .bind(head)
                .fetch_one(&app.pool)
                .await
                .expect("the position before the last");
        publish(&app, &js, head, before_last).await;
        app.wait_for_projection("paged-runner", head).await;
        let filled = take(&batches);
        assert_paged(&filled, PAGE_OF_RUNNER, "filling the gap");
        assert_eq!(
            filled.concat(),
            stored(&app.pool, Some(&["Probe"]), caught_up, head).await,
            "the gap's events, once each, in order"
        );

        running.stop().await;
        app.shutdown.trigger().await;
    })
    .await;
}

/// A rebuild's swap applies to the shadow what the live projection applied while it was
/// built; however much that is, it reads it a page at a time.
#[tokio::test]
async fn a_rebuild_swaps_in_what_live_applied_meanwhile_a_page_at_a_time() {
    within(async {
        let app = app_without_workers().await;
        store_with_holes(&app.pool, 100, 5).await;
        let built_to = app.head().await;
        // More than a page beyond what the shadow was built to, holes at the page's border.
        store(&app.pool, "Probe", PAGE as i32 - 2).await;
        hole(&app.pool, 3).await;
        store(&app.pool, "Probe", 2).await;
        hole(&app.pool, 1).await;
        store(&app.pool, "Other", 2).await;
        store_with_holes(&app.pool, 100, 7).await;
        let live = app.head().await;

        let batches = Arc::new(Mutex::new(Vec::new()));
        let recorder = Recorder {
            name: "paged_rebuild",
            batches: batches.clone(),
        };
        build_shadow(&app.pool, &recorder, Some(built_to), &|_, _| {})
            .await
            .expect("build the shadow");
        let built = take(&batches);
        assert_eq!(
            built.concat(),
            stored(&app.pool, Some(&["Probe"]), 0, built_to).await
        );
        let mut tx = app.pool.begin().await.expect("begin");
        checkpoint::lock(&mut tx, recorder.name)
            .await
            .expect("lock");
        checkpoint::store(&mut tx, recorder.name, live)
            .await
            .expect("the live projection's checkpoint");
        tx.commit().await.expect("commit");

        swap_in(&app.pool, &recorder, built_to)
            .await
            .expect("swap in");
        let swapped = take(&batches);
        assert_paged(&swapped, PAGE as usize, "swapping in");
        assert!(swapped.len() > 1, "{} events in one page", PAGE + 1);
        assert_eq!(
            swapped.concat(),
            stored(&app.pool, Some(&["Probe"]), built_to, live).await,
            "what live applied meanwhile, once each, in order"
        );
        assert_eq!(
            checkpoint::read(&app.pool, recorder.name)
                .await
                .expect("checkpoint"),
            live
        );
        app.shutdown.trigger().await;
    })
    .await;
}

/// The SSE hub, given a message whose previous position it has not seen (it resubscribed at
/// the stream's end, say), reads what it missed from the store a page at a time.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_hub_fills_a_long_gap_in_the_stream_from_the_store_a_page_at_a_time() {
    within(async {
        let app = app_without_workers().await;
        let js = app.jetstream().await;
        let reader = EventReader::new(app.pool.clone());
        let start = app.head().await;
        let (stop, stopped) = tokio::sync::watch::channel(false);
        // A ring that holds the whole gap: the client is fed by the hub, not its own catch-up.
        let hub = Hub::new(reader.clone(), 16_384, stopped, start);
        let following = tokio::spawn(
            hub.clone()
                .follow(js.clone(), Names::new(&app.settings.nats_prefix)),
        );
        let viewer = Actor::new(Uuid::new_v4(), vec![]);
        let slot = hub.admit(viewer.user_id, 1).expect("a place");
        let body = hub
            .subscribe(
                slot,
                Topic::Events,
                viewer,
                Some(start),
                64,
                futures::future::pending().boxed(),
            )
            .await
            .expect("subscribe");
        let mut ids = SseIds {
            body: MessageBody::boxed(body),
            text: String::new(),
        };

        // The hub follows the stream.
        store(&app.pool, "Probe", 1).await;
        let first = app.head().await;
        publish(&app, &js, first, start).await;
        assert_eq!(ids.until(first).await, [first]);

        // More than three pages the hub never got, holes at their borders; then the last one.
        for _ in 0..3 {
            store(&app.pool, "Probe", Hub::PAGE as i32 - 1).await;
            hole(&app.pool, 2).await;
            store(&app.pool, "Other", 1).await;
            hole(&app.pool, 1).await;
        }
        store_with_holes(&app.pool, 50, 5).await;
        let head = app.head().await;
        let before_last = stored(&app.pool, None, first, head - 1).await;
        let before_last = *before_last.last().expect("events before the last");
        publish(&app, &js, head, before_last).await;
        assert_eq!(
            ids.until(head).await,
            stored(&app.pool, None, first, head).await,
            "every event the hub missed, once each, in order, then the live one"
        );
        assert!(
            reader.most_read() as i64 <= Hub::PAGE,
            "one read of {} events, pages are {}",
            reader.most_read(),
            Hub::PAGE
        );

        stop.send(true).expect("stop the hub");
        following.await.expect("the hub stops");
        app.shutdown.trigger().await;
    })
    .await;
}

// ---------------------------------------------------------------------------------------------
// Helpers of this file.
// ---------------------------------------------------------------------------------------------

/// Stores `n` events of `aggregate_type` (each its own stream) in one transaction.
async fn store(pool: &PgPool, aggregate_type: &str, n: i32) {
    sqlx::query(
        "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, \
         event_version, payload, metadata) \
         SELECT $1, gen_random_uuid()::text, 1, $1 || 'Stored', '1', '{}'::jsonb, '{}'::jsonb \
         FROM generate_series(1, $2)",
    )
    .bind(aggregate_type)
    .bind(n)
    .execute(pool)
    .await
    .expect("store events");
}

/// An append of `n` events that rolls back: a hole of `n` positions.
async fn hole(pool: &PgPool, n: i32) {
    let mut tx = pool.begin().await.expect("begin");
    sqlx::query(
        "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, \
         event_version, payload, metadata) \
         SELECT 'Probe', gen_random_uuid()::text, 1, 'ProbeRolledBack', '1', '{}'::jsonb, \
         '{}'::jsonb FROM generate_series(1, $1)",
    )
    .bind(n)
    .execute(&mut *tx)
    .await
    .expect("an append to roll back");
    tx.rollback().await.expect("roll back");
}

/// `runs` runs of Probe events, each a page long give or take one, with a hole at or next to
/// each page's border and an event of another type now and then.
async fn store_with_holes(pool: &PgPool, page: i64, runs: i64) {
    for run in 0..runs {
        let n = page + run % 3 - 1;
        store(pool, "Probe", n.max(1) as i32).await;
        hole(pool, (run % 2 + 1) as i32).await;
        if run % 4 == 1 {
            store(pool, "Other", 1).await;
        }
    }
}

/// The stored positions in `(after, up_to]`, of `types` (every type for `None`), in order.
async fn stored(pool: &PgPool, types: Option<&[&str]>, after: i64, up_to: i64) -> Vec<i64> {
    let types: Option<Vec<String>> = types.map(|t| t.iter().map(|t| (*t).to_owned()).collect());
    sqlx::query_scalar(
        "SELECT position FROM events WHERE position > $1 AND position <= $2 \
         AND ($3::text[] IS NULL OR aggregate_type = ANY($3)) ORDER BY position",
    )
    .bind(after)
    .bind(up_to)
    .bind(types)
    .fetch_all(pool)
    .await
    .expect("stored positions")
}

/// Publishes the stored event at `position` to the app's stream as the relay would, naming
/// `prev` as the position published before it.
async fn publish(app: &TestApp, js: &async_nats::jetstream::Context, position: i64, prev: i64) {
    let event = EventReader::new(app.pool.clone())
        .after(position - 1, 1)
        .await
        .expect("read the event")
        .into_iter()
        .find(|e| e.position == position)
        .expect("the event is stored");
    let mut headers = async_nats::HeaderMap::new();
    headers.insert(HEADER_MSG_ID, event.event_id.to_string().as_str());
    headers.insert(HEADER_POSITION, position.to_string().as_str());
    headers.insert(HEADER_PREV_POSITION, prev.to_string().as_str());
    let subject = Names::new(&app.settings.nats_prefix).subject(&event.aggregate_type);
    let payload = serde_json::to_vec(&event).expect("encode");
    js.publish_with_headers(subject, headers, payload.into())
        .await
        .expect("publish")
        .await
        .expect("publish ack");
}

/// Every batch has at most `page` events.
fn assert_paged(batches: &[Vec<i64>], page: usize, what: &str) {
    let sizes: Vec<usize> = batches.iter().map(Vec::len).collect();
    assert!(
        sizes.iter().all(|size| *size <= page),
        "{what}: batches of {sizes:?}, pages are {page}"
    );
}

fn take(batches: &Mutex<Vec<Vec<i64>>>) -> Vec<Vec<i64>> {
    std::mem::take(&mut *batches.lock().expect("batches"))
}

/// Records the positions of every batch of Probe events it is given.
struct Recorder {
    name: &'static str,
    batches: Arc<Mutex<Vec<Vec<i64>>>>,
}

#[async_trait]
impl Projection for Recorder {
    fn name(&self) -> &'static str {
        self.name
    }

    fn tables(&self) -> &'static [&'static str] {
        &[]
    }

    fn aggregate_types(&self) -> Option<&'static [&'static str]> {
        Some(&["Probe"])
    }

    async fn apply(
        &self,
        tx: &mut Transaction<'static, Postgres>,
        event: &StoredEvent,
    ) -> Result<(), ProjectionError> {
        self.apply_batch(tx, std::slice::from_ref(event)).await
    }

    async fn apply_batch(
        &self,
        _tx: &mut Transaction<'static, Postgres>,
        events: &[StoredEvent],
    ) -> Result<(), ProjectionError> {
        if !events.is_empty() {
            let positions = events.iter().map(|e| e.position).collect();
            self.batches.lock().expect("batches").push(positions);
        }
        Ok(())
    }
}

/// The ids of an SSE body's messages, in the order they come.
struct SseIds {
    body: BoxBody,
    text: String,
}

impl SseIds {
    /// The ids up to and including `last`.
    async fn until(&mut self, last: i64) -> Vec<i64> {
        let mut ids = Vec::new();
        while ids.last() != Some(&last) {
            let chunk = tokio::time::timeout(
                Duration::from_secs(20),
                std::future::poll_fn(|cx| Pin::new(&mut self.body).poll_next(cx)),
            )
            .await
            .unwrap_or_else(|_| panic!("no message for 20 s; ids so far {ids:?}"))
            .expect("the stream goes on")
            .expect("a chunk");
            self.text
                .push_str(std::str::from_utf8(&chunk).expect("UTF-8"));
            while let Some(end) = self.text.find("\n\n") {
                let message: String = self.text.drain(..end + 2).collect();
                ids.extend(message.lines().find_map(|line| {
                    line.strip_prefix("id: ")
                        .and_then(|id| id.trim().parse::<i64>().ok())
                }));
            }
        }
        ids
    }
}
