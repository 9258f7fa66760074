//! `GET /v1/audit/events` (issue 4 items 1 and 6): filters, cursor paging, NDJSON and CSV
//! streams, who may read, the record of every read, and that no credential reaches an export.

mod common;

use bountyline::startup::Parts;
use bountyline_projections::{EventReader, StoredEvent};
use common::{TestApp, TestUser};
use secrecy::ExposeSecret;
use serde_json::{json, Value};
use std::time::Instant;

async fn all_events(app: &TestApp) -> Vec<StoredEvent> {
    EventReader::new(app.pool.clone())
        .after(0, 1_000_000)
        .await
        .expect("events")
}

/// Every page of a JSON query, following `next_cursor`; checks each page's shape.
async fn pages(app: &TestApp, who: &TestUser, params: &[(&str, String)], limit: i64) -> Vec<Value> {
    let mut items = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut query: Vec<(&str, String)> = params.to_vec();
        query.push(("limit", limit.to_string()));
        if let Some(c) = &cursor {
            query.push(("cursor", c.clone()));
        }
        let res = app
            .client
            .get(events_url(app, &query))
            .bearer_auth(&who.access_token)
            .send()
            .await
            .expect("request");
        assert_eq!(res.status(), 200, "{:?}", res.text().await);
        let body: Value = res.json().await.expect("json");
        let page = body["items"].as_array().expect("items").clone();
        assert!(page.len() as i64 <= limit);
        items.extend(page);
        match body["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => return items,
        }
    }
}

fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            b => format!("%{b:02X}"),
        })
        .collect()
}

fn events_url(app: &TestApp, params: &[(&str, String)]) -> String {
    let query: Vec<String> = params
        .iter()
        .map(|(k, v)| format!("{k}={}", encode(v)))
        .collect();
    app.url(&format!("/v1/audit/events?{}", query.join("&")))
}

fn positions(items: &[Value]) -> Vec<i64> {
    items
        .iter()
        .map(|e| e["position"].as_i64().expect("position"))
        .collect()
}

fn expected(events: &[StoredEvent], keep: impl Fn(&StoredEvent) -> bool) -> Vec<i64> {
    events
        .iter()
        .filter(|e| keep(e))
        .map(|e| e.position)
        .collect()
}

async fn stream(
    app: &TestApp,
    who: &TestUser,
    accept: &str,
    params: &[(&str, String)],
) -> (String, String) {
    let res = app
        .client
        .get(events_url(app, params))
        .bearer_auth(&who.access_token)
        .header("Accept", accept)
        .send()
        .await
        .expect("request");
    assert_eq!(res.status(), 200);
    let ct = res.headers()["content-type"]
        .to_str()
        .expect("ct")
        .to_owned();
    (ct, res.text().await.expect("body"))
}

/// A minimal RFC 4180 reader: records of fields, quoted fields may hold `,`, `""` and newlines.
fn parse_csv(text: &str) -> Vec<Vec<String>> {
    let mut records = Vec::new();
    let mut record = Vec::new();
    let mut field = String::new();
    let mut chars = text.chars().peekable();
    let mut quoted = false;
    while let Some(c) = chars.next() {
        if quoted {
            match c {
                '"' if chars.peek() == Some(&'"') => {
                    chars.next();
                    field.push('"');
                }
                '"' => quoted = false,
                c => field.push(c),
            }
        } else {
            match c {
                '"' => quoted = true,
                ',' => record.push(std::mem::take(&mut field)),
                '\r' => {
                    assert_eq!(chars.next(), Some('\n'), "CRLF line ends");
                    record.push(std::mem::take(&mut field));
                    records.push(std::mem::take(&mut record));
                }
                c => field.push(c),
            }
        }
    }
    assert!(
        field.is_empty() && record.is_empty(),
        "the last record ends with CRLF"
    );
    records
}

/// Creates a task and returns its answer and the request id the server gave it (the events'
/// correlation id).
async fn create_task_with_request_id(
    app: &TestApp,
    user: &TestUser,
    title: &str,
) -> (Value, String) {
    let res = app
        .client
        .post(app.url("/v1/tasks"))
        .bearer_auth(&user.access_token)
        .json(&json!({"queue": "audit", "title": title}))
        .send()
        .await
        .expect("request");
    assert_eq!(res.status(), 201);
    let request_id = res.headers()["x-request-id"].to_str().unwrap().to_owned();
    (res.json().await.expect("json"), request_id)
}

