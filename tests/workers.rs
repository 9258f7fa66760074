//! Running several worker and API processes side by side: one relay publishes, every event
//! reaches JetStream once, and the projection ends up exactly as with one worker.

mod common;

use bountyline::startup::Parts;
use common::{fresh_database, test_settings, TestApp};
use serde_json::json;

#[tokio::test]
async fn two_workers_and_two_apis_publish_every_event_once() {
    let db = fresh_database().await;
    let settings = test_settings(&db, &std::env::var("NATS_URL").unwrap());
    let worker_a = TestApp::spawn_with(settings.clone(), Parts::WORKERS).await;
    let _worker_b = TestApp::spawn_with(settings.clone(), Parts::WORKERS).await;
    let api_a = TestApp::spawn_with(settings.clone(), Parts::API).await;
    let api_b = TestApp::spawn_with(settings.clone(), Parts::API).await;
    let alice = api_a.user("alice").await;

    let creates = (0..40).map(|i| {
        let api = if i % 2 == 0 { &api_a } else { &api_b };
        let alice = &alice;
        async move {
            let res = api
                .post(
                    alice,
                    "/v1/tasks",
                    &json!({"queue": "shared", "title": format!("t{i}")}),
                )
                .await;
            assert_eq!(res.status(), 201);
        }
    });
    futures::future::join_all(creates).await;
    worker_a.settle().await;

    let projected: i64 = sqlx::query_scalar("SELECT count(*) FROM tasks")
        .fetch_one(&worker_a.pool)
        .await
        .unwrap();
    assert_eq!(projected, 40);
    let client = async_nats::connect(&settings.nats_url).await.unwrap();
    let js = async_nats::jetstream::new(client);
    let names = bountyline::nats::Names::new(&settings.nats_prefix);
    let mut stream = js.get_stream(names.stream()).await.unwrap();
    let info = stream.info().await.unwrap();
    assert_eq!(info.state.messages, 40, "each event published exactly once");
    let relays: i64 = sqlx::query_scalar("SELECT count(*) FROM relay_checkpoints")
        .fetch_one(&worker_a.pool)
        .await
        .unwrap();
    assert_eq!(relays, 1);
}

#[tokio::test]
async fn parked_events_are_listed_for_admins_only() {
    let app = TestApp::spawn().await;
    let (alice, admin) = (app.user("alice").await, app.admin().await);
    assert_eq!(
        app.get(&alice, "/v1/admin/parked-events").await.status(),
        403
    );
    let listed: serde_json::Value = app
        .get(&admin, "/v1/admin/parked-events")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(listed["items"], json!([]));
}

#[tokio::test]
async fn an_event_that_cannot_be_applied_is_parked_and_the_projection_moves_on() {
    let app = TestApp::spawn().await;
    let (alice, admin) = (app.user("alice").await, app.admin().await);
    // A stored event the tasks projection cannot decode (written around the domain on purpose).
    let poison: i64 = sqlx::query_scalar(
        "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, \
         payload, metadata) VALUES ('Task', $1, 1, 'TaskCreated', '1', '{\"TaskCreated\": 42}', '{}') \
         RETURNING position",
    )
    .bind(uuid::Uuid::new_v4().to_string())
    .fetch_one(&app.pool)
    .await
    .unwrap();
    let after = app.create_task(&alice, "q", "after the poison", 0).await;
    app.settle().await;

    let listed: serde_json::Value = app
        .get(&admin, "/v1/admin/parked-events")
        .await
        .json()
        .await
        .unwrap();
    // Every projection that reads task events parks it on its own; the tasks one is ours.
    let items: Vec<_> = listed["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["projection"] == "tasks")
        .cloned()
        .collect();
    assert_eq!(items.len(), 1);
    assert_eq!(items[0]["position"], poison);
    assert_eq!(items[0]["attempts"], 3);
    assert!(items[0]["error"]
        .as_str()
        .unwrap()
        .contains("could not be decoded"));
    let view = app
        .get(
            &alice,
            &format!("/v1/tasks/{}", after["id"].as_str().unwrap()),
        )
        .await;
    assert_eq!(view.status(), 200, "later events are still applied");
}
