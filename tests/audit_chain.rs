//! Guarantee 10: tamper-evident history. Every event is chained to its stream's previous one by
//! a hash computed in the append transaction; an auditor can recompute every chain and, with an
//! exported list of stream heads, detect that the newest events of a stream were removed.

mod common;

use bountyline::audit::chain::{self, Head, VerifyReport};
use common::{fresh_database, TestApp};
use serde_json::{json, Value};
use sqlx::{Connection, PgConnection, PgPool};
use std::time::Instant;

/// Some history: users, tasks and deposits, with everything their workers append settled.
async fn with_history() -> TestApp {
    let app = TestApp::spawn().await;
    let (alice, bob) = (app.user("alice").await, app.user("bob").await);
    for i in 0..3 {
        app.create_task(&alice, "q", &format!("task {i}"), i).await;
    }
    // Streams of several events: one task cancelled, one claimed, beaten and completed.
    let cancelled = app.create_task(&bob, "q", "bob's task", 0).await;
    let res = app
        .post(
            &bob,
            &format!(
                "/v1/tasks/{}/cancel",
                cancelled["id"].as_str().unwrap_or_default()
            ),
            &json!({}),
        )
        .await;
    assert_eq!(res.status(), 200, "cancel");
    let work = app.create_task(&alice, "work", "to be done", 0).await;
    app.wait_for_projection("tasks", work["position"].as_i64().unwrap_or_default())
        .await;
    app.may_work("work", &bob).await;
    let res = app.post(&bob, "/v1/queues/work/claim", &json!({})).await;
    assert_eq!(res.status(), 200, "claim");
    let id = work["id"].as_str().unwrap_or_default().to_owned();
    let res = app
        .post(
            &bob,
            &format!("/v1/tasks/{id}/heartbeat"),
            &json!({"progress": 50}),
        )
        .await;
    assert_eq!(res.status(), 200, "heartbeat");
    let res = app
        .post(
            &bob,
            &format!("/v1/tasks/{id}/complete"),
            &json!({"result": {"ok": 1}}),
        )
        .await;
    assert_eq!(res.status(), 200, "complete");
    app.deposit(&alice, 5_000, "EUR").await;
    app.deposit(&bob, 700, "EUR").await;
    app.settle().await;
    app
}

/// A superuser connection with the event store's own triggers switched off, as an attacker with
/// direct database access would have. Runs `sql` (with `$1` bound to `position`) in it.
async fn tamper(pool: &PgPool, sql: &str, position: i64) {
    let mut conn = pool.acquire().await.expect("connection");
    let mut tx = conn.begin().await.expect("begin");
    sqlx::query("SET LOCAL session_replication_role = replica")
        .execute(&mut *tx)
        .await
        .expect("superuser: replica role switches triggers off");
    let done = sqlx::query(sql)
        .bind(position)
        .execute(&mut *tx)
        .await
        .expect("tamper");
    assert_eq!(done.rows_affected(), 1, "tampered with exactly one event");
    tx.commit().await.expect("commit");
}

async fn count_events(pool: &PgPool) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM events")
        .fetch_one(pool)
        .await
        .expect("count")
}

#[tokio::test]
async fn a_clean_store_verifies_and_every_event_has_a_hash() {
    let app = with_history().await;
    let auditor = app.auditor().await;
    let total = count_events(&app.pool).await;
    assert!(total > 6, "some history to check, got {total}");

    let started = Instant::now();
    let report = chain::verify(&app.pool).await.expect("verify");
    let took = started.elapsed();
    println!(
        "verify: {} events in {took:?} ({:.0} events/s)",
        report.checked,
        report.checked as f64 / took.as_secs_f64()
    );
    assert_eq!(
        report,
        VerifyReport {
            ok: true,
            checked: total,
            first_broken: None
        }
    );

    let res = app.get(&auditor, "/v1/audit/verify").await;
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.expect("json");
    assert_eq!(body["ok"], json!(true));
    assert_eq!(body["checked"], json!(total));
    assert_eq!(body["first_broken"], Value::Null);

    // The hash is written by the database itself, and chains within each stream.
    let unhashed: i64 =
        sqlx::query_scalar("SELECT count(*) FROM events WHERE hash IS NULL OR length(hash) <> 32")
            .fetch_one(&app.pool)
            .await
            .expect("count");
    assert_eq!(unhashed, 0);
    let heads = chain::heads(&app.pool).await.expect("heads");
    assert!(!heads.is_empty());
    assert!(chain::check_heads(&app.pool, &heads)
        .await
        .expect("check")
        .problems
        .is_empty());
}

