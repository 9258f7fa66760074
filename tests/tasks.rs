//! The tasks domain over HTTP on the real stack: lifecycle, claims under contention,
//! optimistic concurrency, idempotency, read-your-writes and refusals of bad input.

mod common;

use common::{wait_until, TestApp, TestUser};
use reqwest::StatusCode;
use serde_json::{json, Value};
use std::collections::HashSet;
use std::time::Duration;

async fn task(app: &TestApp, user: &TestUser, id: &str, min_position: i64) -> Value {
    let res = app
        .get_at(user, &format!("/v1/tasks/{id}"), min_position)
        .await;
    assert_eq!(res.status(), 200);
    res.json().await.unwrap()
}

#[tokio::test]
async fn a_task_goes_from_queued_to_claimed_to_completed() {
    let app = TestApp::spawn().await;
    let (alice, worker) = (app.user("alice").await, app.user("worker").await);
    let created = app.create_task(&alice, "emails", "send welcome", 5).await;
    app.may_work("emails", &worker).await;
    let id = created["id"].as_str().unwrap();
    assert_eq!(created["version"], 1);
    let position = created["position"].as_i64().unwrap();
    assert_eq!(task(&app, &alice, id, position).await["status"], "queued");

    let claimed = app
        .post(
            &worker,
            "/v1/queues/emails/claim",
            &json!({"lease_seconds": 60}),
        )
        .await;
    assert_eq!(claimed.status(), 200);
    let claimed: Value = claimed.json().await.unwrap();
    assert_eq!(claimed["id"], id);
    assert_eq!(claimed["attempt"], 1);
    assert_eq!(claimed["title"], "send welcome");

    let beat = app
        .post(
            &worker,
            &format!("/v1/tasks/{id}/heartbeat"),
            &json!({"progress": 50, "note": "half"}),
        )
        .await;
    assert_eq!(beat.status(), 200);
    let done = app
        .post(
            &worker,
            &format!("/v1/tasks/{id}/complete"),
            &json!({"result": {"sent": true}}),
        )
        .await;
    assert_eq!(done.status(), 200);
    let done: Value = done.json().await.unwrap();
    assert_eq!(done["version"], 4);

    let view = task(&app, &alice, id, done["position"].as_i64().unwrap()).await;
    assert_eq!(view["status"], "completed");
    assert_eq!(view["result"], json!({"sent": true}));
    assert_eq!(view["worker"], json!(worker.id));
    assert_eq!(view["progress"], 100);
}

#[tokio::test]
async fn claims_take_the_highest_priority_then_the_oldest_task() {
    let app = TestApp::spawn().await;
    let (alice, worker) = (app.user("alice").await, app.user("worker").await);
    let low = app.create_task(&alice, "q", "low", 1).await;
    let high_old = app.create_task(&alice, "q", "high old", 7).await;
    let high_new = app.create_task(&alice, "q", "high new", 7).await;
    app.may_work("q", &worker).await;
    app.wait_for_projection("tasks", high_new["position"].as_i64().unwrap())
        .await;
    let mut order = Vec::new();
    for _ in 0..3 {
        let res = app.post(&worker, "/v1/queues/q/claim", &json!({})).await;
        assert_eq!(res.status(), 200);
        let body: Value = res.json().await.unwrap();
        order.push(body["id"].clone());
        app.wait_for_projection("tasks", body["position"].as_i64().unwrap())
            .await;
    }
    assert_eq!(
        order,
        vec![
            high_old["id"].clone(),
            high_new["id"].clone(),
            low["id"].clone()
        ]
    );
    let none = app.post(&worker, "/v1/queues/q/claim", &json!({})).await;
    assert_eq!(none.status(), 204);
}

