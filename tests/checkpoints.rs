//! Checkpoints move forward only, and only past an event that was applied or can never be.
//!
//! - A worker that parks an event after another worker went past it must not take the
//!   projection's checkpoint back (the events in between would be applied twice); nor may a
//!   relay that lost its leadership take the relay's checkpoint back from the new leader.
//! - An event Postgres refuses only for the moment (a lock or statement timeout, a deadlock,
//!   a serialization failure) is retried until it applies, never parked.
//!
//! Every move of a checkpoint is recorded by a trigger the tests install, so a move back
//! shows even when a later move hides it from the final position.

mod common;

use async_trait::async_trait;
use bountyline::nats::Names;
use bountyline_projections::{checkpoint, Projection, ProjectionError, StoredEvent};
use common::*;
use secrecy::ExposeSecret;
use sqlx::{PgPool, Postgres, Transaction};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Semaphore;

const LIMIT: Duration = Duration::from_secs(20);

/// The tries the runner gives a failing event one by one before parking it
/// (`workers::projection_runner`'s `max_attempts`).
const TRIES_BEFORE_PARKING: usize = 3;

#[tokio::test]
async fn a_worker_parking_an_event_another_went_past_leaves_the_checkpoint_where_that_one_put_it() {
    let app = TestApp::spawn().await;
    let user = app.user("lagging").await;
    for n in 0..4 {
        app.create_task(&user, "lagging", &format!("task {n}"), 1)
            .await;
    }
    app.settle().await;
    record_moves(&app.pool, "projection_checkpoints").await;
    sqlx::query("CREATE TABLE applied (position bigint NOT NULL)")
        .execute(&app.pool)
        .await
        .expect("create applied");
    let tasks: Vec<i64> = sqlx::query_scalar(
        "SELECT position FROM events WHERE aggregate_type = 'Task' ORDER BY position",
    )
    .fetch_all(&app.pool)
    .await
    .expect("task positions");
    let poison = tasks[1];

    // This worker applies the first task, then fails the second until it parks it; its last
    // try waits for the test.
    let (last_try, gate) = (Arc::new(Semaphore::new(0)), Arc::new(Semaphore::new(0)));
    let lagging = Poisoned {
        poison,
        tries: AtomicUsize::new(0),
        last_try: last_try.clone(),
        gate: gate.clone(),
    };
    let js = app.jetstream().await;
    let running = RunningRunner::start(app.runner(js, LAGGING, vec![Arc::new(lagging)]));
    let _trying = tokio::time::timeout(LIMIT, last_try.acquire())
        .await
        .expect("the last try before parking")
        .expect("semaphore");

    // Meanwhile another worker queues for the checkpoint; it gets it when the last try rolls
    // back, applies everything after the poison and stores the head, all before the lagging
    // worker parks the poison.
    let head = app.head().await;
    let mut other = app.pool.begin().await.expect("begin");
    let pid: i32 = sqlx::query_scalar("SELECT pg_backend_pid()")
        .fetch_one(&mut *other)
        .await
        .expect("pid");
    let went_past = tasks[2..].to_vec();
    let other_worker = tokio::spawn(async move {
        let at = checkpoint::lock(&mut other, LAGGING).await.expect("lock");
        assert!(at < poison, "the other worker finds the poison ahead");
        sqlx::query("INSERT INTO applied SELECT unnest($1::bigint[])")
            .bind(&went_past)
            .execute(&mut *other)
            .await
            .expect("apply");
        checkpoint::store(&mut other, LAGGING, head)
            .await
            .expect("store");
        other.commit().await.expect("commit");
    });
    wait_until(LIMIT, "the other worker to wait for the checkpoint", || {
        waits_for_a_lock(&app.pool, pid)
    })
    .await;
    gate.add_permits(1);
    other_worker.await.expect("the other worker");
    wait_until(LIMIT, "the lagging worker to park the poison", || async {
        sqlx::query_scalar::<_, bool>(
            "SELECT exists(SELECT 1 FROM parked_events WHERE projection = $1 AND position = $2)",
        )
        .bind(LAGGING)
        .bind(poison)
        .fetch_one(&app.pool)
        .await
        .expect("parked")
    })
    .await;

    // A later event applied says the lagging worker is past everything before it.
    let later = app.create_task(&user, "lagging", "later", 1).await["position"]
        .as_i64()
        .expect("position");
    app.wait_for_projection(LAGGING, later).await;
    running.stop().await;

    assert_eq!(backward_moves(&app.pool).await, []);
    let applied: Vec<(i64, i64)> =
        sqlx::query_as("SELECT position, count(*) FROM applied GROUP BY 1 ORDER BY 1")
            .fetch_all(&app.pool)
            .await
            .expect("applied");
    let once: Vec<(i64, i64)> = [tasks[0]]
        .iter()
        .chain(&tasks[2..])
        .chain([&later])
        .map(|position| (*position, 1))
        .collect();
    assert_eq!(applied, once, "(position, times applied)");
    app.shutdown.trigger().await;
}

