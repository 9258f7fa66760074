//! People's texts sealed under keys of their own (ADR 7, step 1): every text a client sent
//! comes back as sent in every answer that carries it (reads, streams, the audit export and
//! state, a replayed claim) and the board finds a bounty by its words; the database holds none
//! of them (a `pg_dump`), the events only sealed strings, and history still verifies and
//! rebuilds alike; a sealed string moved elsewhere or altered answers "[erased]", never a 500;
//! two first seals for one person at once make one key.

mod common;

use bountyline::privacy::{legacy, Keyring, Opener, Scope};
use common::sse::SseStream;
use common::texts::{assert_rebuilt_equals_live, pg_dump, read, read_as, send, word};
use common::*;
use secrecy::ExposeSecret;
use serde_json::{json, Value};
use std::collections::HashSet;
use uuid::Uuid;

const SEALED: &str = "\u{1}bl1:";

/// What the scenario's clients wrote, each text around a word of its own.
struct Texts {
    title: String,
    description: String,
    pitch: String,
    text: String,
    link: String,
    rejection: String,
    dispute: String,
    task_title: String,
    task_description: String,
    note: String,
    error: String,
    words: Vec<String>,
}

impl Texts {
    fn new() -> Self {
        let words: Vec<String> = (0..11).map(|_| word()).collect();
        let w = |i: usize| words[i].clone();
        Texts {
            title: format!("Fix {} before Friday", w(0)),
            description: format!("The {} parser\nfails on tabs.", w(1)),
            pitch: format!("I fixed {} last year", w(2)),
            text: format!("Done: {} is gone", w(3)),
            link: format!("https://git.example.com/{}/pr/1", w(4)),
            rejection: format!("{} still fails", w(5)),
            dispute: format!("The {} was never asked for", w(6)),
            task_title: format!("Resize {}", w(7)),
            task_description: format!("Every {} image", w(8)),
            note: format!("halfway through {}", w(9)),
            error: format!("{} is corrupt", w(10)),
            words,
        }
    }

    fn bounty(&self) -> Vec<&str> {
        vec![
            &self.title,
            &self.description,
            &self.pitch,
            &self.text,
            &self.link,
            &self.rejection,
            &self.dispute,
        ]
    }

    fn task(&self) -> Vec<&str> {
        vec![
            &self.task_title,
            &self.task_description,
            &self.note,
            &self.error,
        ]
    }

    fn all(&self) -> Vec<&str> {
        let mut all = self.bounty();
        all.extend(self.task());
        all
    }
}

struct Scenario {
    texts: Texts,
    poster: TestUser,
    hunter: TestUser,
    worker: TestUser,
    auditor: TestUser,
    bounty: String,
    task: String,
    /// The claim's answer, and the same claim's answer when retried under its key.
    claimed: Value,
    replayed: Value,
}