#[tokio::test]
async fn fifty_concurrent_claims_give_each_task_to_exactly_one_worker() {
    let app = TestApp::spawn().await;
    let alice = app.user("alice").await;
    let mut last = 0;
    for i in 0..50 {
        last = app
            .create_task(&alice, "race", &format!("task {i}"), i % 10)
            .await["position"]
            .as_i64()
            .unwrap();
    }
    app.wait_for_projection("tasks", last).await;
    let mut workers = Vec::new();
    for i in 0..50 {
        let worker = app.user(&format!("w{i}")).await;
        app.may_work("race", &worker).await;
        workers.push(worker);
    }
    let claims = futures::future::join_all(workers.iter().map(|w| async {
        let res = app
            .post(w, "/v1/queues/race/claim", &json!({"lease_seconds": 300}))
            .await;
        let status = res.status();
        let body: Value = if status == 200 {
            res.json().await.unwrap()
        } else {
            Value::Null
        };
        (status, body)
    }))
    .await;
    let mut ids = HashSet::new();
    for (status, body) in &claims {
        assert_eq!(*status, StatusCode::OK, "every worker gets a task: {body}");
        assert!(
            ids.insert(body["id"].as_str().unwrap().to_owned()),
            "a task was given twice"
        );
    }
    assert_eq!(ids.len(), 50);
    // The store agrees: each task has exactly one TaskClaimed event.
    let twice: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM (SELECT aggregate_id FROM events WHERE event_type = 'TaskClaimed' \
         GROUP BY aggregate_id HAVING count(*) > 1) d",
    )
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!(twice, 0);
}

#[tokio::test]
async fn racing_commands_on_one_task_conflict_cleanly_and_leave_no_gaps() {
    let app = TestApp::spawn().await;
    let (alice, worker) = (app.user("alice").await, app.user("worker").await);
    let created = app.create_task(&alice, "q", "contended", 0).await;
    app.may_work("q", &worker).await;
    app.wait_for_projection("tasks", created["position"].as_i64().unwrap())
        .await;
    assert_eq!(
        app.post(&worker, "/v1/queues/q/claim", &json!({}))
            .await
            .status(),
        200
    );
    let id = created["id"].as_str().unwrap();
    let results = futures::future::join_all((0..20).map(|i| {
        let path = format!("/v1/tasks/{id}/heartbeat");
        let (app, worker) = (&app, &worker);
        async move {
            let res = app.post(worker, &path, &json!({"progress": i})).await;
            let status = res.status();
            (status, res.text().await.unwrap())
        }
    }))
    .await;
    let ok = results.iter().filter(|(s, _)| *s == 200).count();
    for (status, body) in &results {
        assert!(
            *status == 200 || *status == 409,
            "unexpected {status}: {body}"
        );
        if *status == 409 {
            assert!(body.contains("concurrency-conflict"), "{body}");
        }
    }
    assert!(ok >= 1);
    let sequences: Vec<i64> = sqlx::query_scalar(
        "SELECT sequence FROM events WHERE aggregate_type = 'Task' AND aggregate_id = $1 ORDER BY sequence",
    )
    .bind(id)
    .fetch_all(&app.pool)
    .await
    .unwrap();
    assert_eq!(sequences, (1..=sequences.len() as i64).collect::<Vec<_>>());
    assert_eq!(sequences.len(), 2 + ok);
}

#[tokio::test]
async fn failures_requeue_until_attempts_run_out_then_dead_letter() {
    let app = TestApp::spawn().await;
    let (alice, worker) = (app.user("alice").await, app.user("worker").await);
    let res = app
        .post(
            &alice,
            "/v1/tasks",
            &json!({"queue": "q", "title": "flaky", "max_attempts": 2}),
        )
        .await;
    let created: Value = res.json().await.unwrap();
    app.may_work("q", &worker).await;
    let id = created["id"].as_str().unwrap().to_owned();
    let mut position = created["position"].as_i64().unwrap();
    for expected in ["queued", "dead_lettered"] {
        app.wait_for_projection("tasks", position).await;
        let claim = app.post(&worker, "/v1/queues/q/claim", &json!({})).await;
        assert_eq!(claim.status(), 200);
        let failed = app
            .post(
                &worker,
                &format!("/v1/tasks/{id}/fail"),
                &json!({"error": "boom"}),
            )
            .await;
        assert_eq!(failed.status(), 200);
        position = failed.json::<Value>().await.unwrap()["position"]
            .as_i64()
            .unwrap();
        let view = task(&app, &alice, &id, position).await;
        assert_eq!(view["status"], expected);
        assert_eq!(view["last_error"], "boom");
    }
    let dead = app.get(&alice, "/v1/tasks?status=dead_lettered").await;
    let dead: Value = dead.json().await.unwrap();
    assert_eq!(dead["items"][0]["id"], json!(id));
}

