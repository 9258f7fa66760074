//! Server-owned properties (OWASP API3): a request that tries to set what only the server may
//! set (ids, owners, statuses, balances, roles) is refused with 422 naming the field, and
//! changes nothing.

mod common;

use common::*;
use serde_json::{json, Value};

#[tokio::test]
async fn requests_that_set_server_owned_fields_are_refused_and_change_nothing() {
    let app = TestApp::spawn().await;
    let alice = app.user("alice").await;
    app.deposit(&alice, 5_000, "USD").await;
    app.settle().await;
    let before = app.event_count().await;

    let bounty = json!({"title": "t", "description": "d",
                        "reward": {"amount": 100, "currency": "USD"}});
    let with = |base: &Value, field: &str, value: Value| {
        let mut body = base.clone();
        body[field] = value;
        body
    };
    let task = json!({"queue": "q", "title": "t"});
    let attempts = [
        ("/v1/tasks", with(&task, "id", json!(alice.id))),
        ("/v1/tasks", with(&task, "status", json!("completed"))),
        ("/v1/tasks", with(&task, "creator", json!(alice.id))),
        ("/v1/tasks", with(&task, "worker", json!(alice.id))),
        ("/v1/tasks", with(&task, "version", json!(7))),
        ("/v1/bounties", with(&bounty, "poster", json!(alice.id))),
        ("/v1/bounties", with(&bounty, "status", json!("approved"))),
        ("/v1/bounties", with(&bounty, "payment_id", json!(alice.id))),
        (
            "/v1/wallets/me/withdrawals",
            json!({"amount": 10, "currency": "USD", "balance": 1_000_000}),
        ),
        (
            "/v1/wallets/me/withdrawals",
            json!({"amount": 10, "currency": "USD", "owner": alice.id}),
        ),
    ];
    for (path, body) in attempts {
        let res = app.post(&alice, path, &body).await;
        assert_eq!(res.status(), 422, "{path} {body}");
        let problem: Value = res.json().await.unwrap();
        let detail = problem["detail"].as_str().unwrap_or_default();
        assert!(detail.contains("unknown field"), "{path}: {problem}");
    }
    let registration = app
        .client
        .post(app.url("/v1/auth/register"))
        .json(&json!({"email": accounts::unique_email("mallory"), "password": "a long enough password",
                      "display_name": "M", "roles": ["admin"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(registration.status(), 422);

    let after = app.event_count().await;
    assert_eq!(after, before, "a refused request appended events");
    let admins: i64 = sqlx::query_scalar("SELECT count(*) FROM users WHERE 'admin' = ANY(roles)")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(admins, 0);
}
