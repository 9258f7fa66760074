//! Audit over history: an aggregate's state at a version or an instant, and the chain of
//! causes behind an event back to the command and user that started it.

mod common;

use chrono::{DateTime, SecondsFormat, Utc};
use common::{TestApp, TestUser};
use serde_json::{json, Value};
use std::time::Duration;

async fn state(app: &TestApp, who: &TestUser, kind: &str, id: &str, query: &str) -> Value {
    let res = app
        .get(who, &format!("/v1/audit/aggregates/{kind}/{id}{query}"))
        .await;
    assert_eq!(res.status(), 200, "state of {kind} {id}{query}");
    res.json().await.unwrap()
}

async fn recorded_at(app: &TestApp, kind: &str, id: &str, sequence: i64) -> DateTime<Utc> {
    sqlx::query_scalar(
        "SELECT recorded_at FROM events WHERE aggregate_type = $1 AND aggregate_id = $2 \
         AND sequence = $3",
    )
    .bind(kind)
    .bind(id)
    .bind(sequence)
    .fetch_one(&app.pool)
    .await
    .unwrap()
}

#[tokio::test]
async fn a_tasks_state_at_each_version_and_instant() {
    let app = TestApp::spawn().await;
    let (alice, worker, auditor) = (
        app.user("alice").await,
        app.user("worker").await,
        app.auditor().await,
    );
    let created = app.create_task(&alice, "audit", "look back", 1).await;
    app.may_work("audit", &worker).await;
    let id = created["id"].as_str().unwrap().to_owned();
    app.settle().await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    let claim = app
        .post(
            &worker,
            "/v1/queues/audit/claim",
            &json!({"lease_seconds": 60}),
        )
        .await;
    assert_eq!(claim.status(), 200);
    let done = app
        .post(&worker, &format!("/v1/tasks/{id}/complete"), &json!({}))
        .await;
    assert_eq!(done.status(), 200);

    let v1 = state(&app, &auditor, "Task", &id, "?version=1").await;
    assert_eq!(v1["version"], 1);
    assert_eq!(v1["aggregate_type"], "Task");
    assert_eq!(v1["aggregate_id"], id.as_str());
    assert_eq!(v1["state"]["state"]["status"], "queued");
    let v2 = state(&app, &auditor, "Task", &id, "?version=2").await;
    assert_eq!(v2["state"]["state"]["status"], "claimed");
    assert_eq!(v2["state"]["state"]["attempts"], 1);
    let latest = state(&app, &auditor, "Task", &id, "").await;
    assert_eq!(latest["version"], 3);
    assert_eq!(latest["state"]["state"]["status"], "completed");

    // An instant between the first and second events gives the state after the first.
    let (t1, t2) = (
        recorded_at(&app, "Task", &id, 1).await,
        recorded_at(&app, "Task", &id, 2).await,
    );
    assert!(t1 < t2);
    let between = t1 + (t2 - t1) / 2;
    let at = between.to_rfc3339_opts(SecondsFormat::Micros, true);
    let then = state(&app, &auditor, "Task", &id, &format!("?at={at}")).await;
    assert_eq!(then["version"], 1);
    assert_eq!(then["state"]["state"]["status"], "queued");
    let as_of: DateTime<Utc> = then["as_of"].as_str().unwrap().parse().unwrap();
    assert_eq!(as_of, t1);
    // Before the first event the task did not exist.
    let before = (t1 - chrono::Duration::seconds(1)).to_rfc3339_opts(SecondsFormat::Micros, true);
    let res = app
        .get(
            &auditor,
            &format!("/v1/audit/aggregates/Task/{id}?at={before}"),
        )
        .await;
    assert_eq!(res.status(), 404);

    // A version beyond the last one is refused, naming the last one.
    let res = app
        .get(
            &auditor,
            &format!("/v1/audit/aggregates/Task/{id}?version=9"),
        )
        .await;
    assert_eq!(res.status(), 422);
    let problem: Value = res.json().await.unwrap();
    let detail = problem["detail"].as_str().unwrap();
    assert!(detail.contains("last version is 3"), "{detail}");
    for bad in [
        "?version=0",
        "?version=1&at=2020-01-01T00:00:00Z",
        "?at=yesterday",
    ] {
        let res = app
            .get(&auditor, &format!("/v1/audit/aggregates/Task/{id}{bad}"))
            .await;
        assert_eq!(res.status(), 422, "{bad}");
    }
    let res = app
        .get(
            &auditor,
            &format!("/v1/audit/aggregates/Task/{id}?when=now"),
        )
        .await;
    assert!(res.status().is_client_error(), "an unknown parameter");
    for missing in [
        format!("/v1/audit/aggregates/Rocket/{id}"),
        format!("/v1/audit/aggregates/Task/{}", uuid::Uuid::new_v4()),
        format!("/v1/audit/events/{}/causes", uuid::Uuid::new_v4()),
    ] {
        assert_eq!(app.get(&auditor, &missing).await.status(), 404, "{missing}");
    }

    // Members may not look; admins may.
    let res = app
        .get(&alice, &format!("/v1/audit/aggregates/Task/{id}?version=1"))
        .await;
    assert_eq!(res.status(), 403);
    let admin = app.admin().await;
    state(&app, &admin, "Task", &id, "?version=1").await;
}

