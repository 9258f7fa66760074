//! Expected versions and conditional reads (API.md "Conventions"): every command on an
//! aggregate the request names honours `If-Match` (412 naming the current version, and nothing
//! appended, when the aggregate moved; done when it did not), and every read answers an
//! `ETag` that `If-None-Match` turns into a 304 until what it tags changes.

mod common;

use common::*;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

/// The version the store holds of an aggregate (0: none).
async fn version(app: &TestApp, kind: &str, id: &str) -> i64 {
    sqlx::query_scalar(
        "SELECT coalesce(max(sequence), 0)::bigint FROM events \
         WHERE aggregate_type = $1 AND aggregate_id = $2",
    )
    .bind(kind)
    .bind(id)
    .fetch_one(&app.pool)
    .await
    .unwrap()
}

/// A command: `method path` as `user` with `body` and, if given, `If-Match`.
async fn send(
    app: &TestApp,
    user: &TestUser,
    method: Method,
    path: &str,
    body: &Value,
    if_match: Option<&str>,
) -> reqwest::Response {
    let mut req = app
        .client
        .request(method, app.url(path))
        .bearer_auth(&user.access_token)
        .json(body);
    if let Some(tag) = if_match {
        req = req.header("If-Match", tag);
    }
    req.send().await.unwrap()
}

/// The aggregate a command addresses: its type and id in the store.
struct Target<'a> {
    kind: &'a str,
    id: String,
}

/// Sends the command with an `If-Match` naming a version the aggregate is not at: 412 naming
/// the current version, nothing appended; then with the current version: done. Returns the
/// second answer.
async fn refused_when_moved_done_when_current(
    app: &TestApp,
    user: &TestUser,
    method: Method,
    path: &str,
    body: Value,
    target: Target<'_>,
) -> Value {
    app.settle().await;
    let current = version(app, target.kind, &target.id).await;
    let (events, head) = (app.event_count().await, app.head().await);
    let stale = format!("\"{}\"", (current - 1).max(0));
    let res = send(app, user, method.clone(), path, &body, Some(&stale)).await;
    assert_eq!(
        res.status(),
        StatusCode::PRECONDITION_FAILED,
        "{method} {path} with {stale}"
    );
    assert_eq!(res.headers()["content-type"], "application/problem+json");
    assert_eq!(res.headers()["etag"], format!("\"{current}\"").as_str());
    let problem: Value = res.json().await.unwrap();
    assert_eq!(
        problem["type"], "https://bountyline.dev/problems/precondition-failed",
        "{problem}"
    );
    assert_eq!(problem["status"], 412);
    assert_eq!(
        problem["current_version"], current,
        "{method} {path}: {problem}"
    );
    assert_eq!(
        app.event_count().await,
        events,
        "{method} {path}: nothing appended"
    );
    assert_eq!(app.head().await, head);
    assert_eq!(version(app, target.kind, &target.id).await, current);

    let tag = format!("\"{current}\"");
    let res = send(app, user, method.clone(), path, &body, Some(&tag)).await;
    let status = res.status();
    let answer: Value = res.json().await.unwrap();
    assert!(
        status.is_success(),
        "{method} {path} with {tag}: {status} {answer}"
    );
    assert_eq!(answer["id"], target.id.as_str(), "{answer}");
    assert!(answer["version"].as_i64().unwrap() >= current, "{answer}");
    answer
}

fn task(id: &str) -> Target<'_> {
    Target {
        kind: "Task",
        id: id.to_owned(),
    }
}

fn bounty(id: &str) -> Target<'_> {
    Target {
        kind: "Bounty",
        id: id.to_owned(),
    }
}