#[tokio::test]
async fn an_edited_payload_is_pointed_at_exactly() {
    let app = with_history().await;
    let auditor = app.auditor().await;
    // An event in the middle of a stream with a successor, so the break is not just "the end".
    let (position, event_id, aggregate_type, aggregate_id, sequence): (
        i64,
        uuid::Uuid,
        String,
        String,
        i64,
    ) = sqlx::query_as(
        "SELECT e.position, e.event_id, e.aggregate_type, e.aggregate_id, e.sequence \
           FROM events e \
          WHERE EXISTS (SELECT 1 FROM events n WHERE n.aggregate_type = e.aggregate_type \
                          AND n.aggregate_id = e.aggregate_id AND n.sequence = e.sequence + 1) \
          ORDER BY e.position DESC LIMIT 1",
    )
    .fetch_one(&app.pool)
    .await
    .expect("an event with a successor");

    tamper(
        &app.pool,
        "UPDATE events SET payload = jsonb_set(payload, '{tampered}', 'true') WHERE position = $1",
        position,
    )
    .await;
    // The append-only trigger is back for everyone else.
    let refused = sqlx::query("UPDATE events SET payload = '{}' WHERE position = $1")
        .bind(position)
        .execute(&app.pool)
        .await;
    assert!(refused.is_err(), "the events table is still append-only");

    let report = chain::verify(&app.pool).await.expect("verify");
    assert!(!report.ok);
    assert_eq!(report.checked, count_events(&app.pool).await);
    let broken = report.first_broken.expect("a broken link");
    assert_eq!(broken.position, position);
    assert_eq!(broken.event_id, event_id);
    assert_eq!(
        (broken.aggregate_type.as_str(), broken.aggregate_id.as_str()),
        (aggregate_type.as_str(), aggregate_id.as_str())
    );
    assert_eq!(broken.sequence, sequence);
    assert!(broken.reason.contains("hash"), "{}", broken.reason);

    let res = app.get(&auditor, "/v1/audit/verify").await;
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.expect("json");
    assert_eq!(body["ok"], json!(false));
    assert_eq!(body["first_broken"]["position"], json!(position));
    assert_eq!(body["first_broken"]["event_id"], json!(event_id));
}

#[tokio::test]
async fn a_deleted_newest_event_is_caught_by_the_exported_heads() {
    let app = with_history().await;
    let auditor = app.auditor().await;

    let res = app.get(&auditor, "/v1/audit/heads").await;
    assert_eq!(res.status(), 200);
    let exported: Value = res.json().await.expect("json");
    let heads: Vec<Head> = serde_json::from_value(exported["items"].clone()).expect("heads");
    // A stream with more than one event, so the truncated one still exists.
    let victim = heads
        .iter()
        .filter(|h| h.sequence > 1)
        .max_by_key(|h| h.sequence)
        .expect("a stream with two or more events")
        .clone();
    let position: i64 = sqlx::query_scalar(
        "SELECT position FROM events \
          WHERE aggregate_type = $1 AND aggregate_id = $2 AND sequence = $3",
    )
    .bind(&victim.aggregate_type)
    .bind(&victim.aggregate_id)
    .bind(victim.sequence)
    .fetch_one(&app.pool)
    .await
    .expect("the victim's newest event");

    tamper(
        &app.pool,
        "DELETE FROM events WHERE position = $1",
        position,
    )
    .await;

    // What is left is a consistent chain: verify alone cannot see the removal...
    let report = chain::verify(&app.pool).await.expect("verify");
    assert!(report.ok, "{report:?}");
    // ...but the exported heads do, and name that stream only.
    let problems = chain::check_heads(&app.pool, &heads)
        .await
        .expect("check")
        .problems;
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert_eq!(problems[0].aggregate_type, victim.aggregate_type);
    assert_eq!(problems[0].aggregate_id, victim.aggregate_id);
    assert_eq!(problems[0].exported_sequence, victim.sequence);
    assert_eq!(problems[0].current_sequence, Some(victim.sequence - 1));
    assert_eq!(problems[0].problem, "truncated");

    let res = app.post(&auditor, "/v1/audit/heads/check", &exported).await;
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.expect("json");
    assert_eq!(body["ok"], json!(false));
    assert_eq!(body["problems"].as_array().map(Vec::len), Some(1));
    assert_eq!(
        body["problems"][0]["aggregate_id"],
        json!(victim.aggregate_id)
    );
}

