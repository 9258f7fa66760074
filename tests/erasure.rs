//! Forgetting a person (ADR 7, step 2): erased by themself (`DELETE /v1/me`, with their
//! password) or by an admin, a person's texts read "[erased]" in every answer that showed them,
//! and none of their email, name or texts is left in a `pg_dump`, the JetStream stream, an
//! export or the logs; a second person's data stays whole, money keeps its amounts, history
//! still verifies and rebuilds as it is live. A crash between the erasure's append and its
//! scrub is finished by the process managers.

mod common;

use bountyline::commands::{CommandBus, CommandContext};
use bountyline::privacy::erasure;
use bountyline_domain::person::PersonCommand;
use bountyline_domain::{Actor, Role};
use common::sse::SseStream;
use common::texts::{
    admin_erase, assert_rebuilt_equals_live, holds_none, pg_dump, read, read_as, send, word,
};
use common::*;
use serde_json::{json, Value};
use std::time::Duration;
use uuid::Uuid;

const ERASED: &str = "[erased]";

/// One person of the scenario: their account, and every distinctive word they wrote (email
/// and display name included).
struct Person {
    user: TestUser,
    name: String,
    words: Vec<String>,
}

impl Person {
    async fn new(app: &TestApp, label: &str) -> Person {
        let (mail, name) = (word(), word());
        let email = format!("{mail}@example.com");
        let display = format!("{label} {name}");
        let user = app.user_named(&email, &display).await;
        Person {
            user,
            name: display,
            words: vec![mail, name],
        }
    }

    /// A text around a new word of this person's.
    fn text(&mut self, around: &str) -> String {
        let w = word();
        let text = around.replace("{}", &w);
        self.words.push(w);
        text
    }
}

struct Scenario {
    /// The person erased in each test.
    erin: Person,
    /// The person who stays, whose data must stay whole.
    kept: Person,
    admin: TestUser,
    auditor: TestUser,
    /// Erin's bounty (Kept applied, was accepted, submitted work, was rejected).
    erins_bounty: String,
    /// Kept's bounty (Erin applied).
    kepts_bounty: String,
    /// Erin's task (claimed by Erin, a heartbeat's note, failed for good).
    task: String,
    /// Kept's texts, each where it must still be shown.
    kepts_pitch: String,
    kepts_work: String,
    kepts_title: String,
}

async fn scenario(app: &TestApp) -> Scenario {
    let mut erin = Person::new(app, "Erin").await;
    let mut kept = Person::new(app, "Kept").await;
    let admin = app.admin().await;
    let auditor = app.auditor().await;
    app.deposit(&erin.user, 5_000, "USD").await;
    app.deposit(&kept.user, 5_000, "USD").await;
    let (title, description) = (erin.text("Fix {} soon"), erin.text("The {} parser"));
    let posted = send(
        app,
        &erin.user,
        "/v1/bounties",
        json!({"title": title, "description": description,
               "reward": {"amount": 1_000, "currency": "USD"}, "tags": ["erasure"]}),
    )
    .await;
    let erins_bounty = posted["id"].as_str().unwrap().to_owned();
    let (kepts_title, kepts_description) = (kept.text("Paint {} red"), kept.text("All {} walls"));
    let posted = send(
        app,
        &kept.user,
        "/v1/bounties",
        json!({"title": kepts_title, "description": kepts_description,
               "reward": {"amount": 700, "currency": "USD"}}),
    )
    .await;
    let kepts_bounty = posted["id"].as_str().unwrap().to_owned();
    app.settle().await;

    let kepts_pitch = kept.text("I know {} well");
    let applied = send(
        app,
        &kept.user,
        &format!("/v1/bounties/{erins_bounty}/applications"),
        json!({"pitch": kepts_pitch}),
    )
    .await;
    let pitch = erin.text("I can paint {}");
    send(
        app,
        &erin.user,
        &format!("/v1/bounties/{kepts_bounty}/applications"),
        json!({"pitch": pitch}),
    )
    .await;
    send(
        app,
        &erin.user,
        &format!("/v1/bounties/{erins_bounty}/accept"),
        json!({"application_id": applied["application_id"]}),
    )
    .await;
    let kepts_work = kept.text("Done: {} fixed");
    let link = kept.text("https://git.example.com/{}/pr/2");
    send(
        app,
        &kept.user,
        &format!("/v1/bounties/{erins_bounty}/submit"),
        json!({"deliverable": {"text": kepts_work, "link": link}}),
    )
    .await;
    let reason = erin.text("{} still fails");
    send(
        app,
        &erin.user,
        &format!("/v1/bounties/{erins_bounty}/reject"),
        json!({"reason": reason}),
    )
    .await;

    let (task_title, task_description) = (erin.text("Resize {}"), erin.text("Every {} image"));
    let created = send(
        app,
        &erin.user,
        "/v1/tasks",
        json!({"queue": "erasure-q", "title": task_title, "description": task_description,
               "max_attempts": 1}),
    )
    .await;
    let task = created["id"].as_str().unwrap().to_owned();
    app.wait_for_projection("tasks", created["position"].as_i64().unwrap())
        .await;
    let claimed = send(
        app,
        &erin.user,
        "/v1/queues/erasure-q/claim",
        json!({"lease_seconds": 60}),
    )
    .await;
    assert_eq!(claimed["id"], json!(task), "{claimed}");
    let note = erin.text("halfway through {}");
    send(
        app,
        &erin.user,
        &format!("/v1/tasks/{task}/heartbeat"),
        json!({"progress": 50, "note": note}),
    )
    .await;
    let error = erin.text("{} is corrupt");
    send(
        app,
        &erin.user,
        &format!("/v1/tasks/{task}/fail"),
        json!({"error": error, "retryable": false}),
    )
    .await;
    app.settle().await;
    Scenario {
        erin,
        kept,
        admin,
        auditor,
        erins_bounty,
        kepts_bounty,
        task,
        kepts_pitch,
        kepts_work,
        kepts_title,
    }
}

