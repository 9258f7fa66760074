//! The event pipeline end to end: events table → relay → JetStream → projection runner →
//! read model (DESIGN.md guarantees 4, 5, 6, 7 and 8), against real Postgres and NATS.

mod common;

use async_nats::jetstream;
use bountyline::nats::Names;
use bountyline_projections::checkpoint;
use bountyline_projections::rebuild::{build_shadow, diff, rebuild};
use bountyline_projections::tasks::TasksProjection;
use bountyline_projections::wire::{HEADER_MSG_ID, HEADER_POSITION};
use common::*;
use futures::StreamExt;
use secrecy::ExposeSecret;
use serde_json::{json, Value};
use sqlx::Connection;
use std::collections::HashSet;
use std::future::Future;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;
use uuid::Uuid;

/// Every test here finishes within this, whatever hangs.
const TEST_LIMIT: Duration = Duration::from_secs(120);

async fn within<F: Future<Output = ()>>(test: F) {
    tokio::time::timeout(TEST_LIMIT, test)
        .await
        .unwrap_or_else(|_| panic!("the test did not finish within {TEST_LIMIT:?}"));
}

// ---------------------------------------------------------------------------------------------
// Guarantees 4 and 8: NATS down delays projections, loses nothing, blocks no command.
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn no_event_is_lost_while_nats_is_down() {
    within(async {
        let mut nats = PrivateNats::start().await;
        let db = fresh_database().await;
        let app = TestApp::spawn_with(
            test_settings(&db, &nats.url()),
            bountyline::startup::Parts::ALL,
        )
        .await;
        let alice = app.user("alice").await;

        let mut ids = Vec::new();
        for i in 0..2 {
            let created = app
                .create_task(&alice, "outage", &format!("before {i}"), 0)
                .await;
            ids.push(id_of(&created));
        }
        let before = app.head().await;
        app.wait_for_projection("tasks", before).await;

        nats.stop();
        let mut positions = Vec::new();
        for i in 0..20 {
            // create_task asserts 201: commands never wait for the broker.
            let created = app
                .create_task(&alice, "outage", &format!("during {i}"), 0)
                .await;
            ids.push(id_of(&created));
            positions.push(position_of(&created));
        }
        assert!(positions[0] > before);
        stays_true(
            Duration::from_millis(800),
            "the projection to stay behind NATS",
            || async { projection_at(&app).await <= before },
        )
        .await;

        nats.restart().await;
        let head = app.head().await;
        assert_eq!(head, *positions.last().expect("positions"));
        app.wait_for_relay(head, Duration::from_secs(40)).await;
        wait_until(
            Duration::from_secs(40),
            "tasks to catch up after NATS returned",
            || async { projection_at(&app).await >= head },
        )
        .await;

        for id in &ids {
            let res = app.get(&alice, &format!("/v1/tasks/{id}")).await;
            assert_eq!(res.status(), 200, "task {id} is readable after the outage");
        }
        let js = jetstream_of(&app).await;
        assert_stream_holds_every_event_once_in_order(&app, &js).await;
        app.shutdown.trigger().await;
    })
    .await;
}

