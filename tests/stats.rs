//! Dashboards' figures and streams: `GET /v1/stats`, the `stats` topic (coalesced snapshots),
//! the `events` topic (every event, auditors only, resumable) and the per-user stream cap.

mod common;

use common::sse::*;
use common::*;
use serde_json::{json, Value};
use std::future::Future;
use std::time::Duration;

const TEST_LIMIT: Duration = Duration::from_secs(90);

async fn within<F: Future<Output = ()>>(test: F) {
    tokio::time::timeout(TEST_LIMIT, test)
        .await
        .unwrap_or_else(|_| panic!("the test did not finish within {TEST_LIMIT:?}"));
}

async fn stats(app: &TestApp, user: &TestUser) -> Value {
    let res = app.get(user, "/v1/stats").await;
    assert_eq!(res.status(), 200, "GET /v1/stats");
    res.json().await.expect("json")
}

/// Creates a task in `queue`, claims it and completes it.
async fn complete_one(app: &TestApp, creator: &TestUser, worker: &TestUser, queue: &str) {
    app.create_task(creator, queue, "done soon", 0).await;
    app.may_work(queue, worker).await;
    app.settle().await;
    let claimed = app
        .post(worker, &format!("/v1/queues/{queue}/claim"), &json!({}))
        .await;
    assert_eq!(claimed.status(), 200, "claim");
    let claimed: Value = claimed.json().await.expect("json");
    let id = claimed["id"].as_str().expect("claimed id");
    let res = app
        .post(worker, &format!("/v1/tasks/{id}/complete"), &json!({}))
        .await;
    assert_eq!(res.status(), 200, "complete");
}