async fn delete_me(app: &TestApp, user: &TestUser, password: &str) -> reqwest::Response {
    app.client
        .delete(app.url("/v1/me"))
        .bearer_auth(&user.access_token)
        .json(&json!({"password": password}))
        .send()
        .await
        .unwrap()
}

/// The money history: every wallet entry and payment, as rows.
async fn money(app: &TestApp) -> Vec<Value> {
    sqlx::query_scalar(
        "SELECT to_jsonb(w) - 'position' FROM wallet_entries w \
         UNION ALL SELECT to_jsonb(p) - 'position' FROM payments p ORDER BY 1",
    )
    .fetch_all(&app.pool)
    .await
    .unwrap()
}

/// What the erasure left of the person in `users` and `person_keys`.
async fn account(app: &TestApp, id: Uuid) -> (String, String, bool, bool) {
    sqlx::query_as(
        "SELECT u.email, u.display_name, u.disabled_at IS NOT NULL, \
                coalesce(k.wrapped_key IS NULL AND k.erased_at IS NOT NULL, false) \
         FROM users u LEFT JOIN person_keys k ON k.user_id = u.id WHERE u.id = $1",
    )
    .bind(id)
    .fetch_one(&app.pool)
    .await
    .unwrap()
}

/// Erased in `users` and `person_keys`.
async fn assert_scrubbed(app: &TestApp, id: Uuid) {
    let live: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM refresh_tokens WHERE user_id = $1 AND revoked_at IS NULL",
    )
    .bind(id)
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!(live, 0, "every session is revoked");
    assert_eq!(
        account(app, id).await,
        (
            erasure::erased_email(id),
            "Erased user".to_owned(),
            true,
            true
        ),
        "the account is scrubbed and the key destroyed"
    );
}