async fn claim(app: &TestApp, user: &TestUser, key: &str) -> Value {
    let res = app
        .client
        .post(app.url("/v1/queues/privacy-q/claim"))
        .bearer_auth(&user.access_token)
        .header("Idempotency-Key", key)
        .json(&json!({"lease_seconds": 60}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200, "claim");
    res.json().await.unwrap()
}

/// A bounty taken through application, submission, rejection and dispute, and a task claimed
/// (twice under one key), heartbeated and failed for good; then settled.
async fn scenario(app: &TestApp) -> Scenario {
    let texts = Texts::new();
    let (poster, hunter, worker) = (
        app.user("poster").await,
        app.user("hunter").await,
        app.user("worker").await,
    );
    let auditor = app.auditor().await;
    app.deposit(&poster, 5_000, "USD").await;
    let posted = send(
        app,
        &poster,
        "/v1/bounties",
        json!({"title": texts.title, "description": texts.description,
               "reward": {"amount": 1_000, "currency": "USD"}, "tags": ["privacy"]}),
    )
    .await;
    let bounty = posted["id"].as_str().unwrap().to_owned();
    app.settle().await;
    let path = |action: &str| format!("/v1/bounties/{bounty}/{action}");
    let applied = send(
        app,
        &hunter,
        &path("applications"),
        json!({"pitch": texts.pitch}),
    )
    .await;
    let application = applied["application_id"].clone();
    send(
        app,
        &poster,
        &path("accept"),
        json!({"application_id": application}),
    )
    .await;
    send(
        app,
        &hunter,
        &path("submit"),
        json!({"deliverable": {"text": texts.text, "link": texts.link}}),
    )
    .await;
    send(
        app,
        &poster,
        &path("reject"),
        json!({"reason": texts.rejection}),
    )
    .await;
    send(
        app,
        &hunter,
        &path("dispute"),
        json!({"reason": texts.dispute}),
    )
    .await;

    let created = send(
        app,
        &worker,
        "/v1/tasks",
        json!({"queue": "privacy-q", "title": texts.task_title,
               "description": texts.task_description, "max_attempts": 1}),
    )
    .await;
    let task = created["id"].as_str().unwrap().to_owned();
    app.wait_for_projection("tasks", created["position"].as_i64().unwrap())
        .await;
    let claimed = claim(app, &worker, "privacy-claim").await;
    let replayed = claim(app, &worker, "privacy-claim").await;
    send(
        app,
        &worker,
        &format!("/v1/tasks/{task}/heartbeat"),
        json!({"progress": 50, "note": texts.note}),
    )
    .await;
    send(
        app,
        &worker,
        &format!("/v1/tasks/{task}/fail"),
        json!({"error": texts.error, "retryable": false}),
    )
    .await;
    app.settle().await;
    Scenario {
        texts,
        poster,
        hunter,
        worker,
        auditor,
        bounty,
        task,
        claimed,
        replayed,
    }
}

/// Every string in `value`.
fn strings(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::String(s) => out.push(s.clone()),
        Value::Array(items) => items.iter().for_each(|v| strings(v, out)),
        Value::Object(map) => map.values().for_each(|v| strings(v, out)),
        _ => {}
    }
}

/// `value` shows each of `expected` as a whole string, and no sealed string.
fn shows(what: &str, value: &Value, expected: &[&str]) {
    let mut found = Vec::new();
    strings(value, &mut found);
    for s in &found {
        assert!(
            !s.starts_with(SEALED),
            "{what} shows a sealed string: {value}"
        );
        assert_ne!(s, "[erased]", "{what} shows an erased text: {value}");
    }
    for text in expected {
        assert!(
            found.iter().any(|s| s == text),
            "{what} does not show {text:?}: {value}"
        );
    }
}

/// The stream `topic` from the start of history shows every one of `expected`, and no sealed
/// string on the way.
async fn stream_shows(app: &TestApp, user: &TestUser, topic: &str, expected: &[&str]) {
    let mut stream = SseStream::open(app, user, topic, Some("0")).await;
    let mut seen: HashSet<String> = HashSet::new();
    while !expected.iter().all(|t| seen.contains(*t)) {
        let message = stream.next_message().await;
        shows(&format!("the {topic} stream"), &message.data, &[]);
        let mut found = Vec::new();
        strings(&message.data, &mut found);
        seen.extend(found);
    }
}

