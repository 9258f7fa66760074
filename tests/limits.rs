//! Abuse limits (OWASP API4): commands per user, auth requests per address and failed logins
//! per account are refused with 429 and `Retry-After`, and a refused request changes nothing.

mod common;

use bountyline::startup::Parts;
use common::*;
use serde_json::{json, Value};

/// An app whose limits are switched on by `tune`.
async fn app_with(tune: impl FnOnce(&mut bountyline::config::LimitSettings)) -> TestApp {
    let nats_url = std::env::var("NATS_URL").expect("NATS_URL (run scripts/test)");
    let mut settings = test_settings(&fresh_database().await, &nats_url);
    tune(&mut settings.limits);
    TestApp::spawn_with(settings, Parts::ALL).await
}

async fn assert_too_many(res: reqwest::Response) {
    assert_eq!(res.status(), 429);
    let wait: u64 = res.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .expect("Retry-After in seconds");
    assert!((1..=60).contains(&wait), "Retry-After {wait}");
    assert!(res.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("application/problem+json"));
    let problem: Value = res.json().await.unwrap();
    assert_eq!(problem["status"], 429);
}

#[tokio::test]
async fn a_user_over_their_command_rate_is_refused_and_nothing_changes() {
    let app = app_with(|limits| {
        limits.commands_per_minute = 60;
        limits.commands_burst = 3;
    })
    .await;
    let (alice, bob) = (app.user("alice").await, app.user("bob").await);
    for i in 0..3 {
        app.create_task(&alice, "q", &format!("t{i}"), 0).await;
    }
    let over = app
        .post(
            &alice,
            "/v1/tasks",
            &json!({"queue": "q", "title": "one too many"}),
        )
        .await;
    assert_too_many(over).await;
    let events: i64 = sqlx::query_scalar("SELECT count(*) FROM events")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(events, 3, "the refused command appended nothing");
    // Limits are per user.
    app.create_task(&bob, "q", "bob's own", 0).await;
}
