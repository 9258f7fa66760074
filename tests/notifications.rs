//! Notifications: each user's feed is built from the events that concern them, read flags are
//! the user's own events (so a rebuild keeps them), and the `me` and `bounties` streams show
//! each viewer only what they may see.

mod common;

use bountyline_projections::notifications::NotificationsProjection;
use bountyline_projections::rebuild;
use common::*;
use eventsource_stream::Eventsource;
use futures::{Stream, StreamExt};
use serde_json::{json, Value};
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;
use uuid::Uuid;

/// Every test here finishes within this, whatever hangs.
const TEST_LIMIT: Duration = Duration::from_secs(120);
/// How long one read from a stream may take.
const READ_LIMIT: Duration = Duration::from_secs(10);

async fn within<F: Future<Output = ()>>(test: F) {
    tokio::time::timeout(TEST_LIMIT, test)
        .await
        .unwrap_or_else(|_| panic!("the test did not finish within {TEST_LIMIT:?}"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_bounty_flow_notifies_each_party_of_what_concerns_them_and_nobody_else() {
    within(async {
        let app = TestApp::spawn().await;
        let (poster, hunter, stranger) = (
            app.user("poster").await,
            app.user("hunter").await,
            app.user("stranger").await,
        );
        let bounty = run_bounty_flow(&app, &poster, &hunter).await;

        let feed = feed_of(&app, &poster, "").await;
        assert_eq!(
            kinds(&feed),
            ["work_submitted", "work_submitted", "application_received"],
            "newest first"
        );
        assert_eq!(feed["unread_count"], 3);
        let received = &feed["items"][2];
        assert_eq!(received["subject_id"], bounty.as_str());
        assert_eq!(received["data"]["bounty_id"], bounty.as_str());
        assert_eq!(received["data"]["title"], "Write the docs");
        assert_eq!(received["data"]["hunter"], hunter.id.to_string());
        assert!(received["data"].get("pitch").is_none(), "{received}");
        assert_eq!(feed["items"][0]["data"]["revision"], 2);

        let feed = feed_of(&app, &hunter, "").await;
        assert_eq!(
            kinds(&feed),
            [
                "paid",
                "work_approved",
                "work_rejected",
                "application_accepted"
            ]
        );
        assert_eq!(feed["unread_count"], 4);
        let paid = &feed["items"][0]["data"];
        assert_eq!(paid["amount"], 2500);
        assert_eq!(paid["currency"], "USD");
        assert_eq!(paid["from"], poster.id.to_string());
        assert_eq!(paid["bounty_id"], bounty.as_str());
        assert_eq!(paid["title"], "Write the docs");
        assert_eq!(
            feed["items"][1]["data"]["reward"],
            json!({"amount": 2500, "currency": "USD"})
        );
        assert_eq!(feed["items"][2]["data"]["reason"], "needs an example");
        assert!(feed["items"]
            .as_array()
            .expect("items")
            .iter()
            .all(|n| n["read_at"].is_null()));

        let feed = feed_of(&app, &stranger, "").await;
        assert_eq!(feed["items"], json!([]));
        assert_eq!(feed["unread_count"], 0);
        app.shutdown.trigger().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn marking_read_lowers_the_unread_count_once_and_only_for_the_owner() {
    within(async {
        let app = TestApp::spawn().await;
        let (poster, hunter, stranger) = (
            app.user("poster").await,
            app.user("hunter").await,
            app.user("stranger").await,
        );
        run_bounty_flow(&app, &poster, &hunter).await;
        let feed = feed_of(&app, &hunter, "").await;
        let ids = item_ids(&feed);
        assert_eq!(ids.len(), 4);

        let one = format!("/v1/notifications/{}/read", ids[0]);
        let res = app.post(&stranger, &one, &json!({})).await;
        assert_eq!(res.status(), 404, "someone else's notification");
        let res = app.post(&poster, &one, &json!({})).await;
        assert_eq!(res.status(), 404, "the other party's notification");
        let missing = format!("/v1/notifications/{}/read", Uuid::new_v4());
        assert_eq!(app.post(&hunter, &missing, &json!({})).await.status(), 404);
        let res = app
            .post(&hunter, "/v1/notifications/not-an-id/read", &json!({}))
            .await;
        assert_eq!(res.status(), 404);

        let res = app.post(&hunter, &one, &json!({})).await;
        assert_eq!(res.status(), 200);
        let first: Value = res.json().await.expect("json");
        assert_eq!(first["id"], hunter.id.to_string());
        let res = app.post(&hunter, &one, &json!({})).await;
        assert_eq!(res.status(), 200, "marking again is fine");
        let again: Value = res.json().await.expect("json");
        assert_eq!(again["version"], first["version"], "and records nothing");

        let feed = feed_of(&app, &hunter, "").await;
        assert_eq!(feed["unread_count"], 3);
        assert!(!feed["items"][0]["read_at"].is_null());
        let unread = feed_of(&app, &hunter, "?unread=true").await;
        assert_eq!(item_ids(&unread), ids[1..].to_vec());
        assert_eq!(unread["unread_count"], 3);

        let res = app
            .post(
                &hunter,
                "/v1/notifications/read",
                &json!({"ids": [ids[1], ids[2], Uuid::new_v4()]}),
            )
            .await;
        assert_eq!(res.status(), 404, "one unknown id refuses them all");
        assert_eq!(feed_of(&app, &hunter, "").await["unread_count"], 3);
        for bad in [
            json!({"ids": []}),
            json!({"ids": vec![ids[1].clone(); 201]}),
        ] {
            let res = app.post(&hunter, "/v1/notifications/read", &bad).await;
            assert_eq!(res.status(), 422, "{bad}");
        }
        let all = json!({ "ids": ids });
        let res = app.post(&hunter, "/v1/notifications/read", &all).await;
        assert_eq!(res.status(), 200);
        let feed = feed_of(&app, &hunter, "").await;
        assert_eq!(feed["unread_count"], 0);
        assert_eq!(
            feed_of(&app, &hunter, "?unread=true").await["items"],
            json!([])
        );
        assert_eq!(
            feed_of(&app, &poster, "").await["unread_count"],
            3,
            "the poster's feed is their own"
        );

        // The feed pages by position, newest first.
        let page = feed_of(&app, &hunter, "?limit=3").await;
        assert_eq!(item_ids(&page), ids[..3].to_vec());
        let cursor = page["next_cursor"].as_str().expect("a next page");
        let rest = feed_of(&app, &hunter, &format!("?limit=3&cursor={cursor}")).await;
        assert_eq!(item_ids(&rest), ids[3..].to_vec());
        assert!(rest["next_cursor"].is_null());
        assert_eq!(
            app.get(&hunter, "/v1/notifications?cursor=nonsense")
                .await
                .status(),
            422
        );

        // Read flags are events: a rebuild from the store equals the live feed.
        app.settle().await;
        let projection = NotificationsProjection;
        rebuild::build_shadow(&app.pool, &projection, None, &|_, _| {})
            .await
            .expect("rebuild");
        let differing = rebuild::diff(&app.pool, &projection).await.expect("diff");
        assert!(
            differing.iter().all(|(_, rows)| *rows == 0),
            "the rebuild differs from live: {differing:?}"
        );
        let read: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM rebuild_notifications.notifications WHERE read_at IS NOT NULL",
        )
        .fetch_one(&app.pool)
        .await
        .expect("count");
        assert_eq!(read, 4, "the rebuild kept the read flags");
        app.shutdown.trigger().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_dead_lettered_task_notifies_its_creator_not_its_worker() {
    within(async {
        let app = TestApp::spawn().await;
        let (alice, bob) = (app.user("alice").await, app.user("bob").await);
        let res = app
            .post(
                &alice,
                "/v1/tasks",
                &json!({"queue": "mail", "title": "send the digest", "max_attempts": 1}),
            )
            .await;
        assert_eq!(res.status(), 201);
        let task: Value = res.json().await.expect("json");
        app.settle().await;
        app.may_work("mail", &bob).await;
        let res = app.post(&bob, "/v1/queues/mail/claim", &json!({})).await;
        assert_eq!(res.status(), 200);
        let id = task["id"].as_str().expect("task id");
        let res = app
            .post(
                &bob,
                &format!("/v1/tasks/{id}/fail"),
                &json!({"error": "smtp down", "retryable": false}),
            )
            .await;
        assert_eq!(res.status(), 200);
        app.settle().await;

        let feed = feed_of(&app, &alice, "").await;
        assert_eq!(kinds(&feed), ["task_dead_lettered"]);
        let data = &feed["items"][0]["data"];
        assert_eq!(data["task_id"], id);
        assert_eq!(data["title"], "send the digest");
        assert_eq!(data["queue"], "mail");
        assert_eq!(data["error"], "smtp down");
        assert_eq!(feed_of(&app, &bob, "").await["unread_count"], 0);
        app.shutdown.trigger().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_me_stream_shows_my_deposit_but_not_another_users() {
    within(async {
        let app = TestApp::spawn().await;
        let (alice, bob) = (app.user("alice").await, app.user("bob").await);
        // Resuming from the head catches up from the store, so nothing depends on when the
        // hub started following the live stream.
        let head = app.head().await;
        let mut mine = Sse::open(&app, &alice, "me", head).await;
        app.deposit(&bob, 700, "USD").await;
        app.deposit(&alice, 500, "USD").await;

        let got = mine.next().await;
        assert_eq!(got.event, "DepositConfirmed");
        assert_eq!(got.data["owner"], alice.id.to_string());
        assert_eq!(got.data["amount"], 500);
        assert_eq!(got.data["available"], 500);
        assert_eq!(got.data["held"], 0);
        mine.expect_nothing(Duration::from_millis(700)).await;

        let mut his = Sse::open(&app, &bob, "me", head).await;
        let got = his.next().await;
        assert_eq!(got.data["owner"], bob.id.to_string());
        assert_eq!(got.data["amount"], 700);
        his.expect_nothing(Duration::from_millis(700)).await;
        app.shutdown.trigger().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_bounties_stream_shows_a_stranger_a_new_bounty_without_private_fields() {
    within(async {
        let app = TestApp::spawn().await;
        let (poster, hunter, stranger) = (
            app.user("poster").await,
            app.user("hunter").await,
            app.user("stranger").await,
        );
        app.deposit(&poster, 10_000, "USD").await;
        app.settle().await;
        let head = app.head().await;
        let mut board = Sse::open(&app, &stranger, "bounties", head).await;
        let mut strangers_own = Sse::open(&app, &stranger, "me", head).await;
        let mut posters_own = Sse::open(&app, &poster, "me", head).await;

        let bounty = post_bounty(&app, &poster).await;
        app.settle().await;
        apply(&app, &hunter, &bounty).await;

        let posted = board.next().await;
        assert_eq!(posted.event, "BountyPosted");
        assert_eq!(
            posted.data,
            json!({
                "bounty_id": bounty,
                "version": 1,
                "status": "funding",
                "title": "Write the docs",
                "reward": {"amount": 2500, "currency": "USD"},
            })
        );
        let opened = board.next().await;
        assert_eq!(opened.event, "BountyOpened");
        assert_eq!(opened.data["status"], "open");
        let applied = board.next().await;
        assert_eq!(applied.event, "ApplicationSubmitted");
        assert_eq!(
            applied.data,
            json!({"bounty_id": bounty, "version": 3, "status": null})
        );
        for message in [&posted, &opened, &applied] {
            let text = message.data.to_string();
            assert!(
                !text.contains("secret plan") && !text.contains("every endpoint"),
                "private content on the board: {text}"
            );
        }

        // The poster's own stream has the application, pitch and all; a stranger's has none.
        let application = loop {
            let message = posters_own.next().await;
            if message.event == "ApplicationSubmitted" {
                break message;
            }
        };
        assert_eq!(application.data["pitch"], "my secret plan");
        assert_eq!(application.data["bounty_id"], bounty.as_str());
        strangers_own
            .expect_nothing(Duration::from_millis(700))
            .await;
        app.shutdown.trigger().await;
    })
    .await;
}

// ---------------------------------------------------------------------------------------------
// Helpers of this file.
// ---------------------------------------------------------------------------------------------

/// Posts, funds, and takes a bounty through apply, accept, submit, reject, submit and approve,
/// then waits until everything (the payout included) is applied. Returns the bounty id.
async fn run_bounty_flow(app: &TestApp, poster: &TestUser, hunter: &TestUser) -> String {
    app.deposit(poster, 10_000, "USD").await;
    app.settle().await;
    let bounty = post_bounty(app, poster).await;
    app.settle().await;
    let application = apply(app, hunter, &bounty).await;
    let steps: [(&TestUser, &str, Value); 5] = [
        (poster, "accept", json!({ "application_id": application })),
        (hunter, "submit", json!({"deliverable": "first draft"})),
        (poster, "reject", json!({"reason": "needs an example"})),
        (hunter, "submit", json!({"deliverable": "with an example"})),
        (poster, "approve", json!({})),
    ];
    for (user, step, body) in steps {
        let res = app
            .post(user, &format!("/v1/bounties/{bounty}/{step}"), &body)
            .await;
        let status = res.status();
        assert_eq!(
            status,
            200,
            "{step}: {}",
            res.text().await.unwrap_or_default()
        );
    }
    app.settle().await;
    bounty
}

async fn post_bounty(app: &TestApp, poster: &TestUser) -> String {
    let res = app
        .post(
            poster,
            "/v1/bounties",
            &json!({
                "title": "Write the docs",
                "description": "Document every endpoint",
                "reward": {"amount": 2500, "currency": "USD"},
            }),
        )
        .await;
    let status = res.status();
    let body: Value = res.json().await.expect("json");
    assert_eq!(status, 201, "post: {body}");
    body["id"].as_str().expect("bounty id").to_owned()
}

/// Applies with a pitch only the poster and the hunter may see; returns the application id.
async fn apply(app: &TestApp, hunter: &TestUser, bounty: &str) -> String {
    let res = app
        .post(
            hunter,
            &format!("/v1/bounties/{bounty}/applications"),
            &json!({"pitch": "my secret plan"}),
        )
        .await;
    let status = res.status();
    let body: Value = res.json().await.expect("json");
    assert_eq!(status, 201, "apply: {body}");
    body["application_id"]
        .as_str()
        .expect("application id")
        .to_owned()
}

/// `GET /v1/notifications{query}` once the feed has applied everything in the store.
async fn feed_of(app: &TestApp, user: &TestUser, query: &str) -> Value {
    let head = app.head().await;
    let res = app
        .client
        .get(app.url(&format!("/v1/notifications{query}")))
        .bearer_auth(&user.access_token)
        .header("X-Min-Position", head.to_string())
        .send()
        .await
        .expect("request");
    let status = res.status();
    let body: Value = res.json().await.expect("json");
    assert_eq!(status, 200, "{body}");
    body
}

fn kinds(feed: &Value) -> Vec<String> {
    feed["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|n| n["kind"].as_str().expect("kind").to_owned())
        .collect()
}

fn item_ids(feed: &Value) -> Vec<String> {
    feed["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|n| n["id"].as_str().expect("id").to_owned())
        .collect()
}

#[derive(Debug)]
struct SseMessage {
    event: String,
    data: Value,
}

type Events = Pin<Box<dyn Stream<Item = SseMessage> + Send>>;

/// An SSE subscription, read message by message.
struct Sse {
    events: Events,
}

impl Sse {
    /// Subscribes to `topic`, resuming after `after` (catch-up from the store, then live).
    async fn open(app: &TestApp, user: &TestUser, topic: &str, after: i64) -> Sse {
        let res = app
            .client
            .get(app.url(&format!("/v1/streams/{topic}")))
            .bearer_auth(&user.access_token)
            .header("Last-Event-ID", after.to_string())
            .send()
            .await
            .expect("stream request");
        assert_eq!(res.status(), 200, "subscribe to {topic}");
        let events = res
            .bytes_stream()
            .eventsource()
            .filter_map(|event| async move {
                let event = event.expect("a well-formed SSE stream");
                // Keep-alive comments and `retry:` carry no data.
                (!event.data.is_empty()).then(|| SseMessage {
                    event: event.event,
                    data: serde_json::from_str(&event.data).expect("data is JSON"),
                })
            });
        Sse {
            events: Box::pin(events),
        }
    }

    async fn next(&mut self) -> SseMessage {
        tokio::time::timeout(READ_LIMIT, self.events.next())
            .await
            .unwrap_or_else(|_| panic!("no SSE message within {READ_LIMIT:?}"))
            .expect("the stream ended")
    }

    async fn expect_nothing(&mut self, period: Duration) {
        if let Ok(Some(message)) = tokio::time::timeout(period, self.events.next()).await {
            panic!("unexpected message {message:?}");
        }
    }
}
