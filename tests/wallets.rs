//! Wallets over HTTP: signed deposits, withdrawals and their settlement, admin credits, and
//! the money rules under concurrency (no balance below zero, every webhook counted once).

mod common;

use common::{deposit_body, TestApp};
use serde_json::{json, Value};

#[tokio::test]
async fn a_signed_deposit_credits_the_wallet_and_shows_in_the_ledger() {
    let app = TestApp::spawn().await;
    let alice = app.user("alice").await;
    let answer = app.deposit(&alice, 5_000, "USD").await;
    assert_eq!(answer["status"], "processed");
    let balances = app.balances(&alice).await;
    assert_eq!(
        balances["balances"],
        json!([{"currency": "USD", "available": 5000, "held": 0}])
    );
    let ledger: Value = app
        .get(&alice, "/v1/wallets/me/entries")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(ledger["items"][0]["kind"], "deposit_confirmed");
    assert_eq!(ledger["items"][0]["amount"], 5000);
}

#[tokio::test]
async fn unsigned_or_badly_signed_webhooks_are_refused_and_change_nothing() {
    let app = TestApp::spawn().await;
    let alice = app.user("alice").await;
    let body = deposit_body("r-1", alice.id, 100, "USD");
    assert_eq!(app.webhook(&body, false).await.status(), 401);
    let forged = app
        .client
        .post(app.url("/v1/webhooks/payments"))
        .header(
            "X-Signature",
            bountyline::http::signature::sign(b"not-the-secret", body.to_string().as_bytes()),
        )
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), 401);
    assert_eq!(forged.headers()["content-type"], "application/problem+json");
    let events = app.event_count().await;
    assert_eq!(events, 0);
}

#[tokio::test]
async fn a_webhook_delivered_five_times_credits_once() {
    let app = TestApp::spawn().await;
    let alice = app.user("alice").await;
    let body = deposit_body("once-only", alice.id, 700, "EUR");
    let answers = futures::future::join_all((0..5).map(|_| app.webhook(&body, true))).await;
    for a in &answers {
        assert!(a.status() == 200 || a.status() == 409, "{}", a.status());
    }
    let again = app.webhook(&body, true).await;
    assert_eq!(again.status(), 200);
    assert_eq!(again.json::<Value>().await.unwrap()["status"], "duplicate");
    let balances = app.balances(&alice).await;
    assert_eq!(balances["balances"][0]["available"], 700);
    let mut changed = body.clone();
    changed["amount"] = json!(9999);
    assert_eq!(
        app.webhook(&changed, true).await.status(),
        409,
        "a reference reused with another body"
    );
}

/// A delivery for a user bountyline does not know is refused and claims nothing: the provider's
/// corrected delivery under the same reference goes through.
#[tokio::test]
async fn a_webhook_for_an_unknown_user_is_refused_and_claims_no_reference() {
    let app = TestApp::spawn().await;
    let alice = app.user("alice").await;
    let mut body = json!({"event": "deposit.succeeded", "reference": "mistyped-user",
                          "user_id": uuid::Uuid::new_v4(), "amount": 250, "currency": "USD"});
    let refused = app.webhook(&body, true).await;
    assert_eq!(refused.status(), 422);
    assert_eq!(
        refused.headers()["content-type"],
        "application/problem+json"
    );
    assert_eq!(app.event_count().await, 0);

    body["user_id"] = json!(alice.id);
    let corrected = app.webhook(&body, true).await;
    assert_eq!(corrected.status(), 200);
    assert_eq!(
        corrected.json::<Value>().await.unwrap()["status"],
        "processed"
    );
    assert_eq!(app.balances(&alice).await["balances"][0]["available"], 250);
}

