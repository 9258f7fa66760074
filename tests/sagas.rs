//! The process managers move money exactly once: a redelivery of the whole history, or a
//! worker stopped half way through a flow, never moves it twice, and running again
//! completes every flow.

mod common;

use bountyline::startup::Parts;
use common::{fresh_database, test_settings, TestApp, TestUser};
use serde_json::{json, Value};

async fn post_bounty(app: &TestApp, poster: &TestUser, reward: i64) -> String {
    let res = app
        .post(
            poster,
            "/v1/bounties",
            &json!({"title": "a job", "description": "do it",
            "reward": {"amount": reward, "currency": "USD"}}),
        )
        .await;
    assert_eq!(res.status(), 201);
    res.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// Takes a funded bounty from open to approved (the payout is the process managers' job).
async fn approve(app: &TestApp, id: &str, poster: &TestUser, hunter: &TestUser) {
    app.settle().await;
    let res = app
        .post(
            hunter,
            &format!("/v1/bounties/{id}/applications"),
            &json!({"pitch": "me"}),
        )
        .await;
    assert_eq!(res.status(), 201);
    let application: Value = res.json().await.unwrap();
    app.settle().await;
    let accept = app
        .post(
            poster,
            &format!("/v1/bounties/{id}/accept"),
            &json!({"application_id": application["application_id"]}),
        )
        .await;
    assert_eq!(accept.status(), 200);
    let submit = app
        .post(
            hunter,
            &format!("/v1/bounties/{id}/submit"),
            &json!({"deliverable": {"text": "done"}}),
        )
        .await;
    assert_eq!(submit.status(), 200);
    assert_eq!(
        app.post(poster, &format!("/v1/bounties/{id}/approve"), &json!({}))
            .await
            .status(),
        200
    );
}

async fn money_events(app: &TestApp) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM events WHERE aggregate_type IN ('Wallet', 'Payment')")
        .fetch_one(&app.pool)
        .await
        .unwrap()
}

#[tokio::test]
async fn replaying_every_event_through_the_process_managers_moves_no_money_twice() {
    let app = TestApp::spawn().await;
    let (poster, hunter) = (app.user("poster").await, app.user("hunter").await);
    app.deposit(&poster, 10_000, "USD").await;
    let paid = post_bounty(&app, &poster, 3_000).await;
    approve(&app, &paid, &poster, &hunter).await;
    let refunded = post_bounty(&app, &poster, 2_000).await;
    app.settle().await;
    assert_eq!(
        app.post(
            &poster,
            &format!("/v1/bounties/{refunded}/cancel"),
            &json!({})
        )
        .await
        .status(),
        200
    );
    app.settle().await;
    let before = (
        app.balances(&poster).await,
        app.balances(&hunter).await,
        money_events(&app).await,
    );
    assert_eq!(
        before.0["balances"][0],
        json!({"currency": "USD", "available": 7000, "held": 0})
    );
    assert_eq!(
        before.1["balances"][0],
        json!({"currency": "USD", "available": 3000, "held": 0})
    );

    // Forget the process managers' progress and deliver the whole history again.
    sqlx::query(
        "UPDATE projection_checkpoints SET position = 0 WHERE projection = 'process-managers'",
    )
    .execute(&app.pool)
    .await
    .unwrap();
    app.republish_everything().await;
    app.wait_for_consumer_to_drain().await;
    app.settle().await;

    let after = (
        app.balances(&poster).await,
        app.balances(&hunter).await,
        money_events(&app).await,
    );
    assert_eq!(
        after, before,
        "a full redelivery moved money or appended money events"
    );
}

#[tokio::test]
async fn a_flow_interrupted_by_stopping_the_worker_completes_when_a_worker_runs_again() {
    let db = fresh_database().await;
    let settings = test_settings(&db, &std::env::var("NATS_URL").unwrap());
    let api = TestApp::spawn_with(settings.clone(), Parts::API).await;
    let worker = TestApp::spawn_with(settings.clone(), Parts::WORKERS).await;
    let (poster, hunter) = (api.user("poster").await, api.user("hunter").await);
    api.deposit(&poster, 5_000, "USD").await;
    api.settle().await;
    let id = post_bounty(&api, &poster, 4_000).await;
    approve(&api, &id, &poster, &hunter).await;
    // Stop the only worker while the payout flow is (very likely) under way.
    worker.shutdown.trigger().await;
    let stalled: i64 = sqlx::query_scalar("SELECT count(*) FROM process_flows WHERE NOT done")
        .fetch_one(&api.pool)
        .await
        .unwrap();
    eprintln!("flows open when the worker stopped: {stalled}");

    let _again = TestApp::spawn_with(settings, Parts::WORKERS).await;
    api.settle().await;
    let poster_balance = api.balances(&poster).await;
    let hunter_balance = api.balances(&hunter).await;
    assert_eq!(
        poster_balance["balances"][0],
        json!({"currency": "USD", "available": 1000, "held": 0})
    );
    assert_eq!(
        hunter_balance["balances"][0],
        json!({"currency": "USD", "available": 4000, "held": 0})
    );
    let detail: Value = api
        .get(&poster, &format!("/v1/bounties/{id}"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(detail["status"], "completed");
    let open: i64 = sqlx::query_scalar("SELECT count(*) FROM process_flows WHERE NOT done")
        .fetch_one(&api.pool)
        .await
        .unwrap();
    assert_eq!(open, 0);
}

/// A batch that moves one flow several times records what moving it one event at a time
/// would: the last step stands, the first bounty named stays, and an older move changes
/// nothing.
#[tokio::test]
async fn a_batch_records_each_flow_as_its_events_one_by_one_would() {
    use bountyline::sagas::flows::{record, Moved, Progress};
    let app = TestApp::spawn().await;
    let (flow, bounty) = (uuid::Uuid::new_v4(), uuid::Uuid::new_v4());
    let moved = |step, bounty, done, position| Moved {
        position,
        progress: Progress {
            flow,
            kind: "bounty-reward",
            bounty,
            step,
            done,
        },
    };
    let mut tx = app.pool.begin().await.unwrap();
    record(
        &mut tx,
        &[
            moved("requesting hold", Some(bounty), false, 10),
            moved("funds held", None, false, 12),
            moved("marking bounty funded", None, true, 15),
        ],
    )
    .await
    .unwrap();
    record(&mut tx, &[moved("redelivered", None, false, 11)])
        .await
        .unwrap();
    tx.commit().await.unwrap();

    let row: (String, Option<uuid::Uuid>, bool, i64) = sqlx::query_as(
        "SELECT step, bounty_id, done, position FROM process_flows WHERE flow_id = $1",
    )
    .bind(flow)
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!(
        row,
        ("marking bounty funded".to_owned(), Some(bounty), true, 15)
    );
}
