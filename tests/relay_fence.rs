//! A relay publishes only while it leads, also under a load that never lets it idle: once the
//! session that holds its lock has ended (and another may have taken the lock), it publishes
//! at most the batch it had under way and stores no checkpoint, until it leads again.

mod common;

use async_nats::jetstream;
use bountyline::nats::Names;
use bountyline::relay::{Relay, RELAY_LOCK};
use bountyline::startup::Parts;
use bountyline_projections::wire::{HEADER_MSG_ID, HEADER_POSITION};
use bountyline_wire::{Cut, Proxy, Rule};
use common::*;
use secrecy::ExposeSecret;
use sqlx::{Connection, PgConnection, PgPool};
use std::collections::HashSet;
use std::future::Future;
use std::time::Duration;
use uuid::Uuid;

/// Every test here finishes within this, whatever hangs.
const TEST_LIMIT: Duration = Duration::from_secs(180);

async fn within<F: Future<Output = ()>>(test: F) {
    tokio::time::timeout(TEST_LIMIT, test)
        .await
        .unwrap_or_else(|_| panic!("the test did not finish within {TEST_LIMIT:?}"));
}

/// Events the relay reads (and publishes) at a time: small, so that the backlog keeps it busy.
const BATCH: i64 = 5;
/// More than the relay publishes in the test's time unless it is stopped.
const BACKLOG: i32 = 3_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_relay_whose_lock_session_ends_under_load_stops_within_a_batch_until_it_leads_again() {
    within(async {
        let nats_url = std::env::var("NATS_URL").expect("NATS_URL (run scripts/test)");
        // No relay of the app's own: the test's is the only one.
        let app = TestApp::spawn_with(
            test_settings(&fresh_database().await, &nats_url),
            Parts::API,
        )
        .await;
        let (js, names) = (app.jetstream().await, Names::new(&app.settings.nats_prefix));
        let stream = names.stream();
        store(&app.pool, BACKLOG).await;
        let head = app.head().await;

        let relay = Relay {
            pool: app.pool.clone(),
            database_url: app.settings.database_url.expose_secret().to_owned(),
            js: js.clone(),
            names: names.clone(),
            batch: BATCH,
            // The backlog keeps it busy: it must never get to idle.
            idle_poll: Duration::from_secs(3_600),
        };
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let relaying = tokio::spawn(relay.run(stopped));
        wait_until(Duration::from_secs(30), "the relay to publish", || async {
            app.relay_at(&stream).await >= 20 * BATCH
        })
        .await;
        let interruptions = app.counter("bountyline_relay_errors_total").await;

        // Its lock's session ends, and the test takes the lock as a new leader would.
        let mut usurper = PgConnection::connect(app.settings.database_url.expose_secret())
            .await
            .expect("connect");
        depose(&app.pool, &mut usurper).await;
        let stored_at = app.relay_at(&stream).await;
        assert!(
            stored_at < head,
            "the relay published the whole backlog before it was deposed"
        );
        // What the relay can have published: up to its checkpoint, and one batch under way.
        let publishable = events_through(&app.pool, stored_at).await + BATCH as u64;
        wait_until(
            Duration::from_secs(20),
            "the relay to report its interruption",
            || async { app.counter("bountyline_relay_errors_total").await > interruptions },
        )
        .await;
        stays_true(
            Duration::from_secs(2),
            "the deposed relay to stay stopped",
            || async {
                let (at, published) = (app.relay_at(&stream).await, messages(&js, &stream).await);
                assert_eq!(at, stored_at, "the deposed relay stored a checkpoint");
                assert!(
                    published <= publishable,
                    "the deposed relay went on publishing: {published} messages, \
                     {publishable} at most"
                );
                true
            },
        )
        .await;

        // The test's leadership ends: the relay leads again and publishes the rest, once.
        usurper.close().await.expect("release the lock");
        app.wait_for_relay(head, Duration::from_secs(120)).await;
        stop.send(true).expect("stop the relay");
        relaying.await.expect("relay task").expect("relay");
        assert_stream_holds_every_event_once_in_order(&app.pool, &js, &stream).await;
        app.shutdown.trigger().await;
    })
    .await;
}

