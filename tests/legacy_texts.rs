//! Texts written before texts were sealed (ADR 7, "Events written before this change"): a
//! release before sealing stored people's texts as plain strings in events the chains cover.
//! They read as written until their author is erased; from then on every answer (reads, the
//! search, the audit state, page and export, the events stream) shows "[erased]" in their
//! place, live and after a rebuild, while the events keep their bytes, so every chain still
//! verifies. The erasure answers how many such texts stay stored.

mod common;

use common::sse::SseStream;
use common::texts::{
    admin_erase, append_old_application, append_old_bounty, append_old_task,
    assert_rebuilt_equals_live, holds_none, read, read_as, send, word,
};
use common::*;
use serde_json::{json, Value};
use uuid::Uuid;

const ERASED: &str = "[erased]";

#[tokio::test]
async fn texts_written_before_sealing_read_erased_once_their_author_is_and_history_still_verifies()
{
    let app = TestApp::spawn().await;
    let erin = app
        .user_named(&format!("{}@example.com", word()), "Erin")
        .await;
    let kept = app.user("kept").await;
    let (admin, auditor) = (app.admin().await, app.auditor().await);
    app.deposit(&erin, 5_000, "USD").await;
    app.deposit(&kept, 5_000, "USD").await;
    let w: Vec<String> = (0..5).map(|_| word()).collect();
    let erins = [
        format!("Fix {} soon", w[0]),
        format!("The {} parser", w[1]),
        format!("I can paint {}", w[2]),
        format!("Resize {}", w[3]),
        format!("Every {} image", w[4]),
    ];

    // Kept's bounty, posted now: sealed.
    let kepts_title = format!("Paint {} red", word());
    let posted = send(
        &app,
        &kept,
        "/v1/bounties",
        json!({"title": kepts_title, "description": "All walls",
               "reward": {"amount": 700, "currency": "USD"}}),
    )
    .await;
    let kepts_bounty = posted["id"].as_str().unwrap().to_owned();
    app.settle().await;

    // Erin's texts, as the release before sealing stored them: her bounty (funded by the
    // process managers as any other), her application to Kept's bounty, her task.
    let erins_bounty = Uuid::new_v4().to_string();
    append_old_bounty(&app, &erins_bounty, &erin, &erins[0], &erins[1]).await;
    append_old_application(&app, &kepts_bounty, &erin, &kept, &erins[2]).await;
    let task = Uuid::new_v4().to_string();
    append_old_task(&app, &task, &erin, &erins[3], &erins[4]).await;
    app.settle().await;
    // Kept applies to Erin's bounty now: sealed, and must stay readable.
    let kepts_pitch = format!("I know {} well", word());
    send(
        &app,
        &kept,
        &format!("/v1/bounties/{erins_bounty}/applications"),
        json!({"pitch": kepts_pitch}),
    )
    .await;
    app.settle().await;

    // Before the erasure, the old texts read as written, and the board finds them.
    let bounty = read(&app, &erin, &format!("/v1/bounties/{erins_bounty}")).await;
    assert_eq!(bounty["title"], json!(erins[0]), "{bounty}");
    let found = read(&app, &kept, &format!("/v1/bounties?q={}", w[0])).await;
    assert_eq!(found["items"][0]["id"], json!(erins_bounty), "{found}");

    // The erasure says how many of Erin's texts stay stored: five, in three events.
    let erased = admin_erase(&app, &admin, erin.id).await;
    assert_eq!(erased.status(), 200);
    let answer: Value = erased.json().await.unwrap();
    assert_eq!(
        answer,
        json!({"person": erin.id, "legacy_texts": 5}),
        "the erasure's answer"
    );
    let again: Value = admin_erase(&app, &admin, erin.id)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(again, answer, "a second erasure answers the same");
    app.settle().await;

    // Every answer shows "[erased]" where Erin's old texts stood, and Kept's texts as sent.
    let bounty = read(&app, &kept, &format!("/v1/bounties/{erins_bounty}")).await;
    holds_none("Erin's bounty", &bounty.to_string(), &w);
    assert_eq!(bounty["title"], ERASED, "{bounty}");
    assert_eq!(bounty["description"], ERASED, "{bounty}");
    assert_eq!(bounty["applications"][0]["pitch"], json!(kepts_pitch));
    let kepts = read(&app, &kept, &format!("/v1/bounties/{kepts_bounty}")).await;
    assert_eq!(kepts["title"], json!(kepts_title));
    assert_eq!(kepts["applications"][0]["pitch"], ERASED, "{kepts}");
    let board = read(&app, &kept, "/v1/bounties").await;
    holds_none("the board", &board.to_string(), &w);
    for word in &w[..2] {
        let found = read(&app, &kept, &format!("/v1/bounties?q={word}")).await;
        assert_eq!(found["items"], json!([]), "search {word}: {found}");
    }
    let task_view = read(&app, &admin, &format!("/v1/tasks/{task}")).await;
    assert_eq!(task_view["title"], ERASED, "{task_view}");
    assert_eq!(task_view["description"], ERASED, "{task_view}");
    holds_none(
        "the task list",
        &read(&app, &admin, "/v1/tasks").await.to_string(),
        &w,
    );
    for path in [
        format!("/v1/audit/aggregates/Bounty/{erins_bounty}"),
        format!("/v1/audit/aggregates/Bounty/{kepts_bounty}"),
        format!("/v1/audit/aggregates/Task/{task}"),
    ] {
        holds_none(&path, &read(&app, &auditor, &path).await.to_string(), &w);
    }
    let page = read(&app, &auditor, "/v1/audit/events?limit=500").await;
    let shown: Vec<&Value> = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| {
            let body = e["payload"].as_object()?.values().next()?;
            ["title", "description", "pitch"]
                .iter()
                .filter_map(|f| body.get(*f))
                .next()
                .map(|_| body)
        })
        .collect();
    holds_none("the audit page", &page.to_string(), &w);
    let erased_fields = shown
        .iter()
        .flat_map(|body| ["title", "description", "pitch"].map(|f| &body[f]))
        .filter(|v| **v == json!(ERASED))
        .count();
    assert_eq!(
        erased_fields, 5,
        "the audit page shows five [erased]: {page}"
    );
    let export = read_as(&app, &auditor, "/v1/audit/events", "application/x-ndjson").await;
    holds_none("the export", &export, &w);
    assert!(
        export.contains(&kepts_pitch),
        "the export shows Kept's pitch"
    );
    let events = app.event_count().await;
    let mut stream = SseStream::open(&app, &auditor, "events", Some("0")).await;
    let messages = stream.next_messages(events as usize).await;
    let all = serde_json::to_string(&messages.iter().map(|m| &m.data).collect::<Vec<_>>()).unwrap();
    holds_none("the events stream", &all, &w);

    // The store keeps every old text as written, so every chain still verifies; each is
    // recorded as erased by place and keyed digest, never by its words.
    let stored: String = sqlx::query_scalar("SELECT string_agg(payload::text, ' ') FROM events")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    for text in &erins {
        assert!(stored.contains(text.as_str()), "the events keep {text}");
    }
    let recorded: Vec<(String, String)> = sqlx::query_as(
        "SELECT aggregate_id, field FROM erased_texts WHERE author = $1 ORDER BY position, field",
    )
    .bind(erin.id)
    .fetch_all(&app.pool)
    .await
    .unwrap();
    assert_eq!(
        recorded,
        [
            (erins_bounty.clone(), "description".to_owned()),
            (erins_bounty.clone(), "title".to_owned()),
            (kepts_bounty.clone(), "pitch".to_owned()),
            (task.clone(), "description".to_owned()),
            (task.clone(), "title".to_owned()),
        ]
    );
    let verified = read(&app, &auditor, "/v1/audit/verify").await;
    assert_eq!(verified["ok"], json!(true), "{verified}");

    // Rebuilt from the store, every read model equals the live one (the search vector holds
    // none of Erin's old words either way).
    assert_rebuilt_equals_live(&app).await;
}
