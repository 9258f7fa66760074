//! `Server-Timing` on every answer (issue 25, item 7): the whole handling, the part of it in the
//! event store and the part waiting for a read model, so that a browser's network panel shows
//! where a slow request spent its time.

mod common;

use common::*;
use serde_json::json;
use std::collections::HashMap;

/// The `Server-Timing` metrics of an answer, by name, in milliseconds.
fn timings(res: &reqwest::Response) -> HashMap<String, f64> {
    let header = res
        .headers()
        .get("server-timing")
        .unwrap_or_else(|| panic!("no Server-Timing on {}", res.url()))
        .to_str()
        .expect("ascii");
    header
        .split(',')
        .map(|metric| {
            let (name, duration) = metric.trim().split_once(";dur=").expect("name;dur=ms");
            (name.to_owned(), duration.parse().expect("milliseconds"))
        })
        .collect()
}

#[tokio::test]
async fn every_answer_says_where_its_time_went() {
    let app = TestApp::spawn().await;
    let alice = app.user("alice").await;

    let health = app
        .client
        .get(app.url("/health/live"))
        .send()
        .await
        .expect("request");
    let t = timings(&health);
    assert_eq!((t["store"], t["read-model"]), (0.0, 0.0), "{t:?}");

    // The tasks projection held at its checkpoint (stored once a first task is applied) for a
    // while: the command is answered, and a read that asks for it waits for the read model.
    app.create_task(&alice, "timed", "the first", 1).await;
    app.settle().await;
    let mut hold = app.pool.begin().await.expect("begin");
    sqlx::query("SELECT 1 FROM projection_checkpoints WHERE projection = 'tasks' FOR UPDATE")
        .execute(&mut *hold)
        .await
        .expect("hold the tasks projection");
    let created = app
        .post(
            &alice,
            "/v1/tasks",
            &json!({"queue": "timed", "title": "a task"}),
        )
        .await;
    assert_eq!(created.status(), 201);
    let t = timings(&created);
    assert!(t["store"] > 0.0, "a command appends: {t:?}");
    assert!(t["handler"] >= t["store"], "{t:?}");
    assert_eq!(t["read-model"], 0.0, "{t:?}");
    let body: serde_json::Value = created.json().await.expect("json");
    let release = tokio::spawn(async move {
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        hold.rollback().await.expect("release the projection");
    });
    let id = body["id"].as_str().expect("an id");
    let read = app
        .client
        .get(app.url(&format!("/v1/tasks/{id}")))
        .bearer_auth(&alice.access_token)
        .header("X-Min-Position", body["position"].to_string())
        .send()
        .await
        .expect("read");
    release.await.expect("released");
    assert_eq!(read.status(), 200);
    let t = timings(&read);
    assert!(
        t["read-model"] >= 200.0,
        "the read waited for the tasks read model: {t:?}"
    );
    assert!(t["handler"] >= t["read-model"], "{t:?}");

    let problem = app.get(&alice, "/v1/tasks/not-a-uuid").await;
    assert!(problem.status().is_client_error());
    timings(&problem);
    app.shutdown.trigger().await;
}