#[tokio::test]
async fn stats_count_bounties_escrow_tasks_events_and_people() {
    let app = TestApp::spawn().await;
    let (poster, worker) = (app.user("poster").await, app.user("worker").await);
    app.deposit(&poster, 10_000, "USD").await;
    let res = app
        .post(
            &poster,
            "/v1/bounties",
            &json!({"title": "Chart it", "description": "a small chart",
                    "reward": {"amount": 2_500, "currency": "USD"}}),
        )
        .await;
    assert_eq!(res.status(), 201);
    app.create_task(&poster, "alpha", "waits", 0).await;
    app.create_task(&poster, "beta", "waits too", 0).await;
    complete_one(&app, &poster, &worker, "alpha").await;
    app.settle().await;

    let head = app.head().await;
    let got = stats(&app, &poster).await;
    assert_eq!(got["position"], head, "the figures include every event");
    assert_eq!(got["bounties"]["open"], 1);
    assert_eq!(got["bounties"]["by_status"]["open"], 1);
    assert_eq!(got["bounties"]["by_status"]["cancelled"], 0);
    assert_eq!(
        got["bounties"]["open_reward"],
        json!([{"amount": 2_500, "currency": "USD"}])
    );
    assert_eq!(
        got["escrow_held"],
        json!([{"amount": 2_500, "currency": "USD"}])
    );
    assert_eq!(
        got["tasks"]["by_status"],
        json!({"queued": 2, "claimed": 0, "completed": 1, "dead_lettered": 0, "cancelled": 0})
    );
    assert_eq!(
        got["tasks"]["queues"],
        json!([
            {"queue": "alpha", "queued": 1, "claimed": 0, "completed": 1, "dead_lettered": 0, "cancelled": 0},
            {"queue": "beta", "queued": 1, "claimed": 0, "completed": 0, "dead_lettered": 0, "cancelled": 0},
        ])
    );
    assert_eq!(got["completions_per_minute"], 1);
    // Everything happened within the last minute (a slow machine may push the first events
    // out of the window, never add any).
    let per_minute = got["events_per_minute"].as_i64().expect("a count");
    assert!(
        per_minute > 0 && per_minute <= head,
        "{per_minute} of {head}"
    );
    let series = got["events_per_second"].as_array().expect("a series");
    assert_eq!(series.len(), 60);
    assert_eq!(
        series.iter().filter_map(Value::as_i64).sum::<i64>(),
        per_minute
    );
    // The poster and the worker issued commands; the deposit came from the provider and
    // the escrow from bountyline itself.
    assert_eq!(got["active_users_today"], 2);

    let anonymous = app.client.get(app.url("/v1/stats")).send().await.unwrap();
    assert_eq!(anonymous.status(), 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_stats_stream_starts_with_the_figures_and_pushes_changes_coalesced() {
    within(async {
        let app = TestApp::spawn().await;
        let alice = app.user("alice").await;
        app.create_task(&alice, "q", "first", 0).await;
        app.settle().await;

        let mut stream = SseStream::open(&app, &alice, "stats", None).await;
        let first = stream.next_message().await;
        assert_eq!(first.event, "stats");
        assert_eq!(first.id, app.head().await);
        assert_eq!(first.data["tasks"]["by_status"]["queued"], 1);

        // A burst of commands becomes a few snapshots, not one per event.
        let started = tokio::time::Instant::now();
        for i in 0..20 {
            app.create_task(&alice, "q", &format!("burst {i}"), 0).await;
        }
        app.settle().await;
        let head = app.head().await;
        let mut snapshots = 0;
        loop {
            let next = stream.next_message().await;
            snapshots += 1;
            assert!(next.id > first.id);
            if next.id == head {
                assert_eq!(next.data["tasks"]["by_status"]["queued"], 21);
                break;
            }
        }
        let seconds = started.elapsed().as_secs_f64();
        assert!(
            f64::from(snapshots) <= 2.0 * seconds + 2.0,
            "{snapshots} snapshots in {seconds:.1}s: not coalesced"
        );

        // Resuming gives the current figures at once.
        drop(stream);
        let mut resumed = SseStream::open(&app, &alice, "stats", Some(&first.id.to_string())).await;
        assert_eq!(resumed.next_message().await.id, head);
        app.shutdown.trigger().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_events_stream_carries_every_event_to_auditors_and_resumes() {
    within(async {
        let app = TestApp::spawn().await;
        let (alice, auditor) = (app.user("alice").await, app.auditor().await);
        wait_for_hub(&app, 2).await;

        let refused = app
            .client
            .get(app.url("/v1/streams/events"))
            .bearer_auth(&alice.access_token)
            .send()
            .await
            .unwrap();
        assert_eq!(refused.status(), 403, "members do not see raw events");

        let mut stream = SseStream::open(&app, &auditor, "events", None).await;
        app.deposit(&alice, 700, "USD").await;
        let task = app.create_task(&alice, "q", "watched", 0).await;
        let got = stream.next_messages(2).await;
        assert_eq!(got[0].event, "DepositConfirmed");
        assert_eq!(got[0].data["payload"]["amount"], 700);
        assert_eq!(got[1].event, "TaskCreated");
        assert_eq!(got[1].id, task["position"]);
        assert_eq!(got[1].data["aggregate_id"], task["id"]);
        assert_eq!(
            got[1].data["metadata"]["actor"],
            json!(alice.id.to_string())
        );
        drop(stream);

        let missed = [
            app.create_task(&alice, "q", "missed 1", 0).await,
            app.create_task(&alice, "q", "missed 2", 0).await,
        ];
        let mut resumed =
            SseStream::open(&app, &auditor, "events", Some(&got[1].id.to_string())).await;
        let again = resumed.next_messages(2).await;
        assert_eq!(ids(&again), positions(&missed));
        app.shutdown.trigger().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_user_may_hold_only_so_many_streams_open() {
    within(async {
        let app = TestApp::spawn().await;
        let (alice, bob) = (app.user("alice").await, app.user("bob").await);
        let cap = app.settings.sse.max_streams_per_user;
        let mut open = Vec::new();
        for _ in 0..cap {
            open.push(SseStream::open(&app, &alice, "tasks", None).await);
        }
        let over = app
            .client
            .get(app.url("/v1/streams/bounties"))
            .bearer_auth(&alice.access_token)
            .send()
            .await
            .unwrap();
        assert_eq!(over.status(), 429);
        assert!(over.headers().contains_key("retry-after"));
        let problem: Value = over.json().await.unwrap();
        assert_eq!(problem["status"], 429);

        // Another user is not affected, and a closed stream frees its place.
        drop(SseStream::open(&app, &bob, "tasks", None).await);
        drop(open.pop());
        wait_until(Duration::from_secs(10), "a freed stream place", || async {
            app.client
                .get(app.url("/v1/streams/tasks"))
                .bearer_auth(&alice.access_token)
                .send()
                .await
                .is_ok_and(|r| r.status() == 200)
        })
        .await;
        app.shutdown.trigger().await;
    })
    .await;
}