#[tokio::test]
async fn a_deleted_event_inside_a_stream_is_a_gap() {
    let app = with_history().await;
    let (position, next_position): (i64, i64) = sqlx::query_as(
        "SELECT e.position, n.position FROM events e \
           JOIN events n ON n.aggregate_type = e.aggregate_type \
                        AND n.aggregate_id = e.aggregate_id AND n.sequence = e.sequence + 1 \
          ORDER BY e.position LIMIT 1",
    )
    .fetch_one(&app.pool)
    .await
    .expect("an event with a successor");
    tamper(
        &app.pool,
        "DELETE FROM events WHERE position = $1",
        position,
    )
    .await;

    let report = chain::verify(&app.pool).await.expect("verify");
    assert!(!report.ok);
    let broken = report.first_broken.expect("a broken link");
    assert_eq!(broken.position, next_position);
    assert!(broken.reason.contains("missing"), "{}", broken.reason);
}

#[tokio::test]
async fn only_auditors_and_admins_may_use_the_chain_routes() {
    let app = TestApp::spawn().await;
    let (member, auditor, admin) = (
        app.user("mallory").await,
        app.auditor().await,
        app.admin().await,
    );
    let body = json!({"items": []});
    for path in ["/v1/audit/verify", "/v1/audit/heads"] {
        assert_eq!(app.get(&member, path).await.status(), 403, "{path}");
        assert_eq!(app.get(&auditor, path).await.status(), 200, "{path}");
        assert_eq!(app.get(&admin, path).await.status(), 200, "{path}");
    }
    assert_eq!(
        app.post(&member, "/v1/audit/heads/check", &body)
            .await
            .status(),
        403
    );
    assert_eq!(
        app.post(&auditor, "/v1/audit/heads/check", &body)
            .await
            .status(),
        200
    );
    let anonymous = app
        .client
        .get(app.url("/v1/audit/verify"))
        .send()
        .await
        .expect("request");
    assert_eq!(anonymous.status(), 401);
}

/// A larger store without the server: many streams appended in one statement each, then
/// verified. Prints the rate; asserts only correctness.
#[tokio::test]
async fn verify_scales_to_a_larger_store() {
    let url = fresh_database().await;
    let mut conn = PgConnection::connect(&url).await.expect("connect");
    const STREAMS: i64 = 200;
    const PER_STREAM: i64 = 100;
    // Rows of one statement are chained in the order they are inserted.
    sqlx::query(
        "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, \
                             payload, metadata) \
         SELECT 'Bench', 'stream-' || (g % $1), g / $1 + 1, 'BenchHappened', '1', \
                jsonb_build_object('n', g, 'text', repeat('x', 200)), \
                jsonb_build_object('actor', 'bench') \
           FROM generate_series(0, $1 * $2 - 1) AS g ORDER BY g",
    )
    .bind(STREAMS)
    .bind(PER_STREAM)
    .execute(&mut conn)
    .await
    .expect("append");
    conn.close().await.expect("close");

    let pool = PgPool::connect(&url).await.expect("pool");
    let started = Instant::now();
    let report = chain::verify(&pool).await.expect("verify");
    let took = started.elapsed();
    println!(
        "verify: {} events in {took:?} ({:.0} events/s)",
        report.checked,
        report.checked as f64 / took.as_secs_f64()
    );
    assert!(report.ok, "{report:?}");
    assert_eq!(report.checked, STREAMS * PER_STREAM);
    assert_eq!(
        chain::heads(&pool).await.expect("heads").len() as i64,
        STREAMS
    );
    pool.close().await;
}