#[tokio::test]
async fn an_expired_lease_returns_the_task_to_its_queue() {
    let app = TestApp::spawn().await;
    let (alice, worker) = (app.user("alice").await, app.user("worker").await);
    let created = app.create_task(&alice, "q", "slow", 0).await;
    app.may_work("q", &worker).await;
    let id = created["id"].as_str().unwrap().to_owned();
    app.wait_for_projection("tasks", created["position"].as_i64().unwrap())
        .await;
    let claim = app
        .post(&worker, "/v1/queues/q/claim", &json!({"lease_seconds": 1}))
        .await;
    assert_eq!(claim.status(), 200);
    let pool = app.pool.clone();
    wait_until(Duration::from_secs(15), "the lease to expire", || {
        let (pool, id) = (pool.clone(), id.clone());
        async move {
            let expired: i64 = sqlx::query_scalar(
                "SELECT count(*) FROM events WHERE aggregate_id = $1 \
                 AND event_type = 'TaskLeaseExpired' AND metadata ->> 'causation_id' LIKE 'lease-expiry:%'",
            )
            .bind(&id)
            .fetch_one(&pool)
            .await
            .unwrap();
            expired == 1
        }
    })
    .await;
    app.settle().await;
    let view = task(&app, &alice, &id, app.head().await).await;
    assert_eq!(view["status"], "queued");
    assert_eq!(view["attempts"], 1);
    assert_eq!(view["last_error"], "lease expired");
    // The late worker can no longer complete it: the lease is no longer theirs, and the task
    // is none of theirs either (issue 23: no one learns of a task that is not theirs).
    let late = app
        .post(&worker, &format!("/v1/tasks/{id}/complete"), &json!({}))
        .await;
    assert_eq!(late.status(), 404);
}

#[tokio::test]
async fn only_the_creator_or_an_admin_may_cancel_and_others_cannot_see_the_task() {
    let app = TestApp::spawn().await;
    let (alice, mallory, admin) = (
        app.user("alice").await,
        app.user("mallory").await,
        app.admin().await,
    );
    let created = app.create_task(&alice, "q", "mine", 0).await;
    let id = created["id"].as_str().unwrap();
    app.wait_for_projection("tasks", created["position"].as_i64().unwrap())
        .await;
    assert_eq!(
        app.get(&mallory, &format!("/v1/tasks/{id}")).await.status(),
        404
    );
    let listed: Value = app.get(&mallory, "/v1/tasks").await.json().await.unwrap();
    assert_eq!(listed["items"], json!([]));
    // Every command on someone else's task answers exactly as on an id never used: no
    // existence oracle (issue 23).
    let never_used = uuid::Uuid::now_v7();
    for (action, body) in [
        ("cancel", json!({})),
        ("heartbeat", json!({})),
        ("complete", json!({})),
        ("fail", json!({"error": "x"})),
    ] {
        let answer = |task: String| {
            let (app, mallory, body) = (&app, &mallory, &body);
            async move {
                let res = app
                    .post(mallory, &format!("/v1/tasks/{task}/{action}"), body)
                    .await;
                let kind = res.headers()["content-type"].to_str().unwrap().to_owned();
                (
                    res.status().as_u16(),
                    kind,
                    res.json::<Value>().await.unwrap(),
                )
            }
        };
        let (status, kind, problem) = answer(id.to_owned()).await;
        assert_eq!(status, 404, "{action}: {problem}");
        assert_eq!(kind, "application/problem+json");
        assert_eq!(
            (status, problem),
            {
                let (s, _, p) = answer(never_used.to_string()).await;
                (s, p)
            },
            "{action} on a stranger's task and on an unknown id"
        );
    }
    let cancelled = app
        .post(&admin, &format!("/v1/tasks/{id}/cancel"), &json!({}))
        .await;
    assert_eq!(cancelled.status(), 200);
    let again = app
        .post(&alice, &format!("/v1/tasks/{id}/cancel"), &json!({}))
        .await;
    assert_eq!(again.status(), 409);
}

