//! The event store's own guarantees: acknowledged means durable across a kill, history is
//! append-only, and every event carries who, why and where it sits on the position line.

mod common;

use common::{fresh_database, test_settings, TestApp};
use serde_json::{json, Value};
use std::process::Stdio;
use std::time::Duration;

#[tokio::test]
async fn the_database_refuses_to_change_or_remove_events() {
    let app = TestApp::spawn().await;
    let alice = app.user("alice").await;
    app.create_task(&alice, "q", "history", 0).await;
    for sql in [
        "UPDATE events SET payload = '{}'::jsonb",
        "DELETE FROM events",
        "TRUNCATE events",
    ] {
        let err = sqlx::query(sql).execute(&app.pool).await.unwrap_err();
        assert!(err.to_string().contains("append-only"), "{sql}: {err}");
    }
    let count = app.event_count().await;
    assert_eq!(count, 1);
}

#[tokio::test]
async fn every_event_records_its_actor_request_correlation_and_causation() {
    let app = TestApp::spawn().await;
    let alice = app.user("alice").await;
    let res = app
        .client
        .post(app.url("/v1/tasks"))
        .bearer_auth(&alice.access_token)
        .header("X-Request-Id", "req-abc-123")
        .json(&json!({"queue": "q", "title": "traced"}))
        .send()
        .await
        .unwrap();
    // The server mints the request id that correlates; the client's is kept apart (issue 23).
    assert_eq!(res.headers()["x-client-request-id"], "req-abc-123");
    let request_id = res.headers()["x-request-id"].to_str().unwrap().to_owned();
    assert_ne!(request_id, "req-abc-123");
    let (metadata, event_version, position, recorded): (Value, String, i64, bool) = sqlx::query_as(
        "SELECT metadata, event_version, position, recorded_at <= now() FROM events",
    )
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!(metadata["actor"], json!(alice.id.to_string()));
    assert_eq!(metadata["request_id"], request_id.as_str());
    assert_eq!(metadata["correlation_id"], request_id.as_str());
    assert_eq!(metadata["client_request_id"], "req-abc-123");
    assert_eq!(metadata["causation_id"], metadata["command_id"]);
    assert_eq!(metadata["command"], "CreateTask");
    assert_eq!(event_version, "1");
    assert_eq!(position, 1);
    assert!(recorded);
}

/// Event ids, and the request ids the server makes for requests that bring none, are in time
/// order (UUID version 7, migration 0019), so that their indexes grow at their ends instead of
/// dirtying a random page per append.
#[tokio::test]
async fn event_and_generated_request_ids_are_in_time_order() {
    let app = TestApp::spawn().await;
    let alice = app.user("alice").await;
    for n in 0..5 {
        app.create_task(&alice, "q", &format!("ordered {n}"), 1)
            .await;
        // Ids of one millisecond order only by their random part.
        tokio::time::sleep(std::time::Duration::from_millis(2)).await;
    }
    let rows: Vec<(uuid::Uuid, String)> = sqlx::query_as(
        "SELECT event_id, metadata ->> 'correlation_id' FROM events ORDER BY position",
    )
    .fetch_all(&app.pool)
    .await
    .unwrap();
    assert_eq!(rows.len(), 5);
    let correlations: Vec<uuid::Uuid> = rows
        .iter()
        .map(|(_, c)| c.parse().expect("a generated request id is a UUID"))
        .collect();
    let events: Vec<uuid::Uuid> = rows.iter().map(|(e, _)| *e).collect();
    for ids in [&events, &correlations] {
        assert!(
            ids.iter().all(|id| id.get_version_num() == 7),
            "not version 7: {ids:?}"
        );
        assert!(ids.is_sorted(), "not in time order: {ids:?}");
    }
    let texts: Vec<String> = correlations.iter().map(|c| c.to_string()).collect();
    assert!(
        texts.is_sorted(),
        "their text (the index's key) sorts in time order too"
    );
}

/// A free loopback port for a child process.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[tokio::test]
async fn acknowledged_commands_survive_killing_the_server() {
    let db = fresh_database().await;
    let settings = test_settings(&db, &std::env::var("NATS_URL").unwrap());
    // An in-process app on the same database and key registers the user.
    let helper = TestApp::spawn_with(settings.clone(), bountyline::startup::Parts::WORKERS).await;
    let registrar = TestApp::spawn_with(settings.clone(), bountyline::startup::Parts::API).await;
    let alice = registrar.user("alice").await;

    let port = free_port();
    let bin = std::path::Path::new(env!("CARGO_BIN_EXE_bountyline"));
    let mut child = common::KillOnDrop(
        common::bountyline_command(bin, "serve", &settings, port)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start bountyline serve"),
    );
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    common::wait_ready(&client, &base, Duration::from_secs(20)).await;

    let mut acknowledged = Vec::new();
    for i in 0..20 {
        let res = client
            .post(format!("{base}/v1/tasks"))
            .bearer_auth(&alice.access_token)
            .json(&json!({"queue": "durable", "title": format!("t{i}")}))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 201);
        acknowledged.push(res.json::<Value>().await.unwrap());
    }
    // SIGKILL: no chance to flush anything.
    child.kill();

    for ack in &acknowledged {
        let (version, position): (i64, i64) = sqlx::query_as(
            "SELECT sequence, position FROM events WHERE aggregate_type = 'Task' AND aggregate_id = $1",
        )
        .bind(ack["id"].as_str().unwrap())
        .fetch_one(&helper.pool)
        .await
        .expect("an acknowledged command's event is in the store");
        assert_eq!(json!(version), ack["version"]);
        assert_eq!(json!(position), ack["position"]);
    }
    // And the workers, still running, project all of them.
    helper.settle().await;
    let projected: i64 = sqlx::query_scalar("SELECT count(*) FROM tasks WHERE queue = 'durable'")
        .fetch_one(&helper.pool)
        .await
        .unwrap();
    assert_eq!(projected, 20);
}