#[tokio::test]
async fn a_wallets_state_at_a_version_shows_the_balance_then() {
    let app = TestApp::spawn().await;
    let (owner, auditor) = (app.user("owner").await, app.auditor().await);
    app.deposit(&owner, 1_000, "USD").await;
    app.deposit(&owner, 500, "USD").await;
    let id = owner.id.to_string();
    let first = state(&app, &auditor, "Wallet", &id, "?version=1").await;
    assert_eq!(
        first["state"]["state"]["balances"]["USD"],
        json!({"available": 1000, "held": 0}),
        "{first}"
    );
    let latest = state(&app, &auditor, "Wallet", &id, "").await;
    assert_eq!(latest["version"], 2);
    assert_eq!(
        latest["state"]["state"]["balances"]["USD"],
        json!({"available": 1500, "held": 0})
    );
}

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

#[tokio::test]
async fn the_causes_of_a_payout_lead_back_to_the_posters_approval() {
    let app = TestApp::spawn().await;
    let (poster, hunter, auditor) = (
        app.user("poster").await,
        app.user("hunter").await,
        app.auditor().await,
    );
    app.deposit(&poster, 10_000, "USD").await;
    let id = post_bounty(&app, &poster, 3_000).await;
    app.settle().await;
    let res = app
        .post(
            &hunter,
            &format!("/v1/bounties/{id}/applications"),
            &json!({"pitch": "me"}),
        )
        .await;
    assert_eq!(res.status(), 201);
    let application: Value = res.json().await.unwrap();
    app.settle().await;
    let accept = app
        .post(
            &poster,
            &format!("/v1/bounties/{id}/accept"),
            &json!({"application_id": application["application_id"]}),
        )
        .await;
    assert_eq!(accept.status(), 200);
    let submit = app
        .post(
            &hunter,
            &format!("/v1/bounties/{id}/submit"),
            &json!({"deliverable": {"text": "done"}}),
        )
        .await;
    assert_eq!(submit.status(), 200);
    let client_request_id = format!("approve-{}", uuid::Uuid::new_v4().simple());
    let approve = app
        .client
        .post(app.url(&format!("/v1/bounties/{id}/approve")))
        .bearer_auth(&poster.access_token)
        .header("X-Request-Id", &client_request_id)
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(approve.status(), 200);
    // The server's own id correlates; the client's is kept beside it (issue 23).
    assert_eq!(
        approve.headers()["x-client-request-id"],
        client_request_id.as_str()
    );
    let request_id = approve.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    assert_ne!(request_id, client_request_id);
    app.settle().await;

    let received: uuid::Uuid = sqlx::query_scalar(
        "SELECT event_id FROM events WHERE aggregate_type = 'Wallet' AND aggregate_id = $1 \
         AND event_type = 'PaymentReceived'",
    )
    .bind(hunter.id.to_string())
    .fetch_one(&app.pool)
    .await
    .unwrap();
    let res = app
        .get(&auditor, &format!("/v1/audit/events/{received}/causes"))
        .await;
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    let chain = body["chain"].as_array().unwrap();
    let steps: Vec<(&str, &str)> = chain
        .iter()
        .map(|l| {
            (
                l["aggregate_type"].as_str().unwrap(),
                l["event_type"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        steps,
        vec![
            ("Wallet", "PaymentReceived"),
            ("Payment", "ReleaseRequested"),
            ("Bounty", "WorkApproved"),
        ],
        "{body:#}"
    );
    assert_eq!(chain[0]["event_id"], received.to_string());
    // Each link was caused by the next one.
    for pair in chain.windows(2) {
        assert_eq!(pair[0]["causation_id"], pair[1]["event_id"]);
    }
    let last = &chain[2];
    assert_eq!(last["aggregate_id"], id.as_str());
    assert_eq!(last["actor"], poster.id.to_string());
    assert_eq!(last["command"], "ApproveWork");
    let origin = &body["origin"];
    assert_eq!(origin["command"], "ApproveWork");
    assert_eq!(origin["actor"], poster.id.to_string());
    assert_eq!(origin["request_id"], request_id.as_str());
    assert_eq!(origin["correlation_id"], request_id.as_str());
    assert_eq!(origin["command_id"], last["causation_id"]);
    for link in chain {
        assert_eq!(link["correlation_id"], request_id.as_str(), "{link}");
    }

    // Everything the approval set off shares its correlation id, follow-ups included.
    let correlated: Vec<(String, String)> = sqlx::query_as(
        "SELECT aggregate_type, event_type FROM events \
         WHERE metadata->>'correlation_id' = $1 ORDER BY position",
    )
    .bind(&request_id)
    .fetch_all(&app.pool)
    .await
    .unwrap();
    for step in [
        ("Bounty", "WorkApproved"),
        ("Payment", "ReleaseRequested"),
        ("Wallet", "PaymentReceived"),
    ] {
        assert!(
            correlated
                .iter()
                .any(|(a, e)| (a.as_str(), e.as_str()) == step),
            "{step:?} not in {correlated:?}"
        );
    }
    assert!(correlated.len() > 3, "{correlated:?}");
    // The follow-ups were issued by the system, not by the poster.
    let followups: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM events WHERE metadata->>'correlation_id' = $1 \
         AND metadata->>'actor' = $2",
    )
    .bind(&request_id)
    .bind(poster.id.to_string())
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert!(followups < correlated.len() as i64);

    let member = app
        .get(&hunter, &format!("/v1/audit/events/{received}/causes"))
        .await;
    assert_eq!(member.status(), 403);
}