/// The deposed relay's two last steps, each caught where it waits: a batch it read after its
/// lock's session ended is not published, and a batch it published before is not stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_deposed_relay_neither_publishes_what_it_read_nor_stores_what_it_published() {
    within(async {
        let nats_url = std::env::var("NATS_URL").expect("NATS_URL (run scripts/test)");
        let app = TestApp::spawn_with(
            test_settings(&fresh_database().await, &nats_url),
            Parts::API,
        )
        .await;
        let (js, names) = (app.jetstream().await, Names::new(&app.settings.nats_prefix));
        let stream = names.stream();
        store(&app.pool, BACKLOG).await;
        let head = app.head().await;
        let relay = Relay {
            pool: app.pool.clone(),
            database_url: app.settings.database_url.expose_secret().to_owned(),
            js: js.clone(),
            names: names.clone(),
            batch: BATCH,
            idle_poll: Duration::from_secs(3_600),
        };
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let relaying = tokio::spawn(relay.run(stopped));
        wait_until(Duration::from_secs(30), "the relay to publish", || async {
            app.relay_at(&stream).await >= 20 * BATCH
        })
        .await;

        // Held at its next read (the events table locked), it loses its session, then reads.
        let mut reads = app.pool.begin().await.expect("begin");
        sqlx::query("LOCK TABLE events IN ACCESS EXCLUSIVE MODE")
            .execute(&mut *reads)
            .await
            .expect("hold the relay's reads");
        wait_until(Duration::from_secs(20), "the relay to wait to read", || {
            waits_on(&app.pool, "SELECT position, event_id")
        })
        .await;
        let (stored_at, published) = (app.relay_at(&stream).await, messages(&js, &stream).await);
        let interruptions = app.counter("bountyline_relay_errors_total").await;
        let mut usurper = PgConnection::connect(app.settings.database_url.expose_secret())
            .await
            .expect("connect");
        depose(&app.pool, &mut usurper).await;
        reads.rollback().await.expect("let the relay read");
        assert_eq!(
            published,
            events_through(&app.pool, stored_at).await,
            "held at its read, the relay had published what it stored, no more"
        );
        wait_until(
            Duration::from_secs(20),
            "the relay to report its interruption",
            || async { app.counter("bountyline_relay_errors_total").await > interruptions },
        )
        .await;
        stays_true(Duration::from_secs(1), "nothing more published", || async {
            assert_eq!(
                messages(&js, &stream).await,
                published,
                "the deposed relay published the batch it read"
            );
            assert_eq!(app.relay_at(&stream).await, stored_at);
            true
        })
        .await;

        // Leading again, it is held at its checkpoint (the row locked) and loses its session.
        usurper.close().await.expect("release the lock");
        wait_until(
            Duration::from_secs(30),
            "the relay to lead again",
            || async { app.relay_at(&stream).await > stored_at },
        )
        .await;
        let mut checkpoints = app.pool.begin().await.expect("begin");
        sqlx::query("SELECT 1 FROM relay_checkpoints WHERE stream = $1 FOR UPDATE")
            .bind(&stream)
            .execute(&mut *checkpoints)
            .await
            .expect("hold the relay's checkpoint");
        wait_until(
            Duration::from_secs(20),
            "the relay to wait to store",
            || waits_on(&app.pool, "UPDATE relay_checkpoints"),
        )
        .await;
        let stored_at = app.relay_at(&stream).await;
        assert!(
            messages(&js, &stream).await > events_through(&app.pool, stored_at).await,
            "the relay waits to store a batch it published"
        );
        let mut usurper = PgConnection::connect(app.settings.database_url.expose_secret())
            .await
            .expect("connect");
        depose(&app.pool, &mut usurper).await;
        checkpoints.rollback().await.expect("let the relay store");
        stays_true(Duration::from_secs(1), "no checkpoint stored", || async {
            assert_eq!(
                app.relay_at(&stream).await,
                stored_at,
                "the deposed relay stored its checkpoint"
            );
            true
        })
        .await;

        usurper.close().await.expect("release the lock");
        app.wait_for_relay(head, Duration::from_secs(120)).await;
        stop.send(true).expect("stop the relay");
        relaying.await.expect("relay task").expect("relay");
        assert_stream_holds_every_event_once_in_order(&app.pool, &js, &stream).await;
        app.shutdown.trigger().await;
    })
    .await;
}