/// Guarantee 9 across a broker outage: a connected SSE client must still receive every event,
/// in order, once the relay publishes what piled up. Ignored until src/sse/hub.rs resumes its
/// subscription where it stopped (it resubscribes with `DeliverPolicy::New` and silently drops
/// what was published in between); takes about a minute while async-nats notices the
/// ordered consumer is gone.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_live_sse_client_misses_nothing_across_a_nats_restart() {
    within(async {
        let mut nats = PrivateNats::start().await;
        let db = fresh_database().await;
        let app = TestApp::spawn_with(
            test_settings(&db, &nats.url()),
            bountyline::startup::Parts::ALL,
        )
        .await;
        let alice = app.user("alice").await;
        let js = jetstream_of(&app).await;
        let stream_name = Names::new(&app.settings.nats_prefix).stream();
        wait_until(
            Duration::from_secs(10),
            "the SSE hub to follow the stream",
            || async {
                match js.get_stream(&stream_name).await {
                    Ok(stream) => stream.cached_info().state.consumer_count >= 2,
                    Err(_) => false,
                }
            },
        )
        .await;
        let res = app
            .client
            .get(app.url("/v1/streams/tasks"))
            .bearer_auth(&alice.access_token)
            .send()
            .await
            .expect("subscribe");
        assert_eq!(res.status(), 200);
        let mut sse = SseIds::new(res);

        let mut expected = Vec::new();
        for i in 0..2 {
            expected.push(position_of(
                &app.create_task(&alice, "live", &format!("before {i}"), 0)
                    .await,
            ));
        }
        assert_eq!(sse.next_ids(2, Duration::from_secs(10)).await, expected);

        nats.stop();
        let mut expected = Vec::new();
        for i in 0..5 {
            expected.push(position_of(
                &app.create_task(&alice, "live", &format!("during {i}"), 0)
                    .await,
            ));
        }
        nats.restart().await;
        app.settle().await;
        expected.push(position_of(
            &app.create_task(&alice, "live", "after", 0).await,
        ));
        assert_eq!(sse.next_ids(6, Duration::from_secs(90)).await, expected);
        app.shutdown.trigger().await;
    })
    .await;
}

/// Just enough SSE to follow message ids (tests/sse.rs has the full reader).
struct SseIds {
    body: std::pin::Pin<Box<dyn futures::Stream<Item = reqwest::Result<bytes::Bytes>> + Send>>,
    text: String,
}

impl SseIds {
    fn new(res: reqwest::Response) -> SseIds {
        SseIds {
            body: Box::pin(res.bytes_stream()),
            text: String::new(),
        }
    }

    /// The next `n` message ids, whatever else arrives; fails if they take longer than `limit`.
    async fn next_ids(&mut self, n: usize, limit: Duration) -> Vec<i64> {
        use futures::StreamExt;
        let deadline = tokio::time::Instant::now() + limit;
        let mut ids = Vec::new();
        loop {
            while let Some(end) = self.text.find('\n') {
                let line: String = self.text.drain(..=end).collect();
                if let Some(id) = line.trim_end().strip_prefix("id:") {
                    ids.push(id.trim().parse().expect("id is a position"));
                    if ids.len() == n {
                        return ids;
                    }
                }
            }
            match tokio::time::timeout_at(deadline, self.body.next()).await {
                Ok(Some(chunk)) => self
                    .text
                    .push_str(&String::from_utf8_lossy(&chunk.expect("stream chunk"))),
                Ok(None) => panic!("the stream ended after ids {ids:?}"),
                Err(_) => panic!("only ids {ids:?} of {n} arrived within {limit:?}"),
            }
        }
    }
}

/// A nats-server of this test's own, so it can be killed and restarted with its store.
struct PrivateNats {
    child: Option<Child>,
    port: u16,
    store: PathBuf,
}

impl PrivateNats {
    async fn start() -> PrivateNats {
        let port = free_port();
        let store = std::env::temp_dir().join(format!("bl-nats-{}", Uuid::new_v4().simple()));
        std::fs::create_dir_all(&store).expect("create the NATS store dir");
        let mut nats = PrivateNats {
            child: None,
            port,
            store,
        };
        nats.restart().await;
        nats
    }

    fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// Starts the server (again) on the same port and store, and waits until it accepts.
    async fn restart(&mut self) {
        let bin = std::env::var("NATS_SERVER_BIN")
            .expect("NATS_SERVER_BIN is not set: source .data/env (scripts/test does)");
        let child = Command::new(bin)
            .args([
                "-js",
                "-a",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-sd",
            ])
            .arg(&self.store)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start nats-server");
        self.child = Some(child);
        let addr = format!("127.0.0.1:{}", self.port);
        wait_until(
            Duration::from_secs(15),
            "the private nats-server to accept",
            || {
                let addr = addr.clone();
                async move { tokio::net::TcpStream::connect(addr).await.is_ok() }
            },
        )
        .await;
    }

    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for PrivateNats {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.store);
    }
}

fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    listener.local_addr().expect("local addr").port()
}

// ---------------------------------------------------------------------------------------------
// Guarantee 1: acknowledged means durable, also when Postgres itself crashes.
// ---------------------------------------------------------------------------------------------

/// Postgres crashes (`pg_ctl stop -m immediate`: no checkpoint, whatever it had not written is
/// gone) right after the last of a burst of commands was answered, and starts again: every
/// command the client was told succeeded has its event at the version and position it was
/// told, and nothing else is there. The server is one of this test's own (`PrivatePostgres`):
/// the shared one serves every other test.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn acknowledged_commands_survive_postgres_crashing_right_after_answering() {
    within(async {
        let pg = PrivatePostgres::start(&[]);
        let db = pg.fresh_database().await;
        let nats = std::env::var("NATS_URL").expect("NATS_URL");
        let app =
            TestApp::spawn_with(test_settings(&db, &nats), bountyline::startup::Parts::API).await;
        let alice = app.user("alice").await;

        // One at a time, then a burst that the committer groups; the crash follows the last
        // answer at once.
        let mut told = Vec::new();
        for i in 0..10 {
            told.push(
                app.create_task(&alice, "durable", &format!("one {i}"), 0)
                    .await,
            );
        }
        let titles: Vec<String> = (0..50).map(|i| format!("burst {i}")).collect();
        let burst = titles
            .iter()
            .map(|title| app.create_task(&alice, "durable", title, 0));
        told.extend(futures::future::join_all(burst).await);
        pg.stop("immediate");
        pg.start_again();
        assert!(
            pg.log().contains("automatic recovery in progress"),
            "the stop was not a crash: {}",
            pg.log()
        );

        let mut told: Vec<(String, i64, i64)> = told
            .iter()
            .map(|answer| {
                (
                    id_of(answer),
                    answer["version"].as_i64().expect("a version"),
                    position_of(answer),
                )
            })
            .collect();
        told.sort_by_key(|(_, _, position)| *position);
        let mut store = sqlx::PgConnection::connect(&db)
            .await
            .expect("connect after the restart");
        let stored: Vec<(String, i64, i64)> =
            sqlx::query_as("SELECT aggregate_id, sequence, position FROM events ORDER BY position")
                .fetch_all(&mut store)
                .await
                .expect("read the events");
        let lost: Vec<_> = told.iter().filter(|t| !stored.contains(t)).collect();
        assert!(
            lost.is_empty(),
            "{} of {} acknowledged commands lost in the crash: {lost:?}",
            lost.len(),
            told.len()
        );
        assert_eq!(
            stored, told,
            "the store holds exactly what the client was told"
        );
        app.shutdown.trigger().await;
    })
    .await;
}

// ---------------------------------------------------------------------------------------------
// Guarantee 6: redelivery and republishing are harmless.
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn redelivered_and_republished_events_change_nothing() {
    within(async {
        let app = TestApp::spawn().await;
        let alice = app.user("alice").await;
        let bob = app.user("bob").await;
        for i in 0..4 {
            app.create_task(&alice, "republish", &format!("task {i}"), i)
                .await;
        }
        app.settle().await;
        for _ in 0..3 {
            let claimed = claim(&app, &bob, "republish", 600).await;
            let id = id_of(&claimed);
            let res = app
                .post(
                    &bob,
                    &format!("/v1/tasks/{id}/complete"),
                    &json!({"result": {"ok": true}}),
                )
                .await;
            assert_eq!(res.status(), 200, "complete {id}");
        }
        app.settle().await;
        let rows = snapshot(&app).await;
        let at = projection_at(&app).await;
        assert_eq!(at, app.head().await);

        // Copies of the whole history under new message ids: JetStream's dedupe cannot drop
        // them, so only the projection's checkpoint stands between them and the rows.
        app.republish_everything().await;
        app.wait_for_consumer_to_drain().await;
        assert_eq!(
            snapshot(&app).await,
            rows,
            "the copies changed the read model"
        );
        assert_eq!(
            projection_at(&app).await,
            at,
            "the copies moved the checkpoint"
        );
        app.shutdown.trigger().await;
    })
    .await;
}