#[tokio::test]
async fn every_text_a_client_sent_comes_back_as_sent_wherever_it_is_shown() {
    let app = TestApp::spawn().await;
    let s = scenario(&app).await;
    let t = &s.texts;

    // Reads.
    let detail = read(&app, &s.poster, &format!("/v1/bounties/{}", s.bounty)).await;
    shows("the bounty's detail", &detail, &t.bounty());
    assert_eq!(detail["title"], json!(t.title));
    assert_eq!(detail["work"]["deliverable_link"], json!(t.link));
    assert_eq!(detail["work"]["rejection_reason"], json!(t.rejection));
    assert_eq!(detail["work"]["dispute_reason"], json!(t.dispute));
    assert_eq!(detail["applications"][0]["pitch"], json!(t.pitch));
    let hunters = read(&app, &s.hunter, &format!("/v1/bounties/{}", s.bounty)).await;
    shows("the hunter's detail", &hunters, &[&t.pitch, &t.text]);
    let board = read(&app, &s.hunter, "/v1/bounties?poster=me").await;
    shows("the board", &board, &[]);
    let mine = read(&app, &s.poster, "/v1/bounties?poster=me").await;
    shows("my bounties", &mine, &[&t.title, &t.description]);
    // Search finds the bounty by a word of its title or of its description, and by no word
    // that is not indexed (a pitch).
    for (i, found) in [(0, true), (1, true), (2, false)] {
        let page = read(&app, &s.hunter, &format!("/v1/bounties?q={}", t.words[i])).await;
        let ids: Vec<&str> = page["items"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|b| b["id"].as_str())
            .collect();
        assert_eq!(ids == [s.bounty.as_str()], found, "search {i}: {page}");
    }
    let task = read(&app, &s.worker, &format!("/v1/tasks/{}", s.task)).await;
    shows("the task", &task, &t.task());
    assert_eq!(task["last_error"], json!(t.error));
    let tasks = read(&app, &s.worker, "/v1/tasks").await;
    shows("the task list", &tasks, &t.task());
    shows(
        "a claim's answer",
        &s.claimed,
        &[&t.task_title, &t.task_description],
    );
    shows("a replayed claim's answer", &s.replayed, &[&t.task_title]);
    assert_eq!(s.claimed, s.replayed);
    let poster_feed = read(&app, &s.poster, "/v1/notifications").await;
    shows(
        "the poster's notifications",
        &poster_feed,
        &[&t.title, &t.dispute],
    );
    let hunter_feed = read(&app, &s.hunter, "/v1/notifications").await;
    shows(
        "the hunter's notifications",
        &hunter_feed,
        &[&t.title, &t.rejection],
    );
    let worker_feed = read(&app, &s.worker, "/v1/notifications").await;
    shows(
        "the worker's notifications",
        &worker_feed,
        &[&t.task_title, &t.error],
    );

    // The audit: paged JSON, NDJSON and CSV, states.
    let auditor = &s.auditor;
    let page = read(
        &app,
        auditor,
        &format!("/v1/audit/events?aggregate_id={}&limit=200", s.bounty),
    )
    .await;
    shows("the audit page", &page, &t.bounty());
    let page = read(
        &app,
        auditor,
        &format!("/v1/audit/events?aggregate_id={}&limit=200", s.task),
    )
    .await;
    shows("the audit page", &page, &t.task());
    let ndjson = read_as(&app, auditor, "/v1/audit/events", "application/x-ndjson").await;
    let lines: Vec<Value> = ndjson
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    shows("the NDJSON export", &Value::Array(lines), &t.all());
    let csv = read_as(&app, auditor, "/v1/audit/events", "text/csv").await;
    assert!(
        !csv.contains("\\u0001"),
        "the CSV export holds a sealed string"
    );
    for text in t.all() {
        let escaped = serde_json::to_string(text).unwrap().replace('"', "\"\"");
        assert!(csv.contains(&escaped), "the CSV export lacks {text:?}");
    }
    for path in [
        format!("/v1/audit/aggregates/Bounty/{}", s.bounty),
        format!("/v1/audit/aggregates/Task/{}", s.task),
    ] {
        shows(
            "an aggregate's state",
            &read(&app, auditor, &path).await,
            &[],
        );
    }

    // The streams, from the start of history.
    stream_shows(&app, auditor, "events", &t.all()).await;
    stream_shows(&app, &s.hunter, "bounties", &[&t.title]).await;
    stream_shows(&app, &s.poster, "me", &t.bounty()).await;
    stream_shows(&app, &s.worker, "me", &[&t.task_title]).await;
}