/// Autovacuum analyzes the events table about once a minute under load; statistics on the
/// payload and metadata documents, which no plan uses, were half of each ANALYZE's CPU.
#[tokio::test]
async fn analyzing_events_skips_the_documents_and_keeps_the_index_expressions() {
    let app = TestApp::spawn().await;
    let alice = app.user("alice").await;
    for n in 0..3 {
        app.create_task(&alice, "q", &format!("analyzed {n}"), 0)
            .await;
    }
    sqlx::query("ANALYZE events")
        .execute(&app.pool)
        .await
        .unwrap();
    let columns: Vec<String> = sqlx::query_scalar(
        "SELECT attname::text FROM pg_stats WHERE schemaname = 'public' AND tablename = 'events'",
    )
    .fetch_all(&app.pool)
    .await
    .unwrap();
    for kept in [
        "position",
        "aggregate_type",
        "aggregate_id",
        "event_type",
        "recorded_at",
    ] {
        assert!(
            columns.iter().any(|c| c == kept),
            "{kept} missing from {columns:?}"
        );
    }
    for skipped in ["payload", "metadata"] {
        assert!(
            !columns.iter().any(|c| c == skipped),
            "{skipped} analyzed: {columns:?}"
        );
    }
    let actor_index: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM pg_stats WHERE schemaname = 'public' \
         AND tablename = 'events_actor_idx'",
    )
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert!(
        actor_index > 0,
        "the actor expression index lost its statistics"
    );
}

/// The pool every process uses keeps a connection's lifetime itself, closing it on its way
/// back, and leaves sqlx's idle timeout and maximum lifetime unset: either one starts sqlx
/// 0.8's maintenance task, which can spin a runtime thread for good (see `db::pool_options`).
#[tokio::test]
async fn the_pool_closes_a_connection_past_its_lifetime_without_a_maintenance_task() {
    let url = fresh_database().await;
    let pool = bountyline::db::pool_options(1, Duration::from_millis(300))
        .connect(&url)
        .await
        .expect("connect");
    let options = pool.options();
    assert_eq!(
        options.get_idle_timeout(),
        None,
        "an idle timeout starts the task"
    );
    assert_eq!(
        options.get_max_lifetime(),
        None,
        "a maximum lifetime starts the task"
    );
    assert_eq!(
        options.get_min_connections(),
        0,
        "a minimum starts the task"
    );
    let backend = || async {
        sqlx::query_scalar::<_, i32>("SELECT pg_backend_pid()")
            .fetch_one(&pool)
            .await
            .expect("backend pid")
    };
    let first = backend().await;
    assert_eq!(backend().await, first, "a young connection is used again");
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(
        backend().await,
        first,
        "still the same connection until it comes back"
    );
    assert_ne!(
        backend().await,
        first,
        "closed when it came back past its lifetime"
    );
}

/// A user cannot place events in another user's correlation chain by sending its id as their
/// own `X-Request-Id` (issue 23): correlation ids are the server's.
#[tokio::test]
async fn a_client_chosen_request_id_never_joins_another_users_correlation_chain() {
    let app = TestApp::spawn().await;
    let (victim, forger) = (app.user("victim").await, app.user("forger").await);
    let res = app
        .post(
            &victim,
            "/v1/tasks",
            &json!({"queue": "q", "title": "mine"}),
        )
        .await;
    let chain = res.headers()["x-request-id"].to_str().unwrap().to_owned();
    let forged = app
        .client
        .post(app.url("/v1/tasks"))
        .bearer_auth(&forger.access_token)
        .header("X-Request-Id", &chain)
        .json(&json!({"queue": "q", "title": "planted"}))
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), 201);
    let actors: Vec<String> = sqlx::query_scalar(
        "SELECT metadata ->> 'actor' FROM events WHERE metadata ->> 'correlation_id' = $1",
    )
    .bind(&chain)
    .fetch_all(&app.pool)
    .await
    .unwrap();
    assert_eq!(
        actors,
        [victim.id.to_string()],
        "the chain holds the victim's events only"
    );
}