// ---------------------------------------------------------------------------------------------
// Guarantee 7: a rebuild equals the live projection, and swaps in without breaking it.
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_rebuilt_projection_equals_the_live_one_row_for_row() {
    within(async {
        let app = TestApp::spawn().await;
        let (alice, bob, carol) = (app.user("alice").await, app.user("bob").await, app.user("carol").await);
        let mut alpha = Vec::new();
        let mut beta = Vec::new();
        for i in 0..12 {
            alpha.push(id_of(&app.create_task(&alice, "alpha", &format!("a{i}"), i % 4).await));
            beta.push(id_of(&app.create_task(&bob, "beta", &format!("b{i}"), 9 - (i % 3)).await));
        }
        for i in 0..8 {
            let res = app
                .post(
                    &carol,
                    "/v1/tasks",
                    &json!({"queue": "alpha", "title": format!("c{i}"), "description": "with a payload",
                            "priority": 2, "payload": {"n": i}, "max_attempts": 2}),
                )
                .await;
            assert_eq!(res.status(), 201);
            alpha.push(id_of(&res.json().await.expect("json")));
        }
        app.settle().await;

        // Bob works alpha, carol works beta: heartbeats, completions, retryable and final
        // failures, a task left claimed.
        let mut bob_held = Vec::new();
        for _ in 0..6 {
            bob_held.push(id_of(&claim(&app, &bob, "alpha", 600).await));
        }
        let mut carol_held = Vec::new();
        for _ in 0..6 {
            carol_held.push(id_of(&claim(&app, &carol, "beta", 600).await));
        }
        for id in bob_held.iter().chain(&carol_held) {
            let worker = if bob_held.contains(id) { &bob } else { &carol };
            let res = app
                .post(worker, &format!("/v1/tasks/{id}/heartbeat"), &json!({"progress": 40, "note": "going"}))
                .await;
            assert_eq!(res.status(), 200, "heartbeat {id}");
        }
        for id in &bob_held[..3] {
            ok(app.post(&bob, &format!("/v1/tasks/{id}/complete"), &json!({"result": {"done": id}})).await).await;
        }
        ok(app.post(&bob, &format!("/v1/tasks/{}/fail", bob_held[3]), &json!({"error": "flaky", "retryable": true})).await).await;
        ok(app.post(&bob, &format!("/v1/tasks/{}/fail", bob_held[4]), &json!({"error": "broken", "retryable": false})).await).await;
        for id in &carol_held[..2] {
            ok(app.post(&carol, &format!("/v1/tasks/{id}/complete"), &json!({})).await).await;
        }
        for id in &carol_held[2..4] {
            ok(app.post(&carol, &format!("/v1/tasks/{id}/fail"), &json!({"error": "again"})).await).await;
        }
        // Creators cancel: one of their tasks still claimed, and some still queued.
        ok(app.post(&bob, &format!("/v1/tasks/{}/cancel", carol_held[4]), &json!({})).await).await;
        let alices_queued: Vec<&String> =
            alpha[..12].iter().filter(|id| !bob_held.contains(id)).take(2).collect();
        for id in alices_queued {
            ok(app.post(&alice, &format!("/v1/tasks/{id}/cancel"), &json!({})).await).await;
        }
        let queued_beta: Vec<&String> = beta.iter().filter(|id| !carol_held.contains(id)).take(2).collect();
        for id in queued_beta {
            ok(app.post(&bob, &format!("/v1/tasks/{id}/cancel"), &json!({})).await).await;
        }
        // The requeued tasks go round again.
        app.settle().await;
        let again = id_of(&claim(&app, &carol, "beta", 600).await);
        ok(app.post(&carol, &format!("/v1/tasks/{again}/complete"), &json!({"result": [1, 2]})).await).await;
        app.settle().await;

        let statuses: Vec<String> =
            sqlx::query_scalar("SELECT DISTINCT status FROM tasks ORDER BY status")
                .fetch_all(&app.pool)
                .await
                .expect("statuses");
        assert_eq!(statuses, ["cancelled", "claimed", "completed", "dead_lettered", "queued"]);

        let head = app.head().await;
        let shadow = build_shadow(&app.pool, &TasksProjection, Some(head), &|_, _| {})
            .await
            .expect("build the shadow");
        assert_eq!(shadow.position, head);
        let differences = diff(&app.pool, &TasksProjection).await.expect("diff");
        assert_eq!(differences, vec![("tasks".to_owned(), 0)], "the shadow differs from live");

        let live = snapshot(&app).await;
        assert_eq!(live.len(), 32);
        let report = rebuild(&app.pool, &TasksProjection, &|_, _| {}).await.expect("rebuild");
        assert_eq!(report.position, head);
        assert_eq!(snapshot(&app).await, live, "the swapped-in tables differ from live");
        assert_eq!(projection_at(&app).await, head);

        // The swapped-in table serves queries and keeps being projected into.
        let res = app.get(&alice, "/v1/tasks").await;
        assert_eq!(res.status(), 200);
        let created = app.create_task(&alice, "alpha", "after the rebuild", 0).await;
        app.wait_for_projection("tasks", position_of(&created)).await;
        let res = app.get(&alice, &format!("/v1/tasks/{}", id_of(&created))).await;
        assert_eq!(res.status(), 200);
        let task: Value = res.json().await.expect("json");
        assert_eq!(task["title"], "after the rebuild");
        app.shutdown.trigger().await;
    })
    .await;
}