#[tokio::test]
async fn filters_return_exactly_the_matching_events_in_position_order() {
    let app = TestApp::spawn().await;
    let alice = app.user("alice").await;
    let bob = app.user("bob").await;
    let auditor = app.auditor().await;
    let a1 = app.create_task(&alice, "audit", "first", 1).await;
    let (corr, request_id) = create_task_with_request_id(&app, &bob, "second").await;
    let task_id = a1["id"].as_str().expect("id").to_owned();
    let res = app
        .post(&alice, &format!("/v1/tasks/{task_id}/cancel"), &json!({}))
        .await;
    assert_eq!(res.status(), 200, "cancel");
    for i in 0..5 {
        app.create_task(
            if i % 2 == 0 { &alice } else { &bob },
            "audit",
            &format!("t{i}"),
            1,
        )
        .await;
    }
    app.deposit(&alice, 500, "USD").await;
    app.settle().await;
    let events = all_events(&app).await;
    assert!(events.len() > 8);

    // No filter, small pages: every event exactly once, in position order.
    let all = positions(&pages(&app, &auditor, &[], 3).await);
    assert_eq!(all, expected(&events, |_| true));

    let by_aggregate = pages(
        &app,
        &auditor,
        &[
            ("aggregate_type", "Task".into()),
            ("aggregate_id", task_id.clone()),
        ],
        50,
    )
    .await;
    let want = expected(&events, |e| {
        e.aggregate_type == "Task" && e.aggregate_id == task_id
    });
    assert!(want.len() >= 2, "created and cancelled");
    assert_eq!(positions(&by_aggregate), want);

    let by_type = pages(&app, &auditor, &[("event_type", "TaskCreated".into())], 2).await;
    assert_eq!(
        positions(&by_type),
        expected(&events, |e| e.event_type == "TaskCreated")
    );
    assert_eq!(by_type.len(), 7);

    let by_actor = pages(&app, &auditor, &[("actor", bob.id.to_string())], 2).await;
    let want = expected(&events, |e| {
        e.meta("actor") == Some(bob.id.to_string().as_str())
    });
    assert!(!want.is_empty());
    assert_eq!(positions(&by_actor), want);

    let by_corr = pages(
        &app,
        &auditor,
        &[("correlation_id", request_id.clone())],
        50,
    )
    .await;
    let want = expected(&events, |e| {
        e.meta("correlation_id") == Some(request_id.as_str())
    });
    assert!(!want.is_empty());
    assert_eq!(positions(&by_corr), want);
    assert!(by_corr
        .iter()
        .any(|e| e["aggregate_id"].as_str() == corr["id"].as_str()));

    // A time range: [recorded_at of the 3rd event, recorded_at of the 7th).
    let (from, to) = (events[2].recorded_at, events[6].recorded_at);
    let fmt =
        |t: chrono::DateTime<chrono::Utc>| t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
    let by_time = pages(&app, &auditor, &[("from", fmt(from)), ("to", fmt(to))], 2).await;
    assert_eq!(
        positions(&by_time),
        expected(&events, |e| e.recorded_at >= from && e.recorded_at < to)
    );

    // Combined with `after`.
    let after = events[3].position;
    let tail = pages(&app, &auditor, &[("after", after.to_string())], 4).await;
    assert_eq!(positions(&tail), expected(&events, |e| e.position > after));
}