#[tokio::test]
async fn the_database_holds_no_text_a_client_sent_and_the_events_hold_sealed_strings() {
    let app = TestApp::spawn().await;
    let s = scenario(&app).await;
    let dump = pg_dump(&app);
    assert!(dump.contains("person_keys"), "the dump holds the keyring");
    for word in &s.texts.words {
        assert!(!dump.contains(word.as_str()), "the dump holds {word}");
    }

    // Each text in the events is sealed under its author's key (the event's actor), in just
    // the fields the list of personal texts names: what an erasure of someone who wrote before
    // sealing looks for (`privacy::legacy`).
    let events: Vec<(String, String, Value, Value)> = sqlx::query_as(
        "SELECT aggregate_type, event_type, payload, metadata FROM events \
         WHERE aggregate_id = $1 OR aggregate_id = $2",
    )
    .bind(&s.bounty)
    .bind(&s.task)
    .fetch_all(&app.pool)
    .await
    .unwrap();
    let mut sealed = 0;
    let mut listed_seen = HashSet::new();
    for (aggregate_type, event_type, payload, metadata) in &events {
        let listed = legacy::personal_fields(aggregate_type, event_type);
        let body = payload[event_type.as_str()].as_object().unwrap();
        for (field, value) in body {
            let Some(text) = value.as_str() else { continue };
            if !text.starts_with(SEALED) {
                assert!(
                    !listed.contains(&field.as_str()),
                    "{event_type}.{field} is listed as a person's text but stored plain"
                );
                continue;
            }
            assert!(
                listed.contains(&field.as_str()),
                "{event_type}.{field} is sealed but not in privacy::legacy::PERSONAL_TEXTS"
            );
            let author = metadata["actor"].as_str().unwrap();
            assert!(
                text.starts_with(&format!("{SEALED}{author}:")),
                "{field} is not sealed under its author's key: {payload}"
            );
            listed_seen.insert((event_type.clone(), field.clone()));
            sealed += 1;
        }
    }
    assert_eq!(sealed, s.texts.all().len(), "every text was found sealed");
    for (_, event_type, fields) in legacy::PERSONAL_TEXTS {
        for field in *fields {
            assert!(
                listed_seen.contains(&(event_type.to_string(), field.to_string())),
                "the scenario wrote no {event_type}.{field}"
            );
        }
    }
}

#[tokio::test]
async fn sealed_history_verifies_and_every_projection_rebuilt_equals_the_live_one() {
    let app = TestApp::spawn().await;
    let s = scenario(&app).await;
    let verified = read(&app, &s.auditor, "/v1/audit/verify").await;
    assert_eq!(verified["ok"], json!(true), "{verified}");
    assert_rebuilt_equals_live(&app).await;
    let searchable: i64 =
        sqlx::query_scalar("SELECT count(*) FROM bounties WHERE search <> ''::tsvector")
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert_eq!(searchable, 1, "the bounty's words are indexed");
}

async fn bounty_title(app: &TestApp, user: &TestUser, id: &str) -> (String, String) {
    let detail = read(app, user, &format!("/v1/bounties/{id}")).await;
    let text = |f: &str| detail[f].as_str().unwrap().to_owned();
    (text("title"), text("description"))
}