// ---------------------------------------------------------------------------------------------
// Guarantee 5: the relay never moves past an append still in flight.
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_relay_never_publishes_past_an_append_held_open() {
    within(async {
        let app = TestApp::spawn().await;
        let alice = app.user("alice").await;
        app.create_task(&alice, "held", "first", 0).await;
        let js = jetstream_of(&app).await;

        for commit in [true, false] {
            app.wait_for_relay(app.head().await, Duration::from_secs(20))
                .await;
            let mut held_tx = app.pool.begin().await.expect("begin");
            let held: i64 = sqlx::query_scalar(
                "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, \
                 event_version, payload, metadata) \
                 VALUES ('Probe', $1, 1, 'ProbeHeld', '1', '{}'::jsonb, '{}'::jsonb) RETURNING position",
            )
            .bind(Uuid::new_v4().to_string())
            .fetch_one(&mut *held_tx)
            .await
            .expect("hold an append open");

            let creates: Vec<_> = (0..5)
                .map(|i| {
                    let (client, url, token) =
                        (app.client.clone(), app.url("/v1/tasks"), alice.access_token.clone());
                    tokio::spawn(async move {
                        let res = client
                            .post(url)
                            .bearer_auth(token)
                            .json(&json!({"queue": "held", "title": format!("behind the hold {i}")}))
                            .send()
                            .await
                            .expect("create request");
                        let status = res.status();
                        (status, res.json::<Value>().await.expect("json"))
                    })
                })
                .collect();
            let stream = Names::new(&app.settings.nats_prefix).stream();
            stays_true(Duration::from_millis(500), "appends to wait behind the open one", || async {
                let relayed = app.relay_at(&stream).await;
                assert!(relayed < held, "the relay passed {held}, still in flight, at {relayed}");
                creates.iter().all(|c| !c.is_finished())
            })
            .await;

            if commit {
                held_tx.commit().await.expect("commit the held append");
            } else {
                held_tx.rollback().await.expect("roll the held append back");
            }
            for create in creates {
                let (status, body) = create.await.expect("create task");
                assert_eq!(status, 201, "{body}");
                assert!(position_of(&body) > held, "{} is not after the held {held}", body["position"]);
            }
            let head = app.head().await;
            app.settle().await;
            app.wait_for_relay(head, Duration::from_secs(20)).await;
            assert_eq!(app.relay_at(&stream).await, head);
            let kept: bool = sqlx::query_scalar("SELECT exists(SELECT 1 FROM events WHERE position = $1)")
                .bind(held)
                .fetch_one(&app.pool)
                .await
                .expect("held row");
            assert_eq!(kept, commit, "the held append is in the store exactly when committed");
            assert_stream_holds_every_event_once_in_order(&app, &js).await;
        }
        app.shutdown.trigger().await;
    })
    .await;
}