#[tokio::test]
async fn a_relay_that_lost_its_leadership_does_not_take_the_checkpoint_back() {
    let settings = test_settings(
        &fresh_database().await,
        &std::env::var("NATS_URL").expect("NATS_URL"),
    );
    // No relay of the app's own: the test's is the only one.
    let app = TestApp::spawn_with(settings, bountyline::startup::Parts::API).await;
    let user = app.user("relay").await;
    for n in 0..3 {
        app.create_task(&user, "relay", &format!("before {n}"), 1)
            .await;
    }
    record_moves(&app.pool, "relay_checkpoints").await;
    let (js, names) = (app.jetstream().await, Names::new(&app.settings.nats_prefix));
    let stream = names.stream();

    // The new leader holds the checkpoint while this relay publishes, so this relay's
    // checkpoint waits behind it.
    sqlx::query("INSERT INTO relay_checkpoints (stream) VALUES ($1)")
        .bind(&stream)
        .execute(&app.pool)
        .await
        .expect("checkpoint row");
    let mut leader = app.pool.begin().await.expect("begin");
    sqlx::query("SELECT 1 FROM relay_checkpoints WHERE stream = $1 FOR UPDATE")
        .bind(&stream)
        .execute(&mut *leader)
        .await
        .expect("hold the checkpoint");
    let relay = bountyline::relay::Relay {
        pool: app.pool.clone(),
        database_url: app.settings.database_url.expose_secret().to_owned(),
        js: js.clone(),
        names: names.clone(),
        batch: 1_000,
        idle_poll: Duration::from_secs(2),
    };
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let relaying = tokio::spawn(relay.run(stopped));
    wait_until(LIMIT, "the relay to wait for its checkpoint", || async {
        sqlx::query_scalar::<_, bool>(
            "SELECT exists(SELECT 1 FROM pg_stat_activity WHERE datname = current_database() \
             AND wait_event_type = 'Lock' AND query LIKE 'UPDATE relay_checkpoints%')",
        )
        .fetch_one(&app.pool)
        .await
        .expect("activity")
    })
    .await;

    // Meanwhile the new leader published further and stores where it got to.
    for n in 0..2 {
        app.create_task(&user, "relay", &format!("after {n}"), 1)
            .await;
    }
    let head = app.head().await;
    sqlx::query("UPDATE relay_checkpoints SET position = $2 WHERE stream = $1")
        .bind(&stream)
        .bind(head)
        .execute(&mut *leader)
        .await
        .expect("the leader's checkpoint");
    leader.commit().await.expect("commit");

    // The old relay goes on from its own checkpoint and publishes the later events again
    // (JetStream drops the copies); once they are in the stream, its stale write is behind it.
    let events = app.event_count().await as u64;
    wait_until(LIMIT, "every event in the stream", || async {
        let mut stream = js.get_stream(&stream).await.expect("stream");
        stream.info().await.expect("info").state.messages == events
    })
    .await;
    stop.send(true).expect("stop the relay");
    relaying.await.expect("relay task").expect("relay");

    assert_eq!(backward_moves(&app.pool).await, []);
    assert_eq!(app.relay_at(&stream).await, head);
    app.shutdown.trigger().await;
}