#[tokio::test]
async fn ndjson_and_csv_stream_every_match() {
    let app = TestApp::spawn().await;
    let alice = app.user("alice").await;
    let auditor = app.auditor().await;
    let tricky = "comma, \"quotes\" and more";
    for i in 0..4 {
        app.create_task(&alice, "audit", &format!("{tricky} {i}"), 1)
            .await;
    }
    app.settle().await;
    // The store holds the titles sealed; the export shows them as the client sent them.
    let mut events = all_events(&app).await;
    app.opener().open_events(&mut events).await.unwrap();

    let (ct, body) = stream(&app, &auditor, "application/x-ndjson", &[]).await;
    assert!(ct.starts_with("application/x-ndjson"));
    assert!(body.ends_with('\n'));
    let lines: Vec<StoredEvent> = body
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON per line"))
        .collect();
    assert_eq!(lines, events);

    let (_, body) = stream(
        &app,
        &auditor,
        "application/x-ndjson",
        &[("event_type", "TaskCreated".into())],
    )
    .await;
    assert_eq!(body.lines().count(), 4);

    let (ct, body) = stream(&app, &auditor, "text/csv", &[]).await;
    assert!(ct.starts_with("text/csv"));
    let records = parse_csv(&body);
    assert_eq!(
        records[0].join(","),
        "position,event_id,recorded_at,aggregate_type,aggregate_id,sequence,event_type,\
         event_version,actor,request_id,correlation_id,causation_id,payload"
    );
    assert_eq!(records.len(), events.len() + 1);
    for (row, event) in records[1..].iter().zip(&events) {
        assert_eq!(row.len(), 13);
        assert_eq!(row[0], event.position.to_string());
        assert_eq!(row[1], event.event_id.to_string());
        assert_eq!(row[3], event.aggregate_type);
        assert_eq!(row[4], event.aggregate_id);
        assert_eq!(row[6], event.event_type);
        assert_eq!(row[8], event.meta("actor").unwrap_or_default());
        assert_eq!(row[10], event.meta("correlation_id").unwrap_or_default());
        let payload: Value = serde_json::from_str(&row[12]).expect("payload is JSON");
        assert_eq!(payload, event.payload);
    }
    // The title's `"` is `\"` in the payload's JSON, and doubled in the quoted CSV field.
    assert!(body.contains(r#"\""quotes\"""#), "inner quotes are doubled");
}

#[tokio::test]
async fn only_auditors_and_admins_read_and_bad_queries_are_refused() {
    let app = TestApp::spawn().await;
    let member = app.user("member").await;
    let admin = app.admin().await;
    let res = app.get(&member, "/v1/audit/events").await;
    assert_eq!(res.status(), 403);
    let res = app.get(&member, "/v1/audit/reads").await;
    assert_eq!(res.status(), 403);
    let res = app
        .client
        .get(app.url("/v1/audit/events"))
        .send()
        .await
        .expect("request");
    assert_eq!(res.status(), 401);
    assert_eq!(app.get(&admin, "/v1/audit/events").await.status(), 200);
    for bad in [
        "/v1/audit/events?nope=1",
        "/v1/audit/events?from=yesterday",
        "/v1/audit/events?to=2026-13-01T00:00:00Z",
        "/v1/audit/events?actor=not-a-uuid",
        "/v1/audit/events?cursor=abc",
        "/v1/audit/events?limit=0",
    ] {
        assert_eq!(app.get(&admin, bad).await.status(), 422, "{bad}");
    }
}

#[tokio::test]
async fn every_audit_read_is_recorded_with_who_read_what() {
    let app = TestApp::spawn().await;
    let alice = app.user("alice").await;
    let auditor = app.auditor().await;
    app.create_task(&alice, "audit", "one", 1).await;
    app.settle().await;
    let total = all_events(&app).await.len() as i64;

    pages(&app, &auditor, &[("event_type", "TaskCreated".into())], 50).await;
    stream(&app, &auditor, "application/x-ndjson", &[]).await;
    stream(
        &app,
        &auditor,
        "text/csv",
        &[("actor", alice.id.to_string())],
    )
    .await;

    let res = app.get(&auditor, "/v1/audit/reads").await;
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.expect("json");
    let items = body["items"].as_array().expect("items");
    let mine: Vec<&Value> = items
        .iter()
        .filter(|r| r["actor"].as_str() == Some(auditor.id.to_string().as_str()))
        .collect();
    let whats: Vec<&str> = mine.iter().filter_map(|r| r["what"].as_str()).collect();
    // Newest first.
    assert_eq!(whats, ["events.csv", "events.ndjson", "events.json"]);
    assert_eq!(mine[2]["filter"], json!({"event_type": "TaskCreated"}));
    assert_eq!(mine[2]["rows"], 1);
    assert_eq!(mine[1]["rows"], total);
    assert_eq!(mine[0]["filter"], json!({"actor": alice.id.to_string()}));

    // Looking at the reads is recorded too.
    let body: Value = app
        .get(&auditor, "/v1/audit/reads?limit=1")
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(body["items"][0]["what"], "reads.list");
    assert!(body["next_cursor"].is_string());
}

#[tokio::test]
async fn no_credential_appears_in_an_export() {
    let app = TestApp::spawn().await;
    let user = app.user("carol").await;
    let res = app.refresh(&user.refresh_token).await;
    assert_eq!(res.status(), 200);
    let refreshed: Value = res.json().await.expect("json");
    let new_access = refreshed["access_token"]
        .as_str()
        .expect("access")
        .to_owned();
    let new_refresh = refreshed["refresh_token"]
        .as_str()
        .expect("refresh")
        .to_owned();
    // The refresh ended the first access token's session; go on with the new one.
    let user = TestUser {
        access_token: new_access.clone(),
        ..user
    };
    app.deposit(&user, 2_000, "USD").await;
    let task = app.create_task(&user, "audit", "work", 1).await;
    let id = task["id"].as_str().expect("id");
    app.post(&user, &format!("/v1/tasks/{id}/cancel"), &json!({}))
        .await;
    let res = app
        .client
        .post(app.url("/v1/auth/logout"))
        .bearer_auth(&new_access)
        .json(&json!({"refresh_token": new_refresh}))
        .send()
        .await
        .expect("logout");
    assert!(res.status().is_success());
    app.settle().await;

    let admin = app.admin().await;
    let mut exported = String::new();
    for accept in ["application/x-ndjson", "text/csv", "application/json"] {
        let (_, body) = stream(&app, &admin, accept, &[]).await;
        exported.push_str(&body);
    }
    let reads: String = sqlx::query_scalar(
        "SELECT coalesce(string_agg(filter::text || what, ' '), '') FROM audit_reads",
    )
    .fetch_one(&app.pool)
    .await
    .expect("reads");
    exported.push_str(&reads);
    assert!(exported.contains("TaskCreated"), "the export is not empty");
    let secrets = [
        user.password.as_str(),
        user.access_token.as_str(),
        user.refresh_token.as_str(),
        new_access.as_str(),
        new_refresh.as_str(),
        admin.access_token.as_str(),
        app.settings.payments.webhook_secret.expose_secret(),
        app.settings.auth.jwt_secret.expose_secret(),
        "$argon2",
    ];
    for secret in secrets {
        assert!(!exported.contains(secret), "an export holds a credential");
    }
}

/// The process's peak resident set (Linux), for a rough view of memory while streaming.
fn peak_rss_kb() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

/// A rough figure, not a check: NDJSON export rate over many events written directly.
#[tokio::test]
async fn ndjson_export_rate() {
    let n: i64 = std::env::var("AUDIT_BENCH_EVENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000);
    let db = common::fresh_database().await;
    let nats = std::env::var("NATS_URL").expect("NATS_URL");
    // API only: the synthetic events are not for the projections.
    let app = TestApp::spawn_with(common::test_settings(&db, &nats), Parts::API).await;
    let admin = app.admin().await;
    let mut tx = app.pool.begin().await.expect("begin");
    sqlx::query(
        "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata) \
         SELECT 'bench', 'agg-' || (g / 1000), g % 1000 + 1, 'BenchHappened', '1.0', \
                jsonb_build_object('BenchHappened', jsonb_build_object('n', g, 'note', repeat('x', 100))), \
                jsonb_build_object('actor', $2::text, 'correlation_id', 'bench-' || g, 'request_id', 'bench-' || g) \
         FROM generate_series(0, $1 - 1) AS g",
    )
    .bind(n)
    .bind(admin.id.to_string())
    .execute(&mut *tx)
    .await
    .expect("insert events");
    tx.commit().await.expect("commit");

    let rss_before = peak_rss_kb();
    let started = Instant::now();
    let res = app
        .client
        .get(app.url("/v1/audit/events"))
        .bearer_auth(&admin.access_token)
        .header("Accept", "application/x-ndjson")
        .send()
        .await
        .expect("request");
    assert_eq!(res.status(), 200);
    let mut lines = 0u64;
    let mut bytes = 0u64;
    let mut res = res;
    while let Some(chunk) = res.chunk().await.expect("chunk") {
        bytes += chunk.len() as u64;
        lines += chunk.iter().filter(|b| **b == b'\n').count() as u64;
    }
    let secs = started.elapsed().as_secs_f64();
    assert_eq!(lines as i64, n);
    eprintln!(
        "audit NDJSON export: {n} events, {:.1} MB in {secs:.2} s = {:.0} events/s",
        bytes as f64 / 1e6,
        n as f64 / secs
    );
    eprintln!(
        "peak RSS of the test process (server + client): {} kB before, {} kB after",
        rss_before,
        peak_rss_kb()
    );

    // The CLI path, to a sink.
    let started = Instant::now();
    let written = bountyline::audit::export::export_to(
        &app.pool,
        &app.opener(),
        &Default::default(),
        bountyline::audit::export::Format::Csv,
        std::io::sink(),
        |_, _| {},
    )
    .await
    .expect("export");
    assert_eq!(written as i64, n);
    eprintln!(
        "audit CSV export_to: {n} events in {:.2} s = {:.0} events/s",
        started.elapsed().as_secs_f64(),
        n as f64 / started.elapsed().as_secs_f64()
    );
}