/// A relay that crashed after publishing but before moving its checkpoint publishes the same
/// events again. Its atomic batch then holds ids JetStream already has and is refused whole;
/// one message at a time, each copy is dropped on its own, and the relay moves on.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_relay_publishing_again_after_a_crash_leaves_every_event_once_in_the_stream() {
    within(async {
        let nats_url = std::env::var("NATS_URL").expect("NATS_URL (run scripts/test)");
        let settings = test_settings(&fresh_database().await, &nats_url);
        let app = TestApp::spawn_with(settings, bountyline::startup::Parts::API).await;
        let alice = app.user("alice").await;
        for i in 0..7 {
            app.create_task(&alice, "again", &format!("task {i}"), i)
                .await;
        }
        let (js, names) = (
            jetstream_of(&app).await,
            Names::new(&app.settings.nats_prefix),
        );
        let head = app.head().await;
        let relay = || bountyline::relay::Relay {
            pool: app.pool.clone(),
            database_url: app.settings.database_url.expose_secret().to_owned(),
            js: js.clone(),
            names: names.clone(),
            batch: 3,
            idle_poll: Duration::from_secs(2),
        };

        for run in ["first", "after the crash"] {
            let (stop, stopped) = tokio::sync::watch::channel(false);
            let running = tokio::spawn(relay().run(stopped));
            app.wait_for_relay(head, Duration::from_secs(20)).await;
            stop.send(true).expect("stop the relay");
            running.await.expect("relay task").expect("relay");
            assert_stream_holds_every_event_once_in_order(&app, &js).await;
            if run == "first" {
                assert!(
                    relay_batches(&app, "atomic").await > 0,
                    "no atomic batch published"
                );
                // The crash: the checkpoint never written.
                sqlx::query("UPDATE relay_checkpoints SET position = 0")
                    .execute(&app.pool)
                    .await
                    .expect("reset the relay's checkpoint");
            }
        }
        assert!(
            relay_batches(&app, "single").await > 0,
            "no refused batch went message by message"
        );
        app.shutdown.trigger().await;
    })
    .await;
}

// ---------------------------------------------------------------------------------------------
// Helpers of this file.
// ---------------------------------------------------------------------------------------------