/// A task of `creator`'s in `queue`, claimed by `worker`: its id.
async fn claimed(app: &TestApp, creator: &TestUser, worker: &TestUser, queue: &str) -> String {
    let created = app.create_task(creator, queue, "resize", 0).await;
    app.may_work(queue, worker).await;
    let res = app
        .client
        .post(app.url(&format!("/v1/queues/{queue}/claim")))
        .bearer_auth(&worker.access_token)
        .header("X-Min-Position", created["position"].to_string())
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200, "claim");
    created["id"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn every_task_command_is_refused_with_the_current_version_when_the_task_moved() {
    let app = TestApp::spawn().await;
    let (creator, worker) = (app.user("creator").await, app.user("worker").await);
    let id = claimed(&app, &creator, &worker, "thumbs").await;
    let on = |action: &str| format!("/v1/tasks/{id}/{action}");
    let beat = json!({"progress": 10});
    refused_when_moved_done_when_current(
        &app,
        &worker,
        Method::POST,
        &on("heartbeat"),
        beat,
        task(&id),
    )
    .await;
    let failure = json!({"error": "disk full", "retryable": true});
    refused_when_moved_done_when_current(
        &app,
        &worker,
        Method::POST,
        &on("fail"),
        failure,
        task(&id),
    )
    .await;
    refused_when_moved_done_when_current(
        &app,
        &creator,
        Method::POST,
        &on("cancel"),
        json!(null),
        task(&id),
    )
    .await;

    let id = claimed(&app, &creator, &worker, "thumbs").await;
    let path = format!("/v1/tasks/{id}/complete");
    let done = json!({"result": {"ok": true}});
    let answer =
        refused_when_moved_done_when_current(&app, &worker, Method::POST, &path, done, task(&id))
            .await;
    assert_eq!(answer["version"], 3, "created, claimed, completed");
}

#[tokio::test]
async fn every_bounty_command_is_refused_with_the_current_version_when_the_bounty_moved() {
    let app = TestApp::spawn().await;
    let admin = app.admin().await;
    let poster = app.user("poster").await;
    let (ann, ben) = (app.user("ann").await, app.user("ben").await);
    app.deposit(&poster, 10_000, "USD").await;
    let post = |title: &str| {
        json!({"title": title, "description": "make it work",
               "reward": {"amount": 1_000, "currency": "USD"}})
    };
    let posted = |title: &'static str| {
        let (app, poster) = (&app, &poster);
        async move {
            let res = app.post(poster, "/v1/bounties", &post(title)).await;
            assert_eq!(res.status(), 201);
            let answer: Value = res.json().await.unwrap();
            answer["id"].as_str().unwrap().to_owned()
        }
    };
    let check = |user: &'static str, method: Method, id: String, action: String, body: Value| {
        let app = &app;
        let user = match user {
            "admin" => &admin,
            "poster" => &poster,
            "ann" => &ann,
            _ => &ben,
        };
        async move {
            let path = match action.starts_with("/v1/") {
                true => action.clone(),
                false => format!("/v1/bounties/{id}/{action}"),
            };
            refused_when_moved_done_when_current(app, user, method, &path, body, bounty(&id)).await
        }
    };
    let pitch = json!({"pitch": "I know this code"});

    // Apply, withdraw, apply again, accept, submit, reject, submit, dispute, resolve.
    let id = posted("first").await;
    let applied = check(
        "ann",
        Method::POST,
        id.clone(),
        "applications".into(),
        pitch.clone(),
    )
    .await;
    let withdrawn = format!(
        "applications/{}",
        applied["application_id"].as_str().unwrap()
    );
    check("ann", Method::DELETE, id.clone(), withdrawn, json!(null)).await;
    let applied = check(
        "ben",
        Method::POST,
        id.clone(),
        "applications".into(),
        pitch.clone(),
    )
    .await;
    let accept = json!({"application_id": applied["application_id"]});
    check("poster", Method::POST, id.clone(), "accept".into(), accept).await;
    let work = json!({"deliverable": "done"});
    check(
        "ben",
        Method::POST,
        id.clone(),
        "submit".into(),
        work.clone(),
    )
    .await;
    let reason = json!({"reason": "not quite"});
    check(
        "poster",
        Method::POST,
        id.clone(),
        "reject".into(),
        reason.clone(),
    )
    .await;
    check(
        "ben",
        Method::POST,
        id.clone(),
        "submit".into(),
        work.clone(),
    )
    .await;
    check(
        "ben",
        Method::POST,
        id.clone(),
        "dispute".into(),
        reason.clone(),
    )
    .await;
    let resolve = format!("/v1/admin/bounties/{id}/resolve");
    check(
        "admin",
        Method::POST,
        id.clone(),
        resolve,
        json!({"outcome": "pay_hunter"}),
    )
    .await;

    // Approve.
    let id = posted("second").await;
    let applied = check(
        "ann",
        Method::POST,
        id.clone(),
        "applications".into(),
        pitch.clone(),
    )
    .await;
    let accept = json!({"application_id": applied["application_id"]});
    check("poster", Method::POST, id.clone(), "accept".into(), accept).await;
    check(
        "ann",
        Method::POST,
        id.clone(),
        "submit".into(),
        work.clone(),
    )
    .await;
    check(
        "poster",
        Method::POST,
        id.clone(),
        "approve".into(),
        json!(null),
    )
    .await;

    // Cancel.
    let id = posted("third").await;
    check(
        "poster",
        Method::POST,
        id.clone(),
        "cancel".into(),
        json!(null),
    )
    .await;
}

