//! `GET /health/detailed` (issue 25, item 7): for admins only, each component's latency, the
//! pool's use, how far the relay and each projection trail the store, parked events, and the
//! build and migration this process runs; `degraded` when something needs an operator.

mod common;

use common::*;
use serde_json::Value;

async fn detailed(app: &TestApp, user: &TestUser) -> (u16, Value) {
    let res = app.get(user, "/health/detailed").await;
    let status = res.status().as_u16();
    (status, res.json().await.expect("json"))
}

#[tokio::test]
async fn an_admin_sees_every_component_and_what_trails_the_store() {
    let app = TestApp::spawn().await;
    let admin = app.admin().await;
    let alice = app.user("alice").await;
    app.create_task(&alice, "health", "a task", 1).await;
    app.settle().await;

    let (status, body) = detailed(&app, &admin).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "ok", "{body}");
    assert_eq!(body["postgres"]["status"], "ok");
    assert!(body["postgres"]["latency_ms"].as_f64().is_some(), "{body}");
    assert_eq!(body["postgres"]["pending_migrations"], 0);
    assert_eq!(body["postgres"]["migration"], body["build"]["migration"]);
    assert!(body["postgres"]["pool"]["max"].as_u64() > Some(0), "{body}");
    assert_eq!(body["nats"]["status"], "ok");
    let head = app.head().await;
    assert_eq!(body["head"], head);
    assert_eq!(body["relay"]["lag"], 0, "{body}");
    let tasks = body["projections"]
        .as_array()
        .expect("projections")
        .iter()
        .find(|p| p["name"] == "tasks")
        .expect("the tasks projection")
        .clone();
    assert_eq!(tasks["position"], head);
    assert_eq!(tasks["lag"], 0);
    assert_eq!(tasks["parked"], 0);

    // A parked event and a projection behind: the operator is told.
    sqlx::query(
        "INSERT INTO parked_events (projection, position, event_id, event_type, error, attempts) \
         VALUES ('tasks', 1, gen_random_uuid(), 'TaskCreated', 'probe', 5)",
    )
    .execute(&app.pool)
    .await
    .expect("park");
    sqlx::query(
        "UPDATE projection_checkpoints SET position = position - 1 WHERE projection = 'stats'",
    )
    .execute(&app.pool)
    .await
    .expect("hold stats back");
    let (_, body) = detailed(&app, &admin).await;
    assert_eq!(body["status"], "degraded", "{body}");
    let find = |name: &str| {
        body["projections"]
            .as_array()
            .expect("projections")
            .iter()
            .find(|p| p["name"] == name)
            .cloned()
            .expect("a projection")
    };
    assert_eq!(find("tasks")["parked"], 1);
    assert!(find("stats")["lag"].as_i64() >= Some(1), "{body}");
    app.shutdown.trigger().await;
}

#[tokio::test]
async fn only_admins_see_it() {
    let app = TestApp::spawn().await;
    let alice = app.user("alice").await;
    let (status, body) = detailed(&app, &alice).await;
    assert_eq!(status, 403, "{body}");
    let res = app
        .client
        .get(app.url("/health/detailed"))
        .send()
        .await
        .expect("request");
    assert_eq!(res.status(), 401);
    app.shutdown.trigger().await;
}
