//! Live streams (DESIGN.md guarantee 9): `GET /v1/streams/{topic}` carries every event once,
//! in position order, resumes with `Last-Event-ID`, keeps idle connections alive and catches
//! slow clients up from the store.

mod common;

use bountyline::startup::Parts;
use common::sse::*;
use common::*;
use serde_json::{json, Value};
use std::future::Future;
use std::time::Duration;

/// Every test here finishes within this, whatever hangs.
const TEST_LIMIT: Duration = Duration::from_secs(90);

async fn within<F: Future<Output = ()>>(test: F) {
    tokio::time::timeout(TEST_LIMIT, test)
        .await
        .unwrap_or_else(|_| panic!("the test did not finish within {TEST_LIMIT:?}"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sse_resumes_with_every_missed_event_once_in_order() {
    within(async {
        let app = TestApp::spawn().await;
        let alice = app.user("alice").await;
        wait_for_hub(&app, 2).await;

        let mut stream = SseStream::open(&app, &alice, "tasks", None).await;
        let first = create_tasks(&app, &alice, 5).await;
        let got = stream.next_messages(5).await;
        assert_eq!(ids(&got), positions(&first));
        for (message, created) in got.iter().zip(&first) {
            assert_eq!(message.event, "TaskCreated");
            assert_eq!(message.data["task_id"], created["id"]);
            assert_eq!(message.data["status"], "queued");
        }
        let last = got.last().map(|m| m.id).expect("a message");
        drop(stream);

        let missed = create_tasks(&app, &alice, 5).await;
        let mut stream = SseStream::open(&app, &alice, "tasks", Some(&last.to_string())).await;
        let got = stream.next_messages(5).await;
        assert_eq!(
            ids(&got),
            positions(&missed),
            "the resumed stream is not exactly what was missed"
        );

        let live = create_tasks(&app, &alice, 1).await;
        let next = stream.next_message().await;
        assert_eq!(
            next.id,
            positions(&live)[0],
            "after the missed ones comes the live one, no repeats"
        );
        app.shutdown.trigger().await;
    })
    .await;
}

/// The hub measures how old each live event is when JetStream stored it and when it arrived,
/// from its insert into the store: seconds, not the time since 1970 nor a negative age.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_hub_reports_how_old_live_events_are_by_stage() {
    within(async {
        let app = TestApp::spawn().await;
        let alice = app.user("alice").await;
        wait_for_hub(&app, 2).await;

        let mut stream = SseStream::open(&app, &alice, "tasks", None).await;
        let created = create_tasks(&app, &alice, 3).await;
        let got = stream.next_messages(3).await;
        assert_eq!(ids(&got), positions(&created));

        for stage in ["stored", "received"] {
            let series = |part: &str| {
                format!("bountyline_sse_event_age_seconds_{part}{{stage=\"{stage}\"}}")
            };
            let count = app.counter(&series("count")).await;
            assert!(count >= 1, "no {stage} age recorded");
            let sum = app.value(&series("sum")).await.expect("the ages' sum");
            assert!(
                (0.0..60.0 * count as f64).contains(&sum),
                "{stage}: {count} ages summing to {sum} s"
            );
            // The buckets are fine enough to tell milliseconds apart.
            let fine = format!(
                "bountyline_sse_event_age_seconds_bucket{{stage=\"{stage}\",le=\"0.002\"}}"
            );
            assert!(
                app.sample(&fine).await.is_some(),
                "no 2 ms bucket for {stage}"
            );
        }
        app.shutdown.trigger().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_client_that_reconnects_from_zero_gets_the_whole_history() {
    within(async {
        let app = TestApp::spawn().await;
        let (alice, bob) = (app.user("alice").await, app.user("bob").await);
        create_tasks(&app, &alice, 4).await;
        app.settle().await;
        app.may_work("history", &bob).await;
        let claimed = app.post(&bob, "/v1/queues/history/claim", &json!({})).await;
        assert_eq!(claimed.status(), 200);
        let claimed: Value = claimed.json().await.expect("json");
        let id = claimed["id"].as_str().expect("claimed id");
        let res = app.post(&bob, &format!("/v1/tasks/{id}/complete"), &json!({})).await;
        assert_eq!(res.status(), 200);

        let history: Vec<(i64, String)> = sqlx::query_as(
            "SELECT position, event_type FROM events WHERE aggregate_type = 'Task' ORDER BY position",
        )
        .fetch_all(&app.pool)
        .await
        .expect("history");
        assert_eq!(history.len(), 6);

        let mut stream = SseStream::open(&app, &alice, "tasks", Some("0")).await;
        let got = stream.next_messages(history.len()).await;
        let got: Vec<(i64, String)> = got.into_iter().map(|m| (m.id, m.event)).collect();
        assert_eq!(got, history);
        stream.expect_no_message(Duration::from_millis(700)).await;
        app.shutdown.trigger().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn idle_streams_carry_keep_alive_comments() {
    within(async {
        let app = TestApp::spawn().await;
        let alice = app.user("alice").await;
        assert_eq!(app.settings.sse.keep_alive_secs, 1);
        let stream = SseStream::open(&app, &alice, "tasks", None).await;
        let raw = stream.read_raw_for(Duration::from_millis(2500)).await;
        assert!(
            raw.lines().any(|line| line.starts_with(':')),
            "no keep-alive comment in 2.5 s of an idle stream: {raw:?}"
        );
        assert!(
            !raw.contains("data:"),
            "nothing happened, yet data arrived: {raw:?}"
        );
        app.shutdown.trigger().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn streams_need_a_token_and_a_known_topic() {
    within(async {
        let app = TestApp::spawn().await;
        let alice = app.user("alice").await;
        let url = app.url("/v1/streams/tasks");

        let res = app.client.get(&url).send().await.expect("request");
        assert_eq!(res.status(), 401);
        assert_eq!(content_type(&res), "application/problem+json");
        let problem: Value = res.json().await.expect("problem json");
        assert_eq!(problem["status"], 401);

        let res = app
            .client
            .get(&url)
            .bearer_auth("not-a-token")
            .send()
            .await
            .expect("request");
        assert_eq!(res.status(), 401);
        assert_eq!(content_type(&res), "application/problem+json");
        let res = app
            .client
            .get(format!("{url}?access_token=not-a-token"))
            .send()
            .await
            .expect("request");
        assert_eq!(res.status(), 401);

        let res = app
            .client
            // A JWT is URL-safe as it is.
            .get(format!("{url}?access_token={}", alice.access_token))
            .send()
            .await
            .expect("request");
        assert_eq!(res.status(), 200);
        assert!(
            content_type(&res).starts_with("text/event-stream"),
            "{}",
            content_type(&res)
        );
        drop(res);

        let res = app.get(&alice, "/v1/streams/nonsense").await;
        assert_eq!(res.status(), 404);
        assert_eq!(content_type(&res), "application/problem+json");

        for bad in ["abc", "-1", "1.5", ""] {
            let res = app
                .client
                .get(&url)
                .bearer_auth(&alice.access_token)
                .header("Last-Event-ID", bad)
                .send()
                .await
                .expect("request");
            assert_eq!(res.status(), 400, "Last-Event-ID {bad:?}");
            assert_eq!(content_type(&res), "application/problem+json");
        }
        app.shutdown.trigger().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_queues_topic_reports_status_changes() {
    within(async {
        let app = TestApp::spawn().await;
        let (alice, bob) = (app.user("alice").await, app.user("bob").await);
        wait_for_hub(&app, 2).await;
        let mut stream = SseStream::open(&app, &alice, "queues", None).await;

        let created = app
            .create_task(&alice, "mail", "send the newsletter", 5)
            .await;
        app.wait_for_projection("tasks", created["position"].as_i64().expect("position"))
            .await;
        app.may_work("mail", &bob).await;
        let res = app.post(&bob, "/v1/queues/mail/claim", &json!({})).await;
        assert_eq!(res.status(), 200);

        let got = stream.next_messages(2).await;
        assert_eq!(got[0].event, "TaskCreated");
        assert_eq!(
            got[0].data,
            json!({"queue": "mail", "task_id": created["id"], "status": "queued"})
        );
        assert_eq!(got[1].event, "TaskClaimed");
        assert_eq!(
            got[1].data,
            json!({"queue": "mail", "task_id": created["id"], "status": "claimed"})
        );
        assert!(got[0].id < got[1].id);
        app.shutdown.trigger().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_slow_client_is_caught_up_from_the_store_without_loss() {
    within(async {
        let mut settings = test_settings(
            &fresh_database().await,
            &std::env::var("NATS_URL").expect("NATS_URL"),
        );
        settings.sse.hub_capacity = 8;
        settings.sse.client_buffer = 2;
        // The API runs without workers at first, so that the 60 events reach the hub in one
        // burst once the relay starts: spread out, a client keeps up and the ring never
        // overruns, which leaves the catch-up path untested.
        let app = TestApp::spawn_with(settings.clone(), Parts::API).await;
        let alice = app.user("alice").await;
        wait_for_hub(&app, 1).await;

        // Open, then read nothing while 60 tasks are created and relayed.
        let mut stream = SseStream::open(&app, &alice, "tasks", None).await;
        let mut created = Vec::new();
        for burst in 0..6 {
            let answers = futures::future::join_all((0..10).map(|i| {
                let (app, alice) = (&app, &alice);
                async move {
                    app.create_task(alice, "slow", &format!("burst {burst} task {i}"), 0)
                        .await
                }
            }))
            .await;
            created.extend(answers);
        }
        let workers = TestApp::spawn_with(settings, Parts::WORKERS).await;
        app.settle().await;

        let got = stream.next_messages(60).await;
        assert!(got.iter().all(|m| m.event == "TaskCreated"));
        let mut expected = positions(&created);
        expected.sort_unstable();
        assert_eq!(
            ids(&got),
            expected,
            "the slow client lost, repeated or reordered messages"
        );
        stream.expect_no_message(Duration::from_millis(700)).await;
        workers.shutdown.trigger().await;
        app.shutdown.trigger().await;
    })
    .await;
}

// A helper of this file.

async fn create_tasks(app: &TestApp, user: &TestUser, n: usize) -> Vec<Value> {
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        out.push(
            app.create_task(user, "history", &format!("task {i}"), 0)
                .await,
        );
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_page_that_reopens_a_stream_resumes_from_last_event_id_in_the_query() {
    within(async {
        let app = TestApp::spawn().await;
        let alice = app.user("alice").await;
        let first = create_tasks(&app, &alice, 2).await;
        let missed = create_tasks(&app, &alice, 3).await;
        let after = positions(&first)[1];
        let url = app.url(&format!(
            "/v1/streams/tasks?access_token={}&last_event_id={after}",
            alice.access_token
        ));
        let mut stream = SseStream::from_request(app.client.get(&url), "tasks").await;
        let got = stream.next_messages(3).await;
        assert_eq!(ids(&got), positions(&missed));

        // The header, when a client sends both, wins.
        let mut both =
            SseStream::from_request(app.client.get(&url).header("Last-Event-ID", "0"), "tasks")
                .await;
        assert_eq!(both.next_message().await.id, positions(&first)[0]);

        let bad = app
            .client
            .get(url.replace(&format!("={after}"), "=soon"))
            .send()
            .await
            .unwrap();
        assert_eq!(bad.status(), 400);
        app.shutdown.trigger().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_stream_ends_when_its_session_ends_and_only_that_one() {
    within(async {
        let app = TestApp::spawn().await;
        let user = app.user("uma").await;
        let other: Value = app
            .login(&user.email, common::accounts::GOOD_PASSWORD)
            .await
            .json()
            .await
            .unwrap();
        let other = TestUser {
            access_token: other["access_token"].as_str().unwrap().to_owned(),
            refresh_token: other["refresh_token"].as_str().unwrap().to_owned(),
            ..user.clone()
        };
        let logged_out = SseStream::open(&app, &user, "tasks", None).await;
        let stats = SseStream::open(&app, &user, "stats", None).await;
        let kept = SseStream::open(&app, &other, "tasks", None).await;
        let res = app
            .client
            .post(app.url("/v1/auth/logout"))
            .json(&json!({"refresh_token": user.refresh_token}))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 204);
        // Sessions are checked every second in the tests (`sse.session_recheck_secs`).
        assert!(logged_out.ends_within(Duration::from_secs(5)).await);
        assert!(stats.ends_within(Duration::from_secs(5)).await);
        assert!(!kept.ends_within(Duration::from_secs(3)).await);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_stream_ends_when_its_access_token_expires() {
    within(async {
        let nats_url = std::env::var("NATS_URL").expect("NATS_URL (run scripts/test)");
        let mut settings = test_settings(&fresh_database().await, &nats_url);
        settings.auth.access_ttl_secs = 3;
        settings.sse.session_recheck_secs = 3600;
        let app = TestApp::spawn_with(settings, Parts::ALL).await;
        let user = app.user("vera").await;
        let stream = SseStream::open(&app, &user, "tasks", None).await;
        assert!(stream.ends_within(Duration::from_secs(10)).await);
    })
    .await;
}

/// `workers` (issue 25, item 8): who works on what. An admin sees every worker's claims,
/// heartbeats and completions; a worker sees their own and nobody else's.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_workers_stream_shows_who_works_on_what_to_admins_and_each_worker_their_own() {
    within(async {
        let app = TestApp::spawn().await;
        let (alice, bob, carol) = (
            app.user("alice").await,
            app.user("bob").await,
            app.user("carol").await,
        );
        let admin = app.admin().await;
        wait_for_hub(&app, 2).await;
        let mut everyone = SseStream::open(&app, &admin, "workers", None).await;
        let mut bobs = SseStream::open(&app, &bob, "workers", None).await;
        let mut carols = SseStream::open(&app, &carol, "workers", None).await;

        let created = create_tasks(&app, &alice, 2).await;
        app.settle().await;
        app.may_work("history", &bob).await;
        app.may_work("history", &carol).await;
        let claim = |who: &TestUser| {
            let who = who.clone();
            let app = &app;
            async move {
                let res = app.post(&who, "/v1/queues/history/claim", &json!({})).await;
                assert_eq!(res.status(), 200);
                res.json::<Value>().await.expect("json")
            }
        };
        let bobs_task = claim(&bob).await;
        let id = bobs_task["id"].as_str().expect("an id").to_owned();
        let res = app
            .post(
                &bob,
                &format!("/v1/tasks/{id}/heartbeat"),
                &json!({"progress": 50}),
            )
            .await;
        assert_eq!(res.status(), 200);
        let res = app
            .post(&bob, &format!("/v1/tasks/{id}/complete"), &json!({}))
            .await;
        assert_eq!(res.status(), 200);
        let carols_task = claim(&carol).await;

        let seen = everyone.next_messages(4).await;
        let activities: Vec<(&str, &str)> = seen
            .iter()
            .map(|m| {
                (
                    m.data["activity"].as_str().expect("activity"),
                    m.data["worker"].as_str().expect("worker"),
                )
            })
            .collect();
        let (b, c) = (bob.id.to_string(), carol.id.to_string());
        assert_eq!(
            activities,
            [
                ("claimed", b.as_str()),
                ("heartbeat", b.as_str()),
                ("completed", b.as_str()),
                ("claimed", c.as_str())
            ]
        );
        assert_eq!(seen[1].data["progress"], 50);
        assert_eq!(seen[0].data["queue"], "history");
        assert!(created.iter().any(|t| t["id"] == seen[0].data["task_id"]));

        let own = bobs.next_messages(3).await;
        assert!(own.iter().all(|m| m.data["worker"] == json!(bob.id)));
        bobs.expect_no_message(Duration::from_millis(500)).await;
        let own = carols.next_message().await;
        assert_eq!(own.data["task_id"], carols_task["id"]);
        assert_eq!(own.data["activity"], "claimed");
        app.shutdown.trigger().await;
    })
    .await;
}