#[tokio::test]
async fn wallet_and_inbox_commands_are_refused_with_the_current_version_when_they_moved() {
    let app = TestApp::spawn().await;
    let (admin, member) = (app.admin().await, app.user("member").await);
    app.deposit(&member, 5_000, "USD").await;
    // An application to the member's bounty notifies them.
    let post =
        json!({"title": "t", "description": "d", "reward": {"amount": 500, "currency": "USD"}});
    let posted: Value = app
        .post(&member, "/v1/bounties", &post)
        .await
        .json()
        .await
        .unwrap();
    let hunter = app.user("hunter").await;
    app.settle().await;
    let apply = format!(
        "/v1/bounties/{}/applications",
        posted["id"].as_str().unwrap()
    );
    let applied = app.post(&hunter, &apply, &json!({"pitch": "me"})).await;
    assert_eq!(applied.status(), 201);
    let wallet = || Target {
        kind: "Wallet",
        id: member.id.to_string(),
    };
    let withdraw = json!({"amount": 1_000, "currency": "USD"});
    let path = "/v1/wallets/me/withdrawals";
    refused_when_moved_done_when_current(&app, &member, Method::POST, path, withdraw, wallet())
        .await;
    let credit = json!({"amount": 300, "currency": "USD", "reason": "goodwill"});
    let path = format!("/v1/admin/wallets/{}/credit", member.id);
    refused_when_moved_done_when_current(&app, &admin, Method::POST, &path, credit, wallet()).await;

    // Marking the notification read makes the inbox, marking it again
    // changes nothing and is still refused on a version the inbox is not at.
    app.settle().await;
    let feed: Value = app
        .get_at(&member, "/v1/notifications", app.head().await)
        .await
        .json()
        .await
        .unwrap();
    let note = feed["items"][0]["id"]
        .as_str()
        .expect("a notification")
        .to_owned();
    let path = format!("/v1/notifications/{note}/read");
    let marked = send(&app, &member, Method::POST, &path, &json!(null), None).await;
    assert_eq!(marked.status(), 200);
    let inbox = Target {
        kind: "Inbox",
        id: member.id.to_string(),
    };
    refused_when_moved_done_when_current(&app, &member, Method::POST, &path, json!(null), inbox)
        .await;
    let inbox = Target {
        kind: "Inbox",
        id: member.id.to_string(),
    };
    let many = json!({"ids": [note]});
    refused_when_moved_done_when_current(
        &app,
        &member,
        Method::POST,
        "/v1/notifications/read",
        many,
        inbox,
    )
    .await;
}