/// Every answer that showed the erased person's texts shows "[erased]" instead, and the kept
/// person's texts as they wrote them; nothing shows any word of the erased person.
async fn assert_reads_forget(app: &TestApp, s: &Scenario) {
    let kept = &s.kept.user;
    let e = &s.erin.words;
    let erins = read(app, kept, &format!("/v1/bounties/{}", s.erins_bounty)).await;
    holds_none("Erin's bounty", &erins.to_string(), e);
    assert_eq!(erins["title"], ERASED, "{erins}");
    assert_eq!(erins["description"], ERASED, "{erins}");
    assert_eq!(erins["work"]["rejection_reason"], ERASED, "{erins}");
    assert_eq!(erins["work"]["deliverable_text"], json!(s.kepts_work));
    assert_eq!(erins["applications"][0]["pitch"], json!(s.kepts_pitch));
    let kepts = read(app, kept, &format!("/v1/bounties/{}", s.kepts_bounty)).await;
    holds_none("Kept's bounty", &kepts.to_string(), e);
    assert_eq!(kepts["title"], json!(s.kepts_title));
    assert_eq!(kepts["applications"][0]["pitch"], ERASED, "{kepts}");
    let board = read(app, kept, "/v1/bounties").await;
    holds_none("the board", &board.to_string(), e);
    assert!(board.to_string().contains(&s.kepts_title), "{board}");
    // The search finds Erin's bounty by none of her words any more.
    for w in e {
        let page = read(app, kept, &format!("/v1/bounties?q={w}")).await;
        assert_eq!(page["items"], json!([]), "search {w}: {page}");
    }
    let task = read(app, &s.admin, &format!("/v1/tasks/{}", s.task)).await;
    holds_none("the task", &task.to_string(), e);
    assert_eq!(task["title"], ERASED, "{task}");
    assert_eq!(task["last_error"], ERASED, "{task}");
    let tasks = read(app, &s.admin, "/v1/tasks").await;
    holds_none("the task list", &tasks.to_string(), e);
    let feed = read(app, kept, "/v1/notifications").await;
    holds_none("Kept's notifications", &feed.to_string(), e);
    assert!(feed.to_string().contains(ERASED), "{feed}");

    let auditor = &s.auditor;
    for path in [
        format!("/v1/audit/aggregates/Bounty/{}", s.erins_bounty),
        format!("/v1/audit/aggregates/Bounty/{}", s.kepts_bounty),
        format!("/v1/audit/aggregates/Task/{}", s.task),
        format!("/v1/audit/aggregates/Person/{}", s.erin.user.id),
    ] {
        let state = read(app, auditor, &path).await;
        holds_none(&path, &state.to_string(), e);
    }
    let ndjson = read_as(app, auditor, "/v1/audit/events", "application/x-ndjson").await;
    holds_none("the NDJSON export", &ndjson, e);
    for w in &s.kept.words[2..] {
        assert!(ndjson.contains(w.as_str()), "the export lacks Kept's {w}");
    }
    let page = read(app, auditor, "/v1/audit/events?limit=500").await;
    holds_none("the audit page", &page.to_string(), e);

    // A new subscriber, from the start of history: every event, none with Erin's words.
    let events: i64 = sqlx::query_scalar("SELECT count(*) FROM events")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    let mut stream = SseStream::open(app, auditor, "events", Some("0")).await;
    let messages = stream.next_messages(events as usize).await;
    let all = serde_json::to_string(&messages.iter().map(|m| &m.data).collect::<Vec<_>>()).unwrap();
    holds_none("the events stream", &all, e);
    assert!(
        all.contains("PersonErased"),
        "the stream carries the erasure"
    );
    let mut board = SseStream::open(app, kept, "bounties", Some("0")).await;
    let mut seen = String::new();
    while !seen.contains(&s.kepts_title) {
        seen.push_str(&board.next_message().await.data.to_string());
    }
    holds_none("the bounties stream", &seen, e);
}

/// The erased person cannot sign in, and the sessions they had are refused.
async fn assert_locked_out(app: &TestApp, erin: &TestUser) {
    let login = app.login(&erin.email, &erin.password).await;
    assert_eq!(login.status(), 401, "an erased person signs in no more");
    let placeholder = app
        .login(&erasure::erased_email(erin.id), &erin.password)
        .await;
    assert_eq!(placeholder.status(), 401);
    // Another process may have kept the session as live for up to `auth.session_cache_ms`.
    wait_until(
        Duration::from_secs(5),
        "the session to be refused",
        || async { app.get(erin, "/v1/me").await.status() == 401 },
    )
    .await;
    assert_eq!(app.refresh(&erin.refresh_token).await.status(), 401);
}

/// `audit verify` passes and every projection rebuilt from the store equals the live one.
async fn assert_history_verifies_and_rebuilds_alike(app: &TestApp, auditor: &TestUser) {
    let verified = read(app, auditor, "/v1/audit/verify").await;
    assert_eq!(verified["ok"], json!(true), "{verified}");
    assert_rebuilt_equals_live(app).await;
}

/// Every message of the test's JetStream stream, raw, and how many there are.
async fn jetstream_messages(app: &TestApp) -> (String, u64) {
    let js = app.jetstream().await;
    let names = bountyline::nats::Names::new(&app.settings.nats_prefix);
    let stream = js.get_stream(names.stream()).await.expect("stream");
    let state = stream.get_info().await.expect("stream info").state;
    let mut all = String::new();
    for seq in state.first_sequence..=state.last_sequence {
        let message = stream.get_raw_message(seq).await.expect("stream message");
        all.push_str(&message.subject);
        all.push_str(&String::from_utf8_lossy(&message.payload));
        all.push('\n');
    }
    (all, state.messages)
}

