//! What the schema fuzzer (scripts/fuzz, issue 6 part 7) found, one test per finding, each of
//! which failed before its fix: a request the document calls valid must not be refused, one it
//! calls invalid must be, and no input is a 5xx.

mod common;

use common::*;
use serde_json::{json, Value};

async fn status_of(res: reqwest::Response) -> (u16, Value) {
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn integer_valued_floats_are_integers() {
    let app = TestApp::spawn().await;
    let alice = app.user("alice").await;
    let body = json!({"queue": "q", "title": "t", "priority": 5.0, "max_attempts": 3.0});
    let (status, answer) = status_of(app.post(&alice, "/v1/tasks", &body).await).await;
    assert_eq!(status, 201, "{answer}");
    let body = json!({"queue": "q", "title": "t", "priority": 5.5});
    let (status, _) = status_of(app.post(&alice, "/v1/tasks", &body).await).await;
    assert_eq!(status, 422);
}

#[tokio::test]
async fn a_nul_character_is_refused_not_a_server_error() {
    let app = TestApp::spawn().await;
    let auditor = app.auditor().await;
    let alice = app.user("alice").await;
    let heads = json!({"items": [{"aggregate_type": "Task\u{0}", "aggregate_id": "x",
        "sequence": 1, "hash": "0".repeat(64)}]});
    let (status, answer) =
        status_of(app.post(&auditor, "/v1/audit/heads/check", &heads).await).await;
    assert_eq!(status, 422, "{answer}");
    // The same character inside a task's JSON payload, which Postgres' jsonb cannot hold.
    let task = json!({"queue": "q", "title": "t", "payload": {"note": "a\u{0}b"}});
    let (status, answer) = status_of(app.post(&alice, "/v1/tasks", &task).await).await;
    assert_eq!(status, 422, "{answer}");
    assert_eq!(app.event_count().await, 0);
}

#[tokio::test]
async fn more_than_ten_tags_are_refused_even_when_repeated() {
    let app = TestApp::spawn().await;
    let alice = app.user("alice").await;
    let body = json!({"title": "t", "description": "", "reward": {"amount": 100, "currency": "USD"},
        "tags": vec!["rust"; 11]});
    let (status, answer) = status_of(app.post(&alice, "/v1/bounties", &body).await).await;
    assert_eq!(status, 422, "{answer}");
    assert_eq!(answer["errors"][0]["field"], "tags");
}

#[tokio::test]
async fn a_title_over_its_length_is_refused_even_when_its_white_space_would_bring_it_under() {
    let app = TestApp::spawn().await;
    let alice = app.user("alice").await;
    let title = format!("\u{2007}\n\u{2004}{}", "x".repeat(198));
    let body = json!({"title": title, "queue": "q"});
    let (status, answer) = status_of(app.post(&alice, "/v1/tasks", &body).await).await;
    assert_eq!(status, 422, "{answer}");
    assert_eq!(answer["errors"][0]["field"], "title");
    assert_eq!(app.event_count().await, 0);
}

#[tokio::test]
async fn an_audit_window_that_ends_before_it_starts_is_empty_not_refused() {
    let app = TestApp::spawn().await;
    let auditor = app.auditor().await;
    app.create_task(&auditor, "q", "t", 1).await;
    let path = "/v1/audit/events?from=2030-01-01T00:00:00Z&to=2020-01-01T00:00:00Z";
    let (status, answer) = status_of(app.get(&auditor, path).await).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["items"], json!([]));
}

#[tokio::test]
async fn an_exported_head_must_carry_a_hash_as_exports_write_it() {
    let app = TestApp::spawn().await;
    let auditor = app.auditor().await;
    let heads = json!({"items": [{"aggregate_type": "Task", "aggregate_id": "x",
        "sequence": 1, "hash": "-u"}]});
    let (status, answer) =
        status_of(app.post(&auditor, "/v1/audit/heads/check", &heads).await).await;
    assert_eq!(status, 422, "{answer}");
    assert_eq!(answer["errors"][0]["field"], "items[0].hash");
}

#[tokio::test]
async fn version_and_at_together_are_refused() {
    let app = TestApp::spawn().await;
    let auditor = app.auditor().await;
    let task = app.create_task(&auditor, "q", "t", 1).await;
    let id = task["id"].as_str().unwrap();
    let path = format!("/v1/audit/aggregates/Task/{id}?version=1&at=2030-01-01T00:00:00Z");
    let (status, answer) = status_of(app.get(&auditor, &path).await).await;
    assert_eq!(status, 422, "{answer}");
    let (status, _) = status_of(
        app.get(
            &auditor,
            &format!("/v1/audit/aggregates/Task/{id}?version=1"),
        )
        .await,
    )
    .await;
    assert_eq!(status, 200);
}