#[tokio::test]
async fn if_match_any_lists_weak_tags_strangers_and_malformed_values_are_answered_as_documented() {
    let app = TestApp::spawn().await;
    let (creator, worker) = (app.user("creator").await, app.user("worker").await);
    let stranger = app.user("stranger").await;
    let id = claimed(&app, &creator, &worker, "q").await;
    let beat = format!("/v1/tasks/{id}/heartbeat");
    let events = app.event_count().await;

    for malformed in ["2", "\"two\"", "\"-2\"", "*, \"2\"", "\"2", "W/2", ","] {
        let res = send(
            &app,
            &worker,
            Method::POST,
            &beat,
            &json!(null),
            Some(malformed),
        )
        .await;
        assert_eq!(res.status(), 400, "If-Match: {malformed}");
        assert_eq!(res.headers()["content-type"], "application/problem+json");
    }
    let weak = send(
        &app,
        &worker,
        Method::POST,
        &beat,
        &json!(null),
        Some("W/\"2\""),
    )
    .await;
    assert_eq!(weak.status(), 412, "a weak tag never matches");
    let problem: Value = weak.json().await.unwrap();
    assert_eq!(problem["current_version"], 2);
    assert_eq!(app.event_count().await, events, "nothing appended");

    // A stranger hears what they heard without the header, never the version.
    let hidden = send(
        &app,
        &stranger,
        Method::POST,
        &beat,
        &json!(null),
        Some("\"1\""),
    )
    .await;
    assert_eq!(hidden.status(), 404);
    let problem: Value = hidden.json().await.unwrap();
    assert!(problem.get("current_version").is_none(), "{problem}");
    // As does anyone naming a task that does not exist.
    let nowhere = format!("/v1/tasks/{}/heartbeat", uuid::Uuid::now_v7());
    let missing = send(
        &app,
        &worker,
        Method::POST,
        &nowhere,
        &json!(null),
        Some("*"),
    )
    .await;
    assert_eq!(missing.status(), 404);
    assert_eq!(app.event_count().await, events, "nothing appended");

    let listed = send(
        &app,
        &worker,
        Method::POST,
        &beat,
        &json!(null),
        Some("\"9\", \"2\""),
    )
    .await;
    assert_eq!(listed.status(), 200, "one of a list");
    let any = send(&app, &worker, Method::POST, &beat, &json!(null), Some("*")).await;
    assert_eq!(any.status(), 200, "any version of a task that exists");
    let answer: Value = any.json().await.unwrap();
    assert_eq!(answer["version"], 4);

    // Creations and claims take no expectation: the header is not read there.
    let create = json!({"queue": "q", "title": "another"});
    let res = send(
        &app,
        &creator,
        Method::POST,
        "/v1/tasks",
        &create,
        Some("\"5\""),
    )
    .await;
    assert_eq!(res.status(), 201);
}

#[tokio::test]
async fn a_retry_under_its_idempotency_key_gets_the_first_answer_after_the_version_moved() {
    let app = TestApp::spawn().await;
    let (creator, worker) = (app.user("creator").await, app.user("worker").await);
    let id = claimed(&app, &creator, &worker, "q").await;
    let beat = format!("/v1/tasks/{id}/heartbeat");
    let keyed = || {
        app.client
            .post(app.url(&beat))
            .bearer_auth(&worker.access_token)
            .header("Idempotency-Key", "beat-1")
            .header("If-Match", "\"2\"")
            .json(&json!({"progress": 5}))
    };
    let first = keyed().send().await.unwrap();
    assert_eq!(first.status(), 200);
    let first: Value = first.json().await.unwrap();
    assert_eq!(first["version"], 3);
    let moved = send(
        &app,
        &worker,
        Method::POST,
        &beat,
        &json!({"progress": 6}),
        None,
    )
    .await;
    assert_eq!(moved.status(), 200);

    let events = app.event_count().await;
    let retry = keyed().send().await.unwrap();
    assert_eq!(retry.status(), 200, "not 412: the first answer");
    assert_eq!(retry.headers()["idempotent-replayed"], "true");
    assert_eq!(retry.json::<Value>().await.unwrap(), first);
    assert_eq!(app.event_count().await, events);
}

/// `GET path` as `user` after `position`, with `If-None-Match` if given.
async fn read(
    app: &TestApp,
    user: &TestUser,
    path: &str,
    position: i64,
    if_none_match: Option<&str>,
) -> reqwest::Response {
    let mut req = app
        .client
        .get(app.url(path))
        .bearer_auth(&user.access_token)
        .header("X-Min-Position", position.to_string());
    if let Some(tag) = if_none_match {
        req = req.header("If-None-Match", tag);
    }
    req.send().await.unwrap()
}

/// Reads `path` for its tag, then again with it: 304, no body, the same headers. Returns the
/// tag.
async fn revalidates(app: &TestApp, user: &TestUser, path: &str) -> String {
    let head = app.head().await;
    let res = read(app, user, path, head, None).await;
    assert_eq!(res.status(), 200, "{path}");
    assert_eq!(
        res.headers()["cache-control"],
        "private, no-cache",
        "{path}"
    );
    assert!(
        res.headers()
            .get_all("vary")
            .iter()
            .any(|v| v.to_str().unwrap().contains("Authorization")),
        "{path}"
    );
    let tag = res.headers()["etag"].to_str().unwrap().to_owned();
    let again = read(app, user, path, head, Some(&tag)).await;
    assert_eq!(again.status(), 304, "{path} with If-None-Match: {tag}");
    assert_eq!(again.headers()["etag"], tag.as_str());
    assert_eq!(again.headers()["cache-control"], "private, no-cache");
    assert!(again.bytes().await.unwrap().is_empty(), "a 304 has no body");
    let other = read(app, user, path, head, Some("\"not-it\"")).await;
    assert_eq!(other.status(), 200, "{path}: another tag");
    tag
}