/// A delivery costs one durable commit: the claim on its reference goes into the transaction
/// that appends its events, and the event names the delivery it carried out.
#[tokio::test]
async fn a_delivery_is_claimed_in_the_transaction_that_appends_its_events() {
    let app = TestApp::spawn().await;
    let alice = app.user("alice").await;
    let body = deposit_body("one-commit", alice.id, 300, "USD");
    assert_eq!(app.webhook(&body, true).await.status(), 200);
    let (claim_tx, body_sha256): (String, String) = sqlx::query_as(
        "SELECT xmin::text, encode(body_hash, 'hex') FROM webhook_deliveries \
         WHERE reference = 'one-commit'",
    )
    .fetch_one(&app.pool)
    .await
    .unwrap();
    let (event_tx, metadata): (String, Value) = sqlx::query_as(
        "SELECT xmin::text, metadata FROM events \
                        WHERE event_type = 'DepositConfirmed' AND aggregate_id = $1",
    )
    .bind(alice.id.to_string())
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!(
        claim_tx, event_tx,
        "the claim and the deposit in one transaction"
    );
    let raw = serde_json::to_vec(&body).unwrap();
    use sha2::Digest;
    let expected = bountyline::http::signature::to_hex(&sha2::Sha256::digest(&raw));
    assert_eq!(body_sha256, expected);
    assert_eq!(metadata["delivery_reference"], "one-commit");
    assert_eq!(metadata["delivery_body_sha256"], expected.as_str());
}

/// Two deliveries of one reference for two users at once (a provider's mix-up): one is carried
/// out, the other refused as a reused reference, whichever order the commits take.
#[tokio::test]
async fn one_reference_delivered_for_two_users_at_once_credits_one_of_them() {
    let app = TestApp::spawn().await;
    let (alice, bob) = (app.user("alice").await, app.user("bob").await);
    for round in 0..8 {
        let reference = format!("mixed-up-{round}");
        let body = |user: &common::TestUser| deposit_body(&reference, user.id, 100, "USD");
        let (a, b) = (body(&alice), body(&bob));
        let (a, b) = futures::future::join(app.webhook(&a, true), app.webhook(&b, true)).await;
        let mut answers = Vec::new();
        for res in [a, b] {
            let status = res.status().as_u16();
            let answer: Value = res.json().await.unwrap();
            answers.push((status, answer["status"].clone(), answer["type"].clone()));
        }
        answers.sort_by_key(|(status, _, _)| *status);
        assert_eq!(answers[0].0, 200, "{answers:?}");
        assert_eq!(answers[0].1, "processed", "{answers:?}");
        assert_eq!(answers[1].0, 409, "{answers:?}");
        assert!(
            answers[1]
                .2
                .as_str()
                .unwrap_or("")
                .ends_with("reference-reused"),
            "{answers:?}"
        );
    }
    let credited = |balances: Value| balances["balances"][0]["available"].as_i64().unwrap_or(0);
    let total = credited(app.balances(&alice).await) + credited(app.balances(&bob).await);
    assert_eq!(total, 800, "one credit of 100 per reference");
    let claims: i64 = sqlx::query_scalar("SELECT count(*) FROM webhook_deliveries")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(claims, 8);
}

#[tokio::test]
async fn a_hundred_parallel_withdrawals_of_one_from_fifty_give_exactly_fifty() {
    let app = TestApp::spawn().await;
    let alice = app.user("alice").await;
    app.deposit(&alice, 5_000, "USD").await;
    let attempts = futures::future::join_all((0..100).map(|_| async {
        // A client that meets a concurrency conflict retries, as any client would.
        loop {
            let res = app
                .post(
                    &alice,
                    "/v1/wallets/me/withdrawals",
                    &json!({"amount": 100, "currency": "USD"}),
                )
                .await;
            let status = res.status().as_u16();
            let body: Value = res.json().await.unwrap();
            if status == 409
                && body["type"]
                    .as_str()
                    .unwrap_or("")
                    .ends_with("concurrency-conflict")
            {
                continue;
            }
            return (status, body);
        }
    }))
    .await;
    let ok = attempts.iter().filter(|(s, _)| *s == 201).count();
    let refused = attempts
        .iter()
        .filter(|(s, b)| *s == 409 && b["type"].as_str().unwrap().ends_with("insufficient-funds"))
        .count();
    assert_eq!((ok, refused), (50, 50), "{attempts:?}");
    let balances = app.balances(&alice).await;
    assert_eq!(
        balances["balances"][0],
        json!({"currency": "USD", "available": 0, "held": 5000})
    );
}