/// What the relay hands JetStream survives a crash of Postgres. An event can be committed and
/// not yet durable: the committer commits its groups asynchronously and answers them once the
/// WAL is flushed past them (docs/adr/0005). The relay publishes such an event only once the
/// WAL is flushed past it, so a crash right after the publish cannot take away an event that
/// the projections and the SSE clients already have (and hand its position to another).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_relay_publishes_only_what_survives_a_crash_of_postgres() {
    within(async {
        // The WAL writer flushes asynchronous commits only every 10 s: what no statement
        // flushes stays in Postgres's memory until then, and a crash loses it.
        let pg = PrivatePostgres::start(&["wal_writer_delay=10000ms"]);
        let db = pg.fresh_database().await;
        let nats_url = std::env::var("NATS_URL").expect("NATS_URL (run scripts/test)");
        let app = TestApp::spawn_with(test_settings(&db, &nats_url), Parts::API).await;
        let (js, names) = (app.jetstream().await, Names::new(&app.settings.nats_prefix));
        let stream = names.stream();
        store(&app.pool, 3).await;

        // The relay reaches Postgres through the fault proxy, which will keep it from storing
        // its checkpoint: that synchronous commit would flush the WAL past what it published.
        let wire = Proxy::start(([127, 0, 0, 1], pg.port).into())
            .await
            .expect("the fault proxy");
        let via_wire = db.replacen(
            &format!(":{}/", pg.port),
            &format!(":{}/", wire.address().port()),
            1,
        );
        let relay = Relay {
            pool: PgPool::connect(&via_wire).await.expect("connect"),
            database_url: via_wire,
            js: js.clone(),
            names: names.clone(),
            batch: 100,
            idle_poll: Duration::from_millis(50),
        };
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let relaying = tokio::spawn(relay.run(stopped));
        app.wait_for_relay(app.head().await, Duration::from_secs(30))
            .await;
        wire.arm(Rule {
            application: None,
            statement: "UPDATE relay_checkpoints".into(),
            cut: Cut::BeforeSending,
            times: usize::MAX,
        });

        // A group committed and not yet flushed, as the committer leaves it until its flusher
        // is answered.
        let mut committer = PgConnection::connect(&db).await.expect("connect");
        sqlx::query("SET synchronous_commit = off")
            .execute(&mut committer)
            .await
            .expect("commit asynchronously");
        sqlx::query(
            "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, \
             event_version, payload, metadata) \
             VALUES ('Probe', gen_random_uuid()::text, 1, 'ProbeStored', '1', '{}', '{}')",
        )
        .execute(&mut committer)
        .await
        .expect("store an event");
        wait_until(
            Duration::from_secs(30),
            "the relay to publish it",
            || async { messages(&js, &stream).await == 4 && wire.fired() > 0 },
        )
        .await;
        pg.stop("immediate");
        pg.start_again();
        stop.send(true).expect("stop the relay");
        let _ = relaying.await.expect("relay task");

        let stored: HashSet<(Uuid, i64)> = sqlx::query_as("SELECT event_id, position FROM events")
            .fetch_all(&PgPool::connect(&db).await.expect("connect after the crash"))
            .await
            .expect("stored events")
            .into_iter()
            .collect();
        let lost: Vec<_> = published(&js, &stream)
            .await
            .into_iter()
            .filter(|event| !stored.contains(event))
            .collect();
        assert!(
            lost.is_empty(),
            "the stream holds events the store lost in the crash: {lost:?}"
        );
        app.shutdown.trigger().await;
    })
    .await;
}

/// Whether a statement starting with `statement` waits for a lock in this database.
async fn waits_on(pool: &PgPool, statement: &str) -> bool {
    sqlx::query_scalar(
        "SELECT exists(SELECT 1 FROM pg_stat_activity WHERE datname = current_database() \
         AND wait_event_type = 'Lock' AND starts_with(query, $1))",
    )
    .bind(statement)
    .fetch_one(pool)
    .await
    .expect("activity")
}