#[tokio::test]
async fn reads_answer_an_etag_and_304_until_what_they_show_changes() {
    let app = TestApp::spawn().await;
    let (creator, worker) = (app.user("creator").await, app.user("worker").await);
    let id = claimed(&app, &creator, &worker, "q").await;
    app.deposit(&creator, 5_000, "USD").await;
    let posted = app
        .post(
            &creator,
            "/v1/bounties",
            &json!({"title": "t", "description": "d", "reward": {"amount": 100, "currency": "USD"}}),
        )
        .await;
    let bounty: Value = posted.json().await.unwrap();
    let bounty = bounty["id"].as_str().unwrap().to_owned();
    app.settle().await;
    let payments: Value = app
        .get_at(&creator, "/v1/payments", app.head().await)
        .await
        .json()
        .await
        .unwrap();
    let payment = payments["items"][0]["id"]
        .as_str()
        .expect("the escrow")
        .to_owned();

    // One resource: its version, which If-Match takes.
    let one = format!("/v1/tasks/{id}");
    assert_eq!(revalidates(&app, &creator, &one).await, "\"2\"");
    let bounty_tag = revalidates(&app, &creator, &format!("/v1/bounties/{bounty}")).await;
    assert_eq!(
        bounty_tag,
        format!("\"{}\"", version(&app, "Bounty", &bounty).await)
    );
    let payment_tag = revalidates(&app, &creator, &format!("/v1/payments/{payment}")).await;
    assert_eq!(
        payment_tag,
        format!("\"{}\"", version(&app, "Payment", &payment).await)
    );
    // `/v1/stats` is tagged the same way, but its per-second figures move with the clock.
    for path in ["/v1/me", "/v1/wallets/me", "/v1/queues"] {
        revalidates(&app, &creator, path).await;
    }
    // Lists: weak, by the read model's position and the query.
    let mut tags = Vec::new();
    for path in [
        "/v1/tasks",
        "/v1/tasks?status=claimed",
        "/v1/bounties",
        "/v1/bounties?sort=reward",
        "/v1/payments",
        "/v1/notifications",
        "/v1/wallets/me/entries",
    ] {
        let tag = revalidates(&app, &creator, path).await;
        assert!(tag.starts_with("W/\""), "{path}: {tag}");
        tags.push(tag);
    }
    assert_ne!(tags[0], tags[1], "another filter, another tag");
    assert_ne!(tags[2], tags[3]);
    let worker_list = revalidates(&app, &worker, "/v1/tasks").await;
    assert_ne!(worker_list, tags[0], "another caller, another tag");

    // A change: the old tags no longer match, and the task's new one is its new version.
    let beat = send(
        &app,
        &worker,
        Method::POST,
        &format!("/v1/tasks/{id}/heartbeat"),
        &json!(null),
        Some("\"2\""),
    )
    .await;
    assert_eq!(beat.status(), 200);
    let position = beat.json::<Value>().await.unwrap()["position"]
        .as_i64()
        .unwrap();
    let changed = read(&app, &creator, &one, position, Some("\"2\"")).await;
    assert_eq!(changed.status(), 200);
    assert_eq!(changed.headers()["etag"], "\"3\"");
    let list = read(&app, &creator, "/v1/tasks", position, Some(&tags[0])).await;
    assert_eq!(list.status(), 200, "the list moved on");
    assert_ne!(list.headers()["etag"], tags[0].as_str());
    let tag = list.headers()["etag"].to_str().unwrap().to_owned();
    let unchanged = read(&app, &creator, "/v1/tasks", position, Some(&tag)).await;
    assert_eq!(unchanged.status(), 304);
}