/// In-process logs, as the server writes them (the default filter, and debug for our crates),
/// into a file the test then greps.
fn capture_logs() -> std::path::PathBuf {
    let path = std::env::temp_dir().join(format!("bountyline-erasure-{}.log", Uuid::new_v4()));
    let file = std::fs::File::create(&path).expect("a log file");
    let filter = tracing_subscriber::EnvFilter::new(
        "info,bountyline=debug,bountyline_projections=debug,sqlx=warn,async_nats=warn",
    );
    tracing_subscriber::fmt()
        .json()
        .with_current_span(true)
        .with_env_filter(filter)
        .with_writer(std::sync::Mutex::new(file))
        .init();
    path
}

#[tokio::test]
async fn a_person_who_erases_themself_is_gone_from_every_answer_dump_stream_export_and_log() {
    let logs = capture_logs();
    let app = TestApp::spawn().await;
    let s = scenario(&app).await;
    let erin = &s.erin.user;
    let money_before = money(&app).await;
    let events_before = app.event_count().await;

    // A wrong password is refused as a sign-in would be, after the same work; nothing changes.
    let refused = delete_me(&app, erin, "not the password at all").await;
    assert_eq!(refused.status(), 403);
    assert!(refused.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("application/problem+json"));
    assert_eq!(app.event_count().await, events_before);
    let (email, name, disabled, erased) = account(&app, erin.id).await;
    assert_eq!(
        (email.as_str(), name.as_str()),
        (erin.email.as_str(), s.erin.name.as_str())
    );
    assert!(!disabled && !erased);
    let title = read(
        &app,
        &s.kept.user,
        &format!("/v1/bounties/{}", s.erins_bounty),
    )
    .await;
    assert_ne!(title["title"], ERASED);

    let erased = delete_me(&app, erin, &erin.password).await;
    assert_eq!(erased.status(), 200);
    let answer: Value = erased.json().await.unwrap();
    // Everything Erin wrote was sealed: no text of hers stays stored readable.
    assert_eq!(answer, json!({"person": erin.id, "legacy_texts": 0}));
    // At once, though this process had just opened her key: it forgot it.
    let title = read(
        &app,
        &s.kept.user,
        &format!("/v1/bounties/{}", s.erins_bounty),
    )
    .await;
    assert_eq!(title["title"], ERASED, "{title}");
    assert_scrubbed(&app, erin.id).await;
    app.settle().await;

    // The person's own stream says who was erased, by whom, when.
    let stream: Vec<(String, String, Value)> = sqlx::query_as(
        "SELECT aggregate_type, event_type, payload FROM events \
         WHERE aggregate_id = $1 AND aggregate_type <> 'Wallet'",
    )
    .bind(erin.id.to_string())
    .fetch_all(&app.pool)
    .await
    .unwrap();
    assert_eq!(stream.len(), 1, "{stream:?}");
    let (aggregate, event_type, payload) = &stream[0];
    assert_eq!(
        (aggregate.as_str(), event_type.as_str()),
        ("Person", "PersonErased")
    );
    let body = &payload["PersonErased"];
    assert_eq!(body["person"], json!(erin.id));
    assert_eq!(body["by"], json!(erin.id));
    let at: chrono::DateTime<chrono::Utc> = serde_json::from_value(body["at"].clone()).unwrap();
    assert!((chrono::Utc::now() - at).num_seconds() < 120, "{body}");

    assert_reads_forget(&app, &s).await;
    assert_locked_out(&app, erin).await;
    assert_eq!(money(&app).await, money_before, "money keeps its history");
    assert_history_verifies_and_rebuilds_alike(&app, &s.auditor).await;

    let dump = pg_dump(&app);
    assert!(
        dump.contains(&s.kept.user.email),
        "the dump holds the kept person's email: the grep sees the users table"
    );
    holds_none("the pg_dump", &dump, &s.erin.words);
    let (messages, count) = jetstream_messages(&app).await;
    assert_eq!(
        count as i64,
        app.event_count().await,
        "every message was read"
    );
    holds_none("the JetStream stream", &messages, &s.erin.words);

    let log = std::fs::read_to_string(&logs).expect("the log");
    assert!(
        log.contains("person erased") && log.contains(&erin.id.to_string()),
        "the log file holds the server's logs"
    );
    let _ = std::fs::remove_file(&logs);
    holds_none("the logs", &log, &s.erin.words);
}