#[tokio::test]
async fn an_event_that_meets_a_lock_held_elsewhere_is_applied_once_the_lock_goes_not_parked() {
    let app = TestApp::spawn().await;
    let user = app.user("blocked").await;
    sqlx::raw_sql(
        "CREATE TABLE obstacle (id int PRIMARY KEY, applied int NOT NULL); \
         INSERT INTO obstacle VALUES (1, 0)",
    )
    .execute(&app.pool)
    .await
    .expect("create obstacle");
    // A long transaction elsewhere holds the row every apply writes.
    let mut holder = app.pool.begin().await.expect("begin");
    sqlx::query("SELECT 1 FROM obstacle WHERE id = 1 FOR UPDATE")
        .execute(&mut *holder)
        .await
        .expect("hold the row");
    app.create_task(&user, "blocked", "waits for the lock", 1)
        .await;
    let head = app.head().await;

    let blocked = Arc::new(Blocked {
        timeouts: AtomicUsize::new(0),
    });
    let js = app.jetstream().await;
    let running = RunningRunner::start(app.runner(js, BLOCKED, vec![blocked.clone()]));
    // More tries than the runner gives an event it would park.
    wait_until(LIMIT, "the apply to time out again and again", || async {
        blocked.timeouts.load(Ordering::SeqCst) > TRIES_BEFORE_PARKING
    })
    .await;
    holder.rollback().await.expect("release the row");
    app.wait_for_projection(BLOCKED, head).await;
    running.stop().await;

    let applied: i32 = sqlx::query_scalar("SELECT applied FROM obstacle WHERE id = 1")
        .fetch_one(&app.pool)
        .await
        .expect("applied");
    assert_eq!(applied, 1, "the task's event applied once");
    assert_eq!(parked(&app.pool, BLOCKED).await, 0);
    app.shutdown.trigger().await;
}

#[tokio::test]
async fn deadlocks_serialization_failures_and_timeouts_are_retried_not_parked() {
    let app = TestApp::spawn().await;
    let user = app.user("refused").await;
    sqlx::query("CREATE TABLE applied (position bigint NOT NULL)")
        .execute(&app.pool)
        .await
        .expect("create applied");
    app.create_task(&user, "refused", "refused for the moment", 1)
        .await;
    let head = app.head().await;

    let refused = Refused {
        tries: AtomicUsize::new(0),
    };
    let js = app.jetstream().await;
    let running = RunningRunner::start(app.runner(js, REFUSED, vec![Arc::new(refused)]));
    app.wait_for_projection(REFUSED, head).await;
    running.stop().await;

    let applied: i64 = sqlx::query_scalar("SELECT count(*) FROM applied")
        .fetch_one(&app.pool)
        .await
        .expect("applied");
    assert_eq!(applied, 1, "the task's event applied once");
    assert_eq!(parked(&app.pool, REFUSED).await, 0);
    app.shutdown.trigger().await;
}

// ---------------------------------------------------------------------------------------------
// Helpers of this file.
// ---------------------------------------------------------------------------------------------

const LAGGING: &str = "lagging-worker";
const BLOCKED: &str = "blocked-probe";
const REFUSED: &str = "refused-probe";

/// Reads task events: applies each by recording its position in `applied`, but never the
/// `poison`; its last try before the runner parks the poison waits for `gate`.
struct Poisoned {
    poison: i64,
    tries: AtomicUsize,
    last_try: Arc<Semaphore>,
    gate: Arc<Semaphore>,
}

#[async_trait]
impl Projection for Poisoned {
    fn name(&self) -> &'static str {
        LAGGING
    }

    fn tables(&self) -> &'static [&'static str] {
        &[]
    }

    fn aggregate_types(&self) -> Option<&'static [&'static str]> {
        Some(&["Task"])
    }

    async fn apply(
        &self,
        tx: &mut Transaction<'static, Postgres>,
        event: &StoredEvent,
    ) -> Result<(), ProjectionError> {
        if event.position == self.poison {
            if self.tries.fetch_add(1, Ordering::SeqCst) + 1 == TRIES_BEFORE_PARKING {
                self.last_try.add_permits(1);
                let _open = self.gate.acquire().await.expect("gate");
            }
            return Err(ProjectionError::Invalid("cannot be applied".into()));
        }
        sqlx::query("INSERT INTO applied VALUES ($1)")
            .bind(event.position)
            .execute(&mut **tx)
            .await?;
        Ok(())
    }

    /// A batch holding the poison fails whole, without counting as one of its tries.
    async fn apply_batch(
        &self,
        tx: &mut Transaction<'static, Postgres>,
        events: &[StoredEvent],
    ) -> Result<(), ProjectionError> {
        if events.iter().any(|event| event.position == self.poison) {
            return Err(ProjectionError::Invalid("a batch with the poison".into()));
        }
        for event in events {
            self.apply(tx, event).await?;
        }
        Ok(())
    }
}

