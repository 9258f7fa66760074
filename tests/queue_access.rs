//! Who may take work from a queue (issue 23, item 5): its owner (who first posted to it), the
//! workers its owner granted it to, and admins. Anyone else's claim is refused (403) and
//! changes nothing, so no stranger takes a task to complete it with a forged result or fail it
//! into the dead letters.

mod common;

use common::*;
use serde_json::{json, Value};

async fn claim(app: &TestApp, user: &TestUser, queue: &str) -> u16 {
    let res = app
        .post(user, &format!("/v1/queues/{queue}/claim"), &json!({}))
        .await;
    res.status().as_u16()
}

async fn grant(app: &TestApp, by: &TestUser, queue: &str, worker: uuid::Uuid, grant: bool) -> u16 {
    let url = app.url(&format!("/v1/queues/{queue}/workers/{worker}"));
    let req = match grant {
        true => app.client.put(url),
        false => app.client.delete(url),
    };
    req.bearer_auth(&by.access_token)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test]
async fn only_a_queues_owner_its_granted_workers_and_admins_claim_from_it() {
    let app = TestApp::spawn().await;
    let (owner, worker, stranger, admin) = (
        app.user("owner").await,
        app.user("worker").await,
        app.user("stranger").await,
        app.admin().await,
    );
    for i in 0..3 {
        app.create_task(&owner, "render", &format!("frame {i}"), 0)
            .await;
    }
    // A stranger posting to the queue does not make it theirs.
    app.create_task(&stranger, "render", "planted", 0).await;
    app.settle().await;
    let before = app.event_count().await;

    assert_eq!(claim(&app, &stranger, "render").await, 403);
    assert_eq!(claim(&app, &worker, "render").await, 403);
    assert_eq!(
        app.event_count().await,
        before,
        "a refused claim appends nothing"
    );

    assert_eq!(
        grant(&app, &stranger, "render", stranger.id, true).await,
        403
    );
    assert_eq!(grant(&app, &worker, "render", worker.id, true).await, 403);
    assert_eq!(grant(&app, &owner, "render", worker.id, true).await, 204);
    assert_eq!(
        grant(&app, &owner, "render", worker.id, true).await,
        204,
        "again"
    );
    assert_eq!(claim(&app, &worker, "render").await, 200);
    assert_eq!(claim(&app, &owner, "render").await, 200);
    assert_eq!(claim(&app, &admin, "render").await, 200);
    assert_eq!(claim(&app, &stranger, "render").await, 403);

    assert_eq!(grant(&app, &owner, "render", worker.id, false).await, 204);
    assert_eq!(claim(&app, &worker, "render").await, 403, "taken back");
    // An admin may grant any queue.
    assert_eq!(grant(&app, &admin, "render", stranger.id, true).await, 204);
    assert_eq!(claim(&app, &stranger, "render").await, 200);
}

#[tokio::test]
async fn granting_an_unknown_queue_or_user_is_a_404() {
    let app = TestApp::spawn().await;
    let owner = app.user("owner").await;
    app.create_task(&owner, "mine", "t", 0).await;
    assert_eq!(grant(&app, &owner, "nobodys", owner.id, true).await, 404);
    let unknown = uuid::Uuid::now_v7();
    assert_eq!(grant(&app, &owner, "mine", unknown, true).await, 404);
    let res = app
        .client
        .put(app.url(&format!("/v1/queues/BAD!/workers/{unknown}")))
        .bearer_auth(&owner.access_token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 422);
    let problem: Value = res.json().await.unwrap();
    assert_eq!(
        problem["type"],
        "https://bountyline.dev/problems/validation"
    );
}