#[tokio::test]
async fn a_retried_command_with_the_same_idempotency_key_runs_once() {
    let app = TestApp::spawn().await;
    let alice = app.user("alice").await;
    let send = |key: &'static str, title: &'static str| {
        app.client
            .post(app.url("/v1/tasks"))
            .bearer_auth(&alice.access_token)
            .header("Idempotency-Key", key)
            .json(&json!({"queue": "q", "title": title}))
            .send()
    };
    let first = send("key-1", "once").await.unwrap();
    assert_eq!(first.status(), 201);
    let first: Value = first.json().await.unwrap();
    let retry = send("key-1", "once").await.unwrap();
    assert_eq!(retry.status(), 201);
    assert_eq!(retry.headers()["idempotent-replayed"], "true");
    assert_eq!(retry.json::<Value>().await.unwrap(), first);
    let other_body = send("key-1", "different").await.unwrap();
    assert_eq!(other_body.status(), 422);
    let created: i64 =
        sqlx::query_scalar("SELECT count(*) FROM events WHERE event_type = 'TaskCreated'")
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert_eq!(created, 1);
    // Concurrent duplicates also run once.
    let racing = futures::future::join_all((0..10).map(|_| send("key-2", "racing"))).await;
    let statuses: Vec<u16> = racing
        .iter()
        .map(|r| r.as_ref().unwrap().status().as_u16())
        .collect();
    assert!(
        statuses.iter().all(|s| *s == 201 || *s == 409),
        "{statuses:?}"
    );
    let created: i64 =
        sqlx::query_scalar("SELECT count(*) FROM events WHERE event_type = 'TaskCreated'")
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert_eq!(created, 2);
}

#[tokio::test]
async fn a_query_waits_for_its_min_position_or_says_it_cannot() {
    let mut settings = common::test_settings(
        &common::fresh_database().await,
        &std::env::var("NATS_URL").unwrap(),
    );
    settings.http.read_your_writes_timeout_ms = 500;
    let app = TestApp::spawn_with(settings, bountyline::startup::Parts::ALL).await;
    let alice = app.user("alice").await;
    let created = app.create_task(&alice, "q", "fresh", 0).await;
    // Straight after the write: the view already shows it.
    let view = task(
        &app,
        &alice,
        created["id"].as_str().unwrap(),
        created["position"].as_i64().unwrap(),
    )
    .await;
    assert_eq!(view["title"], "fresh");
    let future = app
        .client
        .get(app.url("/v1/tasks"))
        .bearer_auth(&alice.access_token)
        .header("X-Min-Position", "999999")
        .send()
        .await
        .unwrap();
    assert_eq!(future.status(), 422, "no command answered that position");
    let bad = app
        .client
        .get(app.url("/v1/tasks"))
        .bearer_auth(&alice.access_token)
        .header("X-Min-Position", "soon")
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
}