/// Reads task events: each adds one to the obstacle row, giving up on its lock after 50 ms.
struct Blocked {
    timeouts: AtomicUsize,
}

#[async_trait]
impl Projection for Blocked {
    fn name(&self) -> &'static str {
        BLOCKED
    }

    fn tables(&self) -> &'static [&'static str] {
        &[]
    }

    fn aggregate_types(&self) -> Option<&'static [&'static str]> {
        Some(&["Task"])
    }

    async fn apply(
        &self,
        tx: &mut Transaction<'static, Postgres>,
        _event: &StoredEvent,
    ) -> Result<(), ProjectionError> {
        sqlx::query("SET LOCAL lock_timeout = '50ms'")
            .execute(&mut **tx)
            .await?;
        let written = sqlx::query("UPDATE obstacle SET applied = applied + 1 WHERE id = 1")
            .execute(&mut **tx)
            .await;
        if written.is_err() {
            self.timeouts.fetch_add(1, Ordering::SeqCst);
        }
        written?;
        Ok(())
    }
}

/// What Postgres answers a sound statement with for the moment: a deadlock, a serialization
/// failure, a lock not available, a statement or lock timeout.
const FOR_THE_MOMENT: [&str; 4] = ["40P01", "40001", "55P03", "57014"];

/// Reads task events: its first tries are refused with each of [`FOR_THE_MOMENT`] in turn (as
/// many as the runner gives an event before parking it, and one more), then each applies by
/// recording its position in `applied`.
struct Refused {
    tries: AtomicUsize,
}

#[async_trait]
impl Projection for Refused {
    fn name(&self) -> &'static str {
        REFUSED
    }

    fn tables(&self) -> &'static [&'static str] {
        &[]
    }

    fn aggregate_types(&self) -> Option<&'static [&'static str]> {
        Some(&["Task"])
    }

    async fn apply(
        &self,
        tx: &mut Transaction<'static, Postgres>,
        event: &StoredEvent,
    ) -> Result<(), ProjectionError> {
        if let Some(code) = FOR_THE_MOMENT.get(self.tries.fetch_add(1, Ordering::SeqCst)) {
            sqlx::query(&format!(
                "DO $$ BEGIN RAISE EXCEPTION 'refused for the moment' USING ERRCODE = '{code}'; END $$"
            ))
            .execute(&mut **tx)
            .await?;
        }
        sqlx::query("INSERT INTO applied VALUES ($1)")
            .bind(event.position)
            .execute(&mut **tx)
            .await?;
        Ok(())
    }
}

/// Records every update of a position in `table` (`projection_checkpoints` or
/// `relay_checkpoints`) into `checkpoint_moves`.
async fn record_moves(pool: &PgPool, table: &str) {
    sqlx::raw_sql(&format!(
        "CREATE TABLE IF NOT EXISTS checkpoint_moves (from_position bigint, to_position bigint); \
         CREATE OR REPLACE FUNCTION record_checkpoint_move() RETURNS trigger LANGUAGE plpgsql AS $$ \
           BEGIN INSERT INTO checkpoint_moves VALUES (OLD.position, NEW.position); RETURN NEW; END $$; \
         CREATE TRIGGER record_moves AFTER UPDATE ON {table} \
           FOR EACH ROW EXECUTE FUNCTION record_checkpoint_move()"
    ))
    .execute(pool)
    .await
    .expect("record checkpoint moves");
}

/// Every move of a checkpoint back, `(from, to)`.
async fn backward_moves(pool: &PgPool) -> Vec<(i64, i64)> {
    sqlx::query_as(
        "SELECT from_position, to_position FROM checkpoint_moves WHERE to_position < from_position",
    )
    .fetch_all(pool)
    .await
    .expect("checkpoint moves")
}

/// Whether the backend `pid` is waiting for a lock.
async fn waits_for_a_lock(pool: &PgPool, pid: i32) -> bool {
    sqlx::query_scalar(
        "SELECT coalesce(wait_event_type = 'Lock', false) FROM pg_stat_activity WHERE pid = $1",
    )
    .bind(pid)
    .fetch_optional(pool)
    .await
    .expect("activity")
    .unwrap_or(false)
}

/// How many events `projection` parked.
async fn parked(pool: &PgPool, projection: &str) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM parked_events WHERE projection = $1")
        .bind(projection)
        .fetch_one(pool)
        .await
        .expect("parked")
}
