//! What the privacy and erasure tests share: distinctive words to write and then look for,
//! calls that must succeed, and a dump of the test's database to grep.

use secrecy::ExposeSecret;
use serde_json::{json, Value};
use uuid::Uuid;

use bountyline_projections::rebuild::{build_shadow, diff};

use super::{TestApp, TestUser};

/// A word no other test or text holds: lower-case letters only, so that text search takes it
/// as one word.
pub fn word() -> String {
    let letters: String = Uuid::new_v4()
        .simple()
        .to_string()
        .chars()
        .map(|c| match c.to_digit(10) {
            Some(d) => char::from(b'g' + d as u8),
            None => c,
        })
        .collect();
    format!("zq{}", &letters[..18])
}

/// POSTs `body` to `path` as `user`; the call must succeed. Answers its JSON (null if none).
pub async fn send(app: &TestApp, user: &TestUser, path: &str, body: Value) -> Value {
    let res = app.post(user, path, &body).await;
    let status = res.status();
    let answer: Value = res.json().await.unwrap_or(Value::Null);
    assert!(status.is_success(), "POST {path}: {status} {answer}");
    answer
}

/// GETs `path` as `user`; must answer 200 with JSON.
pub async fn read(app: &TestApp, user: &TestUser, path: &str) -> Value {
    let res = app.get(user, path).await;
    assert_eq!(res.status(), 200, "GET {path}");
    res.json().await.unwrap()
}

/// GETs `path` as `user` with `Accept: accept` (NDJSON, CSV); must answer 200. Its text.
pub async fn read_as(app: &TestApp, user: &TestUser, path: &str, accept: &str) -> String {
    let res = app
        .client
        .get(app.url(path))
        .bearer_auth(&user.access_token)
        .header("Accept", accept)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200, "GET {path} as {accept}");
    res.text().await.unwrap()
}

/// `pg_dump --data-only` of the test's database, as text.
pub fn pg_dump(app: &TestApp) -> String {
    let dump = std::process::Command::new("/usr/lib/postgresql/15/bin/pg_dump")
        .args(["--data-only", app.settings.database_url.expose_secret()])
        .output()
        .expect("run pg_dump");
    assert!(
        dump.status.success(),
        "{}",
        String::from_utf8_lossy(&dump.stderr)
    );
    String::from_utf8_lossy(&dump.stdout).into_owned()
}

/// Appends `event` to `aggregate_type`/`aggregate_id` as the release before sealing did, as
/// `actor`: plain texts, the event's current version, the actor in the metadata. The store's
/// triggers give it its position and hash; the relay publishes it as any other.
pub async fn append_as_old_release(
    app: &TestApp,
    aggregate_type: &str,
    aggregate_id: &str,
    event: Value,
    actor: Uuid,
) {
    let event_type = event.as_object().unwrap().keys().next().unwrap().clone();
    let metadata = json!({
        "actor": actor.to_string(),
        "command": "OldRelease",
        "request_id": "old-release",
        "correlation_id": "old-release",
        "causation_id": "old-release",
    });
    sqlx::query(
        "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, \
         payload, metadata) \
         SELECT $1, $2, coalesce(max(sequence), 0) + 1, $3, '1', $4, $5 FROM events \
         WHERE aggregate_type = $1 AND aggregate_id = $2",
    )
    .bind(aggregate_type)
    .bind(aggregate_id)
    .bind(&event_type)
    .bind(&event)
    .bind(&metadata)
    .execute(&app.pool)
    .await
    .expect("append an event as the old release did");
}

/// An admin erases `id` (`POST /v1/admin/users/{id}/erase`).
pub async fn admin_erase(app: &TestApp, admin: &TestUser, id: Uuid) -> reqwest::Response {
    app.client
        .post(app.url(&format!("/v1/admin/users/{id}/erase")))
        .bearer_auth(&admin.access_token)
        .send()
        .await
        .unwrap()
}

/// `haystack` holds none of `words`.
pub fn holds_none(what: &str, haystack: &str, words: &[String]) {
    for w in words {
        assert!(!haystack.contains(w.as_str()), "{what} still holds {w}");
    }
}

/// Every projection rebuilt from the store up to its head equals the live one, table by table.
pub async fn assert_rebuilt_equals_live(app: &TestApp) {
    let head = app.head().await;
    for projection in bountyline::workers::projections(&app.opener()) {
        build_shadow(&app.pool, projection.as_ref(), Some(head), &|_, _| {})
            .await
            .unwrap();
        for (table, differing) in diff(&app.pool, projection.as_ref()).await.unwrap() {
            assert_eq!(
                differing,
                0,
                "{}: {table} differs from its rebuild",
                projection.name()
            );
        }
    }
}

/// As the release before sealing posted a bounty, as `poster`: plain title and description
/// (the process managers fund it as any other).
pub async fn append_old_bounty(
    app: &TestApp,
    bounty: &str,
    poster: &TestUser,
    title: &str,
    description: &str,
) {
    append_as_old_release(
        app,
        "Bounty",
        bounty,
        json!({"BountyPosted": {
            "poster": poster.id, "title": title, "description": description,
            "reward": {"amount": 1_000, "currency": "USD"}, "tags": ["legacy"],
            "deadline": null, "payment_id": Uuid::new_v4(), "at": OLD_RELEASE_AT,
        }}),
        poster.id,
    )
    .await;
}

/// As the release before sealing recorded `hunter`'s application to `poster`'s bounty.
pub async fn append_old_application(
    app: &TestApp,
    bounty: &str,
    hunter: &TestUser,
    poster: &TestUser,
    pitch: &str,
) {
    append_as_old_release(
        app,
        "Bounty",
        bounty,
        json!({"ApplicationSubmitted": {
            "application_id": Uuid::new_v4(), "hunter": hunter.id, "poster": poster.id,
            "pitch": pitch, "at": OLD_RELEASE_AT,
        }}),
        hunter.id,
    )
    .await;
}

/// As the release before sealing created a task in `legacy-q`, as `creator`.
pub async fn append_old_task(
    app: &TestApp,
    task: &str,
    creator: &TestUser,
    title: &str,
    description: &str,
) {
    append_as_old_release(
        app,
        "Task",
        task,
        json!({"TaskCreated": {
            "queue": "legacy-q", "title": title, "description": description,
            "payload": {}, "priority": 0, "max_attempts": 3, "creator": creator.id,
            "bounty_id": null, "created_at": OLD_RELEASE_AT,
        }}),
        creator.id,
    )
    .await;
}

/// When the old release's events say they happened.
const OLD_RELEASE_AT: &str = "2026-11-01T12:00:00Z";