#[tokio::test]
async fn an_admin_erases_another_person_but_not_themself_and_a_second_erasure_changes_nothing() {
    let app = TestApp::spawn().await;
    let s = scenario(&app).await;
    let erin = &s.erin.user;
    let money_before = money(&app).await;

    let own = admin_erase(&app, &s.admin, s.admin.id).await;
    assert_eq!(
        own.status(),
        403,
        "an admin erases themself with DELETE /v1/me"
    );
    let member = admin_erase(&app, &s.kept.user, erin.id).await;
    assert_eq!(member.status(), 403, "only an admin erases another person");
    assert_eq!(
        admin_erase(&app, &s.admin, Uuid::new_v4()).await.status(),
        404
    );
    let people: i64 =
        sqlx::query_scalar("SELECT count(*) FROM events WHERE aggregate_type = 'Person'")
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert_eq!(people, 0, "no refusal appended anything");

    let first = admin_erase(&app, &s.admin, erin.id).await;
    assert_eq!(first.status(), 200);
    let first: Value = first.json().await.unwrap();
    assert_eq!(first, json!({"person": erin.id, "legacy_texts": 0}));
    assert_scrubbed(&app, erin.id).await;
    let events = app.event_count().await;
    let second = admin_erase(&app, &s.admin, erin.id).await;
    assert_eq!(second.status(), 200);
    assert_eq!(
        second.json::<Value>().await.unwrap(),
        first,
        "a second erasure answers as the first"
    );
    assert_eq!(app.event_count().await, events, "and appends nothing");
    let by: Vec<Value> = sqlx::query_scalar(
        "SELECT payload->'PersonErased'->'by' FROM events \
         WHERE aggregate_id = $1 AND aggregate_type = 'Person'",
    )
    .bind(erin.id.to_string())
    .fetch_all(&app.pool)
    .await
    .unwrap();
    assert_eq!(by, vec![json!(s.admin.id)], "the event names the admin");
    app.settle().await;

    assert_reads_forget(&app, &s).await;
    assert_locked_out(&app, erin).await;
    assert_eq!(money(&app).await, money_before);
    assert_history_verifies_and_rebuilds_alike(&app, &s.auditor).await;
    let dump = pg_dump(&app);
    assert!(dump.contains(&s.kept.user.email));
    holds_none("the pg_dump", &dump, &s.erin.words);
    // The kept person signs in as before.
    let kept = &s.kept.user;
    assert_eq!(app.login(&kept.email, &kept.password).await.status(), 200);
}

#[tokio::test]
async fn an_erasure_appended_but_never_scrubbed_is_finished_by_the_process_managers() {
    let app = TestApp::spawn().await;
    let s = scenario(&app).await;
    let erin = &s.erin.user;
    // Someone who never wrote a text has no key: the erasure leaves a row saying so.
    let quiet = app.user("quiet").await;

    // What a process that died right after the append left: the event, and nothing else.
    let bus = CommandBus::new(app.pool.clone());
    let admin = Actor::new(s.admin.id, vec![Role::Member, Role::Admin]);
    for person in [erin.id, quiet.id] {
        let command = PersonCommand::Erase {
            person,
            actor: admin.clone(),
            at: chrono::Utc::now(),
        };
        let ctx = CommandContext::http(admin.clone(), "erasure-crash", None);
        bus.person(person, command, &ctx).await.unwrap();
    }
    for person in [erin.id, quiet.id] {
        wait_until(
            Duration::from_secs(20),
            "the process managers to finish the erasure",
            || async { erasure::done(&app.pool, person).await.unwrap() },
        )
        .await;
        assert_scrubbed(&app, person).await;
    }
    app.settle().await;
    // The API did not erase: it keeps opened keys for up to `privacy.key_cache_ms`.
    let path = format!("/v1/bounties/{}", s.erins_bounty);
    wait_until(
        Duration::from_secs(5),
        "the title to read [erased]",
        || async { read(&app, &s.kept.user, &path).await["title"] == ERASED },
    )
    .await;
    assert_reads_forget(&app, &s).await;
    assert_locked_out(&app, erin).await;
    assert_history_verifies_and_rebuilds_alike(&app, &s.auditor).await;
}