#[tokio::test]
async fn the_document_is_public_and_revalidates_by_its_etag() {
    let app = TestApp::spawn().await;
    let res = app
        .client
        .get(app.url("/openapi.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["cache-control"], "public, max-age=60");
    let tag = res.headers()["etag"].to_str().unwrap().to_owned();
    let again = app
        .client
        .get(app.url("/openapi.json"))
        .header("If-None-Match", &tag)
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 304);
    assert_eq!(again.headers()["etag"], tag.as_str());
}

#[tokio::test]
async fn of_commands_racing_on_one_version_exactly_one_is_carried_out() {
    let app = TestApp::spawn().await;
    let (creator, worker) = (app.user("creator").await, app.user("worker").await);
    let id = claimed(&app, &creator, &worker, "q").await;
    let beat = format!("/v1/tasks/{id}/heartbeat");
    let racing = (0..8).map(|i| {
        let body = json!({"progress": i});
        let (app, worker, beat) = (&app, &worker, &beat);
        async move {
            let res = send(app, worker, Method::POST, beat, &body, Some("\"2\"")).await;
            res.status().as_u16()
        }
    });
    let mut statuses = futures::future::join_all(racing).await;
    statuses.sort();
    assert_eq!(statuses, [200, 412, 412, 412, 412, 412, 412, 412]);
    assert_eq!(
        version(&app, "Task", &id).await,
        3,
        "one heartbeat appended"
    );
}

/// Commands on an aggregate the request names: each documents `If-Match` and its 412.
const EXPECTING: &[(&str, &str)] = &[
    ("post", "/v1/tasks/{id}/heartbeat"),
    ("post", "/v1/tasks/{id}/complete"),
    ("post", "/v1/tasks/{id}/fail"),
    ("post", "/v1/tasks/{id}/cancel"),
    ("post", "/v1/bounties/{id}/applications"),
    ("delete", "/v1/bounties/{id}/applications/{application_id}"),
    ("post", "/v1/bounties/{id}/accept"),
    ("post", "/v1/bounties/{id}/submit"),
    ("post", "/v1/bounties/{id}/approve"),
    ("post", "/v1/bounties/{id}/reject"),
    ("post", "/v1/bounties/{id}/cancel"),
    ("post", "/v1/bounties/{id}/dispute"),
    ("post", "/v1/admin/bounties/{id}/resolve"),
    ("post", "/v1/wallets/me/withdrawals"),
    ("post", "/v1/admin/wallets/{user_id}/credit"),
    ("post", "/v1/notifications/{id}/read"),
    ("post", "/v1/notifications/read"),
];

/// Reads that answer an `ETag`: each documents `If-None-Match`, its 304 and the headers.
const TAGGED: &[&str] = &[
    "/v1/tasks",
    "/v1/tasks/{id}",
    "/v1/queues",
    "/v1/bounties",
    "/v1/bounties/{id}",
    "/v1/payments",
    "/v1/payments/{id}",
    "/v1/wallets/me",
    "/v1/wallets/me/entries",
    "/v1/notifications",
    "/v1/me",
    "/v1/stats",
    "/openapi.json",
];

#[tokio::test]
async fn the_document_names_if_match_and_412_on_commands_and_etags_and_304_on_reads() {
    let app = TestApp::spawn().await;
    let doc: Value = app
        .client
        .get(app.url("/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let names = |op: &Value| -> Vec<String> {
        op["parameters"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|p| p["name"].as_str().unwrap_or_default().to_owned())
            .collect()
    };
    let mut flaws = Vec::new();
    for (method, path) in EXPECTING {
        let op = &doc["paths"][path][method];
        if !names(op).iter().any(|n| n == "If-Match") {
            flaws.push(format!("{method} {path}: no If-Match"));
        }
        let refusal = &op["responses"]["412"];
        if refusal["content"]["application/problem+json"]["example"]["current_version"].is_null() {
            flaws.push(format!(
                "{method} {path}: no 412 naming the current version"
            ));
        }
    }
    for path in TAGGED {
        let op = &doc["paths"][path]["get"];
        if !names(op).iter().any(|n| n == "If-None-Match") {
            flaws.push(format!("get {path}: no If-None-Match"));
        }
        if op["responses"]["304"]["headers"]["ETag"].is_null() {
            flaws.push(format!("get {path}: no 304 with its ETag"));
        }
        for header in ["ETag", "Cache-Control"] {
            if op["responses"]["200"]["headers"][header].is_null() {
                flaws.push(format!("get {path}: its 200 names no {header}"));
            }
        }
    }
    // Nothing else claims to read If-Match: creations and claims do not.
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let expecting = EXPECTING.iter().any(|(m, p)| m == method && p == path);
            if !expecting && names(op).iter().any(|n| n == "If-Match") {
                flaws.push(format!(
                    "{method} {path}: documents If-Match it does not read"
                ));
            }
        }
    }
    assert!(flaws.is_empty(), "{}", flaws.join("\n"));
}