#[tokio::test]
async fn a_sealed_text_moved_elsewhere_or_altered_answers_erased_and_nothing_fails() {
    let app = TestApp::spawn().await;
    let poster = app.user("poster").await;
    app.deposit(&poster, 5_000, "USD").await;
    let mut ids = Vec::new();
    for title in ["first", "second", "third", "fourth"] {
        let posted = send(
            &app,
            &poster,
            "/v1/bounties",
            json!({"title": title, "description": format!("{title} words"),
                   "reward": {"amount": 100, "currency": "USD"}}),
        )
        .await;
        ids.push(posted["id"].as_str().unwrap().to_owned());
    }
    app.settle().await;
    let set = |column: &'static str, id: &str, value: String| {
        let (pool, id) = (app.pool.clone(), Uuid::parse_str(id).unwrap());
        async move {
            sqlx::query(&format!("UPDATE bounties SET {column} = $2 WHERE id = $1"))
                .bind(id)
                .bind(value)
                .execute(&pool)
                .await
                .unwrap();
        }
    };
    let stored = |column: &'static str, id: &str| {
        let (pool, id) = (app.pool.clone(), Uuid::parse_str(id).unwrap());
        async move {
            sqlx::query_scalar::<_, String>(&format!("SELECT {column} FROM bounties WHERE id = $1"))
                .bind(id)
                .fetch_one(&pool)
                .await
                .unwrap()
        }
    };
    assert_eq!(
        bounty_title(&app, &poster, &ids[0]).await,
        ("first".into(), "first words".into())
    );

    // Into another field of the same bounty.
    set("description", &ids[0], stored("title", &ids[0]).await).await;
    assert_eq!(
        bounty_title(&app, &poster, &ids[0]).await,
        ("first".into(), "[erased]".into())
    );
    // Into the same field of another bounty.
    set("title", &ids[1], stored("title", &ids[2]).await).await;
    assert_eq!(bounty_title(&app, &poster, &ids[1]).await.0, "[erased]");
    assert_eq!(bounty_title(&app, &poster, &ids[2]).await.0, "third");
    // Altered: one character of the seal, then the author's id, then the form itself.
    let sealed = stored("title", &ids[3]).await;
    let mut altered = sealed.clone();
    let last = altered.pop().unwrap();
    altered.push(if last == 'A' { 'B' } else { 'A' });
    for bad in [
        altered,
        sealed.replace(&poster.id.to_string(), &Uuid::new_v4().to_string()),
        format!("{SEALED}{}:", poster.id),
        format!("{SEALED}not-a-person:AAAA"),
    ] {
        set("title", &ids[3], bad).await;
        assert_eq!(bounty_title(&app, &poster, &ids[3]).await.0, "[erased]");
    }
}

#[tokio::test]
async fn two_first_seals_for_one_new_person_at_once_make_one_key() {
    let app = TestApp::spawn().await;
    let mut people = Vec::new();
    for i in 0..8 {
        people.push(app.user(&format!("person{i}")).await.id);
    }
    // Two processes: each its own pool and its own memory of keys.
    let process = || async {
        let pool = sqlx::PgPool::connect(app.settings.database_url.expose_secret())
            .await
            .unwrap();
        Keyring::new(pool, &app.settings).unwrap()
    };
    let (one, two) = (process().await, process().await);
    let aggregate = Uuid::new_v4();
    for person in &people {
        let (a, b) = tokio::join!(one.sealer(*person), two.sealer(*person));
        let (a, b) = (a.unwrap(), b.unwrap());
        let sealed_by = |sealer: &bountyline::privacy::Sealer, text: &str| json!({"id": aggregate, "title": sealer.seal(aggregate, "title", text).unwrap()});
        // What either process sealed, the other opens.
        for (sealer, other) in [(&a, &two), (&b, &one)] {
            let mut answer = sealed_by(sealer, "the same key");
            Opener::new(other.clone())
                .open(&mut answer, Scope::Tasks)
                .await
                .unwrap();
            assert_eq!(answer["title"], "the same key", "person {person}");
        }
    }
    let keys: i64 = sqlx::query_scalar("SELECT count(*) FROM person_keys WHERE user_id = ANY($1)")
        .bind(&people)
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(keys, people.len() as i64);
}

#[tokio::test]
async fn a_missing_or_malformed_privacy_key_is_refused_at_start() {
    let db = fresh_database().await;
    for (key, says) in [
        ("", "is not set"),
        ("not base64!", "is not base64"),
        ("c2hvcnQ=", "is 5 bytes, not 32"),
    ] {
        let mut settings = test_settings(&db, &std::env::var("NATS_URL").unwrap());
        settings.privacy.key = key.to_owned().into();
        let refused =
            bountyline::startup::Application::build(settings, bountyline::startup::Parts::ALL)
                .await
                .err()
                .expect("refused without a good key");
        let message = refused.to_string();
        assert!(
            message.contains("privacy.key") && message.contains(says),
            "{message}"
        );
    }
}
