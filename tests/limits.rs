//! Abuse limits (OWASP API4): commands per user, auth requests per address and failed logins
//! per account are refused with 429 and `Retry-After`, and a refused request changes nothing.

mod common;

use bountyline::startup::Parts;
use common::accounts::unique_email;
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
    let events = app.event_count().await;
    assert_eq!(events, 3, "the refused command appended nothing");
    // Limits are per user.
    app.create_task(&bob, "q", "bob's own", 0).await;
}

#[tokio::test]
async fn an_address_over_its_auth_rate_is_refused() {
    // One token a minute: slow logins (argon2 on a busy machine) earn no extra one.
    let app = app_with(|limits| {
        limits.auth_per_minute = 1;
        limits.auth_burst = 2;
    })
    .await;
    let nobody = unique_email("nobody");
    for _ in 0..2 {
        let res = app.login(&nobody, "not the password").await;
        assert_eq!(res.status(), 401);
    }
    assert_too_many(app.login(&nobody, "not the password").await).await;
    // Other routes are not counted.
    assert_eq!(
        app.client
            .get(app.url("/health/live"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
}

#[tokio::test]
async fn repeated_failed_logins_throttle_the_account_from_that_address_whether_or_not_it_exists() {
    let app = app_with(|limits| {
        limits.login_failures_per_minute = 1;
        limits.login_failures_burst = 3;
    })
    .await;
    let alice = app.user("alice").await;
    for email in [alice.email.clone(), unique_email("ghost")] {
        for _ in 0..3 {
            assert_eq!(app.login(&email, "not the password").await.status(), 401);
        }
        assert_too_many(app.login(&email, "not the password").await).await;
        // The right password is refused too from this address: guessing cannot continue.
        assert_eq!(app.login(&email, &alice.password).await.status(), 429);
    }
    // Another account is not affected.
    let bob = app.user("bob").await;
    assert_eq!(app.login(&bob.email, &bob.password).await.status(), 200);
}

/// Login throttling cannot be turned against the owner (issue 23): a stranger's wrong
/// passwords slow the stranger's address only, with waits that double; the owner signs in
/// from their own address at once.
#[tokio::test]
async fn a_strangers_failed_logins_never_lock_out_the_owner_and_their_waits_double() {
    let app = app_with(|limits| {
        limits.login_failures_per_minute = 60;
        limits.login_failures_burst = 3;
    })
    .await;
    let owner = app.user("owner").await;
    // The owner's own client comes from another loopback address than the attacker's.
    let from = |last: u8| {
        reqwest::Client::builder()
            .local_address(std::net::IpAddr::from([127, 0, 0, last]))
            .build()
            .expect("a client")
    };
    let (attacker, own) = (from(1), from(2));
    let login = |client: &reqwest::Client, password: &str| {
        client
            .post(app.url("/v1/auth/login"))
            .json(&json!({"email": owner.email, "password": password}))
            .send()
    };
    for _ in 0..3 {
        assert_eq!(login(&attacker, "guess").await.unwrap().status(), 401);
    }
    let mut waits = Vec::new();
    for _ in 0..3 {
        let refused = login(&attacker, "guess").await.unwrap();
        assert_eq!(refused.status(), 429);
        let wait: u64 = refused.headers()["retry-after"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        waits.push(wait);
        // The owner is never kept out, however long the attacker waits.
        assert_eq!(login(&own, &owner.password).await.unwrap().status(), 200);
        tokio::time::sleep(std::time::Duration::from_secs(wait)).await;
        assert_eq!(login(&attacker, "guess").await.unwrap().status(), 401);
    }
    assert_eq!(waits, [1, 2, 4], "each failure doubles the wait");
}

#[tokio::test]
async fn a_worker_cannot_hoard_more_leases_than_the_cap() {
    let app = app_with(|limits| limits.leases_per_worker = 2).await;
    let (alice, hoarder, other) = (
        app.user("alice").await,
        app.user("hoarder").await,
        app.user("other").await,
    );
    for i in 0..4 {
        app.create_task(&alice, "q", &format!("t{i}"), 0).await;
    }
    app.may_work("q", &hoarder).await;
    app.may_work("q", &other).await;
    app.settle().await;
    for _ in 0..2 {
        let res = app.post(&hoarder, "/v1/queues/q/claim", &json!({})).await;
        assert_eq!(res.status(), 200);
    }
    app.settle().await;
    let refused = app.post(&hoarder, "/v1/queues/q/claim", &json!({})).await;
    assert_eq!(refused.status(), 409);
    let problem: Value = refused.json().await.unwrap();
    assert!(
        problem["type"].as_str().unwrap().ends_with("lease-limit"),
        "{problem}"
    );
    // The queue is still there for everyone else.
    let res = app.post(&other, "/v1/queues/q/claim", &json!({})).await;
    assert_eq!(res.status(), 200);
}