/// Ends the session holding the relay's lock and takes the lock on `usurper`, trying again
/// should the relay have taken it back in between.
async fn depose(pool: &PgPool, usurper: &mut PgConnection) {
    for _ in 0..50 {
        let holder: Option<i32> = sqlx::query_scalar(
            "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted \
             AND database = (SELECT oid FROM pg_database WHERE datname = current_database()) \
             AND classid = ($1 >> 32)::oid AND objid = ($1 & 4294967295)::oid AND objsubid = 1",
        )
        .bind(RELAY_LOCK)
        .fetch_optional(pool)
        .await
        .expect("the lock's holder");
        if let Some(pid) = holder {
            let ended: bool = sqlx::query_scalar("SELECT pg_terminate_backend($1, 5000)")
                .bind(pid)
                .fetch_one(pool)
                .await
                .expect("terminate the relay's session");
            assert!(ended, "the relay's session {pid} did not end");
        }
        let taken: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
            .bind(RELAY_LOCK)
            .fetch_one(&mut *usurper)
            .await
            .expect("try the lock");
        if taken {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("the relay's lock could not be taken from it");
}

/// Checks `check` for `period`; it asserts what must not change, and says whether to go on.
async fn stays_true<F, Fut>(period: Duration, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let end = tokio::time::Instant::now() + period;
    while tokio::time::Instant::now() < end {
        assert!(check().await, "{what}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// Stores `n` events (each its own stream) in one transaction.
async fn store(pool: &PgPool, n: i32) {
    sqlx::query(
        "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, \
         event_version, payload, metadata) \
         SELECT 'Probe', gen_random_uuid()::text, 1, 'ProbeStored', '1', '{}'::jsonb, \
         '{}'::jsonb FROM generate_series(1, $1)",
    )
    .bind(n)
    .execute(pool)
    .await
    .expect("store events");
}

/// How many events the store holds up to `position`.
async fn events_through(pool: &PgPool, position: i64) -> u64 {
    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM events WHERE position <= $1")
        .bind(position)
        .fetch_one(pool)
        .await
        .expect("count events");
    count as u64
}

/// How many messages the stream holds.
async fn messages(js: &jetstream::Context, stream: &str) -> u64 {
    let mut stream = js.get_stream(stream).await.expect("stream");
    stream.info().await.expect("stream info").state.messages
}

/// The stream holds each stored event once, under its event id, in position order.
async fn assert_stream_holds_every_event_once_in_order(
    pool: &PgPool,
    js: &jetstream::Context,
    stream: &str,
) {
    let stored: Vec<(Uuid, i64)> =
        sqlx::query_as("SELECT event_id, position FROM events ORDER BY position")
            .fetch_all(pool)
            .await
            .expect("stored events");
    let published = published(js, stream).await;
    let distinct: HashSet<Uuid> = published.iter().map(|(id, _)| *id).collect();
    assert_eq!(
        distinct.len(),
        published.len(),
        "an event is in the stream twice"
    );
    assert_eq!(
        published, stored,
        "the stream is not the store, once each, in position order"
    );
}

/// The event id and position of each message in the stream, in the stream's order.
async fn published(js: &jetstream::Context, stream: &str) -> Vec<(Uuid, i64)> {
    let stream = js.get_stream(stream).await.expect("stream");
    let state = stream.get_info().await.expect("stream info").state;
    let mut published = Vec::with_capacity(state.messages as usize);
    if state.messages > 0 {
        for seq in state.first_sequence..=state.last_sequence {
            let message = stream.get_raw_message(seq).await.expect("stream message");
            let header = |name: &str| {
                message
                    .headers
                    .get(name)
                    .map(|v| v.as_str().to_owned())
                    .unwrap_or_else(|| panic!("message {seq} has no {name}"))
            };
            let id: Uuid = header(HEADER_MSG_ID).parse().expect("an event id");
            let position: i64 = header(HEADER_POSITION).parse().expect("a position");
            published.push((id, position));
        }
    }
    published
}