// ---------------------------------------------------------------------------------------------
// Wake-ups on core NATS (bountyline_projections::signal): Postgres NOTIFY made every append and
// every projection batch commit one after another.
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_append_wakes_the_relay_long_before_its_poll() {
    within(async {
        let mut settings = test_settings(
            &fresh_database().await,
            &std::env::var("NATS_URL").expect("NATS_URL"),
        );
        // Longer than the test may run: only a wake-up can get the events published in time.
        settings.worker.relay_idle_poll_ms = 3_600_000;
        let app = TestApp::spawn_with(settings, bountyline::startup::Parts::ALL).await;
        let alice = app.user("alice").await;
        for i in 0..3 {
            let created = app
                .create_task(&alice, "wake", &format!("task {i}"), i)
                .await;
            app.wait_for_relay(position_of(&created), Duration::from_secs(30))
                .await;
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_projection_announces_the_checkpoints_it_stores() {
    within(async {
        let app = TestApp::spawn().await;
        let nats = async_nats::connect(&app.settings.nats_url)
            .await
            .expect("connect to NATS");
        let names = Names::new(&app.settings.nats_prefix);
        let mut announced = nats
            .subscribe(names.progress("tasks"))
            .await
            .expect("subscribe");
        nats.flush().await.expect("flush");
        let alice = app.user("alice").await;
        let position = position_of(&app.create_task(&alice, "told", "a task", 1).await);
        loop {
            let message = tokio::time::timeout(Duration::from_secs(30), announced.next())
                .await
                .expect("an announcement within 30 s")
                .expect("the subscription is open");
            let at: i64 = std::str::from_utf8(&message.payload)
                .expect("text")
                .parse()
                .expect("a position");
            if at >= position {
                let stored = checkpoint::read(&app.pool, "tasks").await.expect("read");
                assert!(stored >= at, "announced {at} before storing it ({stored})");
                break;
            }
        }
    })
    .await;
}

fn id_of(answer: &Value) -> String {
    answer["id"]
        .as_str()
        .unwrap_or_else(|| panic!("no id in {answer}"))
        .to_owned()
}

fn position_of(answer: &Value) -> i64 {
    answer["position"]
        .as_i64()
        .unwrap_or_else(|| panic!("no position in {answer}"))
}

async fn ok(res: reqwest::Response) {
    let status = res.status();
    assert_eq!(status, 200, "{}", res.text().await.unwrap_or_default());
}

/// Claims the best task of `queue` for `worker`; the read model must already show it.
async fn claim(app: &TestApp, worker: &TestUser, queue: &str, lease_seconds: i64) -> Value {
    app.may_work(queue, worker).await;
    let res = app
        .post(
            worker,
            &format!("/v1/queues/{queue}/claim"),
            &json!({"lease_seconds": lease_seconds}),
        )
        .await;
    assert_eq!(res.status(), 200, "claim from {queue}");
    let claimed: Value = res.json().await.expect("json");
    app.wait_for_projection("tasks", position_of(&claimed))
        .await;
    claimed
}

async fn projection_at(app: &TestApp) -> i64 {
    checkpoint::read(&app.pool, "tasks")
        .await
        .expect("tasks checkpoint")
}

/// Polls `check` for `period`, failing as soon as it is false.
async fn stays_true<F, Fut>(period: Duration, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let end = tokio::time::Instant::now() + period;
    while tokio::time::Instant::now() < end {
        assert!(check().await, "expected {what}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// Every row of the read model, as JSON, in id order.
async fn snapshot(app: &TestApp) -> Vec<Value> {
    sqlx::query_scalar("SELECT to_jsonb(t) FROM tasks t ORDER BY id")
        .fetch_all(&app.pool)
        .await
        .expect("snapshot tasks")
}

async fn jetstream_of(app: &TestApp) -> jetstream::Context {
    let client = async_nats::connect(&app.settings.nats_url)
        .await
        .expect("connect to NATS");
    jetstream::new(client)
}

/// The stream holds each stored event once, under its event id, in position order.
async fn assert_stream_holds_every_event_once_in_order(app: &TestApp, js: &jetstream::Context) {
    let stored: Vec<(Uuid, i64)> =
        sqlx::query_as("SELECT event_id, position FROM events ORDER BY position")
            .fetch_all(&app.pool)
            .await
            .expect("stored events");
    let names = Names::new(&app.settings.nats_prefix);
    let stream = js.get_stream(names.stream()).await.expect("stream");
    let state = stream.get_info().await.expect("stream info").state;
    let mut published = Vec::new();
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
            let id: Uuid = header(HEADER_MSG_ID)
                .parse()
                .expect("message id is an event id");
            let position: i64 = header(HEADER_POSITION).parse().expect("position header");
            published.push((id, position));
        }
    }
    let distinct: HashSet<Uuid> = published.iter().map(|(id, _)| *id).collect();
    assert_eq!(
        distinct.len(),
        published.len(),
        "an event id is in the stream twice"
    );
    assert_eq!(
        published, stored,
        "the stream is not the store, once each, in position order"
    );
}

/// Batches the relay published atomically (`atomic`) or message by message after JetStream
/// refused them (`single`).
async fn relay_batches(app: &TestApp, kind: &str) -> u64 {
    app.counter(&format!(
        "bountyline_relay_batches_total{{kind=\"{kind}\"}}"
    ))
    .await
}