#[tokio::test]
async fn withdrawals_complete_or_fail_through_the_webhook() {
    let app = TestApp::spawn().await;
    let alice = app.user("alice").await;
    app.deposit(&alice, 1_000, "USD").await;
    let mut ids = Vec::new();
    for _ in 0..2 {
        let res = app
            .post(
                &alice,
                "/v1/wallets/me/withdrawals",
                &json!({"amount": 300, "currency": "USD"}),
            )
            .await;
        assert_eq!(res.status(), 201);
        ids.push(res.json::<Value>().await.unwrap()["withdrawal_id"].clone());
    }
    let settle = |event: &str, id: &Value, reference: &str| {
        json!({"event": event, "reference": reference, "user_id": alice.id, "amount": 300,
               "currency": "USD", "withdrawal_id": id})
    };
    assert_eq!(
        app.webhook(&settle("withdrawal.succeeded", &ids[0], "w-1"), true)
            .await
            .status(),
        200
    );
    assert_eq!(
        app.webhook(&settle("withdrawal.failed", &ids[1], "w-2"), true)
            .await
            .status(),
        200
    );
    let balances = app.balances(&alice).await;
    // 1000 - 300 paid out; the failed 300 is back.
    assert_eq!(
        balances["balances"][0],
        json!({"currency": "USD", "available": 700, "held": 0})
    );
    let too_much = app
        .post(
            &alice,
            "/v1/wallets/me/withdrawals",
            &json!({"amount": 701, "currency": "USD"}),
        )
        .await;
    assert_eq!(too_much.status(), 409);
}

#[tokio::test]
async fn only_admins_credit_wallets() {
    let app = TestApp::spawn().await;
    let (alice, admin) = (app.user("alice").await, app.admin().await);
    let body = json!({"amount": 250, "currency": "USD", "reason": "goodwill"});
    let path = format!("/v1/admin/wallets/{}/credit", alice.id);
    assert_eq!(app.post(&alice, &path, &body).await.status(), 403);
    assert_eq!(app.post(&admin, &path, &body).await.status(), 200);
    let balances = app.balances(&alice).await;
    assert_eq!(balances["balances"][0]["available"], 250);
}

#[tokio::test]
async fn bad_money_input_gets_a_clear_4xx() {
    let app = TestApp::spawn().await;
    let alice = app.user("alice").await;
    for (body, status) in [
        (json!({"amount": 0, "currency": "USD"}), 422),
        (json!({"amount": -5, "currency": "USD"}), 422),
        (json!({"amount": 5, "currency": "usd"}), 422),
        (json!({"amount": 1.5, "currency": "USD"}), 422),
        (json!({"amount": 5, "currency": "USD", "balance": 1}), 422),
        (json!({"amount": 5, "currency": "USD"}), 409),
    ] {
        let res = app.post(&alice, "/v1/wallets/me/withdrawals", &body).await;
        assert_eq!(res.status().as_u16(), status, "{body}");
    }
    let unknown_user = json!({"event": "deposit.succeeded", "reference": "r", "user_id": uuid::Uuid::new_v4(),
                              "amount": 1, "currency": "USD"});
    assert_eq!(app.webhook(&unknown_user, true).await.status(), 422);
    let bad_event = json!({"event": "refund.maybe", "reference": "r", "user_id": alice.id, "amount": 1, "currency": "USD"});
    assert_eq!(app.webhook(&bad_event, true).await.status(), 422);
}