#[tokio::test]
async fn lists_page_with_a_cursor() {
    let app = TestApp::spawn().await;
    let alice = app.user("alice").await;
    let mut last = 0;
    for i in 0..5 {
        last = app.create_task(&alice, "pages", &format!("t{i}"), 0).await["position"]
            .as_i64()
            .unwrap();
    }
    app.wait_for_projection("tasks", last).await;
    let mut seen = Vec::new();
    // A blank cursor (a form's empty field) is no cursor: the first page.
    let mut url = "/v1/tasks?limit=2&cursor=".to_owned();
    loop {
        let page: Value = app.get(&alice, &url).await.json().await.unwrap();
        for item in page["items"].as_array().unwrap() {
            seen.push(item["title"].as_str().unwrap().to_owned());
        }
        match page["next_cursor"].as_str() {
            Some(cursor) => url = format!("/v1/tasks?limit=2&cursor={cursor}"),
            None => break,
        }
    }
    assert_eq!(seen, vec!["t4", "t3", "t2", "t1", "t0"]);
    let queues: Value = app.get(&alice, "/v1/queues").await.json().await.unwrap();
    assert_eq!(queues["items"][0]["queue"], "pages");
    assert_eq!(queues["items"][0]["queued"], 5);
}

#[tokio::test]
async fn bad_input_gets_a_clear_4xx_and_changes_nothing() {
    let app = TestApp::spawn().await;
    let alice = app.user("alice").await;
    let id = uuid::Uuid::new_v4();
    let cases: Vec<(&str, String, Option<&str>, u16)> = vec![
        ("POST", "/v1/tasks".into(), Some(r#"{"queue": "q"}"#), 422),
        (
            "POST",
            "/v1/tasks".into(),
            Some(r#"{"queue": "q", "title": "t", "owner": "x"}"#),
            422,
        ),
        (
            "POST",
            "/v1/tasks".into(),
            Some(r#"{"queue": "Q Q", "title": "t"}"#),
            422,
        ),
        (
            "POST",
            "/v1/tasks".into(),
            Some(r#"{"queue": "q", "title": "  "}"#),
            422,
        ),
        (
            "POST",
            "/v1/tasks".into(),
            Some(r#"{"queue": "q", "title": "t", "priority": 10}"#),
            422,
        ),
        (
            "POST",
            "/v1/tasks".into(),
            Some(r#"{"queue": "q", "title": "t", "priority": "high"}"#),
            422,
        ),
        (
            "POST",
            "/v1/tasks".into(),
            Some(r#"{"queue": "q", "title": "t", "max_attempts": 0}"#),
            422,
        ),
        (
            "POST",
            "/v1/tasks".into(),
            Some(r#"{"queue": "q", "title": "#),
            400,
        ),
        ("POST", "/v1/tasks".into(), Some("[]"), 422),
        (
            "POST",
            "/v1/queues/q/claim".into(),
            Some(r#"{"lease_seconds": 0}"#),
            422,
        ),
        (
            "POST",
            "/v1/queues/q/claim".into(),
            Some(r#"{"lease": 5}"#),
            422,
        ),
        ("POST", "/v1/queues/BAD!/claim".into(), None, 422),
        ("POST", format!("/v1/tasks/{id}/complete"), None, 404),
        ("POST", "/v1/tasks/not-a-uuid/complete".into(), None, 404),
        (
            "POST",
            format!("/v1/tasks/{id}/heartbeat"),
            Some(r#"{"progress": 101}"#),
            422,
        ),
        ("POST", format!("/v1/tasks/{id}/fail"), Some(r#"{}"#), 422),
        ("GET", "/v1/tasks?status=lost".into(), None, 422),
        ("GET", "/v1/tasks?limit=0".into(), None, 422),
        ("GET", "/v1/tasks?limit=ten".into(), None, 422),
        ("GET", "/v1/tasks?cursor=garbage".into(), None, 422),
        ("GET", "/v1/tasks?colour=red".into(), None, 422),
        ("GET", format!("/v1/tasks/{id}"), None, 404),
        ("GET", "/v1/nothing-here".into(), None, 404),
    ];
    for (method, path, body, expected) in cases {
        let mut req = app
            .client
            .request(method.parse().unwrap(), app.url(&path))
            .bearer_auth(&alice.access_token);
        if let Some(body) = body {
            req = req.header("content-type", "application/json").body(body);
        }
        let res = req.send().await.unwrap();
        assert_eq!(res.status().as_u16(), expected, "{method} {path} {body:?}");
        assert_eq!(
            res.headers()["content-type"],
            "application/problem+json",
            "{method} {path}"
        );
        let problem: Value = res.json().await.unwrap();
        assert_eq!(problem["status"], expected);
        assert!(problem["detail"].as_str().is_some_and(|d| !d.is_empty()));
    }
    let no_token = app
        .client
        .post(app.url("/v1/tasks"))
        .json(&json!({"queue": "q", "title": "t"}))
        .send()
        .await
        .unwrap();
    assert_eq!(no_token.status(), 401);
    let events = app.event_count().await;
    assert_eq!(events, 0, "refused commands append nothing");
}

/// Lookups by id are read together when they arrive at once (`http::batched`): each still gets
/// its own task, an unknown id gets 404, and a task stays hidden from a user who neither
/// created nor holds it.
#[tokio::test]
async fn concurrent_lookups_each_get_their_own_task_and_no_one_elses() {
    let app = TestApp::spawn().await;
    let (alice, bob) = (app.user("alice").await, app.user("bob").await);
    let mut owned = Vec::new();
    for i in 0..20 {
        let user = if i % 2 == 0 { &alice } else { &bob };
        let created = app
            .create_task(user, "lookups", &format!("task {i}"), 0)
            .await;
        owned.push((user, created["id"].as_str().unwrap().to_owned()));
    }
    let head = app.head().await;
    let lookups = owned.iter().flat_map(|(owner, id)| {
        let stranger = if std::ptr::eq(*owner, &alice) {
            &bob
        } else {
            &alice
        };
        [(*owner, id.clone(), true), (stranger, id.clone(), false)]
    });
    let unknown = uuid::Uuid::new_v4().to_string();
    let app = &app;
    let answers = futures::future::join_all(
        lookups
            .chain([(&alice, unknown, false)])
            .cycle()
            .take(41 * 3)
            .map(|(user, id, visible)| async move {
                let res = app.get_at(user, &format!("/v1/tasks/{id}"), head).await;
                let status = res.status();
                let body: Value = res.json().await.unwrap();
                (id, visible, status, body)
            }),
    )
    .await;
    for (id, visible, status, body) in answers {
        if visible {
            assert_eq!(status, StatusCode::OK, "{id}: {body}");
            assert_eq!(body["id"], id.as_str(), "its own task");
        } else {
            assert_eq!(status, StatusCode::NOT_FOUND, "{id}: {body}");
            assert_eq!(
                body["type"].as_str().map(|t| t.ends_with("not-found")),
                Some(true)
            );
        }
    }
}

/// Read your writes on claims: a worker that saw a task's position (a command's answer, an
/// SSE id) and claims with `X-Min-Position` gets that task, though the queue's read model has
/// not applied it yet (here no worker process runs until the claim is waiting).
#[tokio::test]
async fn a_claim_with_x_min_position_waits_for_the_queue_to_show_that_task() {
    let settings = common::test_settings(
        &common::fresh_database().await,
        &std::env::var("NATS_URL").expect("NATS_URL"),
    );
    let api = TestApp::spawn_with(settings.clone(), bountyline::startup::Parts::API).await;
    let (creator, worker) = (api.user("creator").await, api.user("worker").await);
    let task = api.create_task(&creator, "ryw", "resize", 0).await;
    api.may_work("ryw", &worker).await;
    let claim = api
        .client
        .post(api.url("/v1/queues/ryw/claim"))
        .bearer_auth(&worker.access_token)
        .header("X-Min-Position", task["position"].to_string())
        .send();
    let workers = async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        TestApp::spawn_with(settings, bountyline::startup::Parts::WORKERS).await
    };
    let (claimed, _workers) = tokio::join!(claim, workers);
    let claimed = claimed.expect("claim");
    assert_eq!(claimed.status(), StatusCode::OK);
    let claimed: Value = claimed.json().await.unwrap();
    assert_eq!(claimed["id"], task["id"]);
}
