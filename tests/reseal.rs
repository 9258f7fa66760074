//! The re-seal (ADR 7, step 3): `bountyline privacy reseal`, run as an operator runs it beside
//! a live server, seals every text written before sealing in place. Afterwards no word of them
//! is in a `pg_dump` or the JetStream stream; a living author's texts still read as written and
//! are found by search, an erased author's read "[erased]"; every chain verifies; an auditor's
//! heads exported before are answered as resealed in the epoch the `ChainResealed` event
//! records, whose digest binds the recorded links; appends go on and the store is append-only
//! again; the read models rebuilt equal the live ones.

mod common;

use common::texts::{
    admin_erase, append_old_application, append_old_bounty, append_old_task,
    assert_rebuilt_equals_live, holds_none, pg_dump, read, send, word,
};
use common::*;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use uuid::Uuid;

const ERASED: &str = "[erased]";

/// Runs `bountyline privacy reseal` on the test's store and answers its JSON report.
fn reseal(app: &TestApp) -> Value {
    let out = bountyline_command(
        std::path::Path::new(env!("CARGO_BIN_EXE_bountyline")),
        "privacy",
        &app.settings,
        0,
    )
    .arg("reseal")
    .output()
    .expect("run bountyline privacy reseal");
    assert!(
        out.status.success(),
        "reseal failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("a JSON report")
}

/// Every message of the test's JetStream stream, raw.
async fn jetstream_text(app: &TestApp) -> String {
    let js = app.jetstream().await;
    let names = bountyline::nats::Names::new(&app.settings.nats_prefix);
    let mut stream = js.get_stream(names.stream()).await.expect("stream");
    let state = stream.info().await.expect("stream info").state.clone();
    let mut all = String::new();
    for seq in state.first_sequence..=state.last_sequence {
        // A deleted message leaves its sequence empty.
        if let Ok(message) = stream.get_raw_message(seq).await {
            all.push_str(&String::from_utf8_lossy(&message.payload));
            all.push('\n');
        }
    }
    all
}

/// One row of `resealed_links`: stream, sequence, old and new hash.
type Link = (String, String, i64, Vec<u8>, Vec<u8>);

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[tokio::test]
async fn a_reseal_takes_old_plain_texts_out_of_the_store_and_stream_and_history_still_verifies() {
    let app = TestApp::spawn().await;
    let kara = app.user("kara").await;
    let erin = app.user("erin").await;
    let (admin, auditor) = (app.admin().await, app.auditor().await);
    app.deposit(&kara, 5_000, "USD").await;
    let w: Vec<String> = (0..5).map(|_| word()).collect();
    let karas = [format!("Fix {} soon", w[0]), format!("The {} parser", w[1])];
    let erins = [
        format!("I can fix {}", w[2]),
        format!("Resize {}", w[3]),
        format!("Every {} image", w[4]),
    ];

    // As the release before sealing stored them: Kara's bounty, Erin's pitch for it, Erin's
    // task.
    let bounty = Uuid::new_v4().to_string();
    append_old_bounty(&app, &bounty, &kara, &karas[0], &karas[1]).await;
    app.settle().await;
    append_old_application(&app, &bounty, &erin, &kara, &erins[0]).await;
    let task = Uuid::new_v4().to_string();
    append_old_task(&app, &task, &erin, &erins[1], &erins[2]).await;
    app.settle().await;
    let heads_before = read(&app, &auditor, "/v1/audit/heads").await;
    let erased: Value = admin_erase(&app, &admin, erin.id)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(erased["legacy_texts"], 3, "{erased}");
    app.settle().await;
    assert!(
        pg_dump(&app).contains(&w[0]),
        "the old texts are stored plain"
    );

    let report = reseal(&app);
    assert_eq!(report["texts"], 5, "{report}");
    assert_eq!(report["events"], 3, "{report}");
    assert_eq!(report["streams"], 2, "{report}");
    assert_eq!(report["unattributed"], 0, "{report}");
    assert_eq!(report["jetstream_deleted"], 3, "{report}");
    let epoch = report["epoch"].as_str().expect("an epoch").to_owned();
    app.settle().await;

    // No word of the old texts is stored anywhere any more.
    let dump = pg_dump(&app);
    holds_none("the dump", &dump, &w);
    holds_none("the JetStream stream", &jetstream_text(&app).await, &w);

    // Kara's texts, sealed under her key, read as she wrote them and are found; Erin's are
    // gone for good.
    let view = read(&app, &kara, &format!("/v1/bounties/{bounty}")).await;
    assert_eq!(view["title"], json!(karas[0]), "{view}");
    assert_eq!(view["description"], json!(karas[1]), "{view}");
    assert_eq!(view["applications"][0]["pitch"], ERASED, "{view}");
    let found = read(&app, &kara, &format!("/v1/bounties?q={}", w[0])).await;
    assert_eq!(found["items"][0]["id"], json!(bounty), "{found}");
    let task_view = read(&app, &admin, &format!("/v1/tasks/{task}")).await;
    assert_eq!(task_view["title"], ERASED, "{task_view}");
    let events = read(&app, &auditor, "/v1/audit/events?limit=500").await;
    holds_none("the audit page", &events.to_string(), &w[2..]);
    assert!(events.to_string().contains(&karas[0]), "{events}");
    let again: Value = admin_erase(&app, &admin, erin.id)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(again["legacy_texts"], 0, "nothing of Erin's is left plain");
    let recorded: i64 = sqlx::query_scalar("SELECT count(*) FROM erased_texts")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(recorded, 0, "the records of her plain texts went with them");

    // History: every chain verifies; the old heads are answered as resealed in the epoch.
    let verified = read(&app, &auditor, "/v1/audit/verify").await;
    assert_eq!(verified["ok"], json!(true), "{verified}");
    let check = app
        .post(&auditor, "/v1/audit/heads/check", &heads_before)
        .await;
    assert_eq!(check.status(), 200);
    let check: Value = check.json().await.unwrap();
    assert_eq!(check["ok"], json!(true), "{check}");
    assert_eq!(check["problems"], json!([]), "{check}");
    let resealed = check["resealed"].as_array().expect("resealed heads");
    assert_eq!(
        resealed.len(),
        2,
        "the bounty's and the task's heads: {check}"
    );
    assert!(
        resealed.iter().all(|h| h["epoch"] == json!(epoch)),
        "{check}"
    );

    // The epoch's event counts the links and binds them by its digest.
    let (payload,): (Value,) = sqlx::query_as(
        "SELECT payload FROM events WHERE aggregate_type = 'Epoch' AND aggregate_id = $1",
    )
    .bind(&epoch)
    .fetch_one(&app.pool)
    .await
    .expect("the ChainResealed event");
    let recorded = &payload["ChainResealed"];
    let links: Vec<Link> = sqlx::query_as(
        "SELECT aggregate_type, aggregate_id, sequence, old_hash, new_hash FROM resealed_links \
         WHERE epoch = $1::uuid ORDER BY aggregate_type, aggregate_id, sequence",
    )
    .bind(&epoch)
    .fetch_all(&app.pool)
    .await
    .unwrap();
    assert_eq!(recorded["links"], json!(links.len()), "{recorded}");
    let mut digest = Sha256::new();
    for (t, i, s, old, new) in &links {
        digest.update(format!("{t}\0{i}\0{s}\0{}\0{}\n", hex(old), hex(new)));
    }
    assert_eq!(recorded["links_digest"], json!(hex(&digest.finalize())));
    assert_eq!(recorded["texts"], 5);

    // The store takes appends again, and refuses changes again.
    let posted = send(
        &app,
        &kara,
        "/v1/bounties",
        json!({"title": "After the reseal", "description": "new",
               "reward": {"amount": 100, "currency": "USD"}}),
    )
    .await;
    assert!(posted["id"].is_string(), "{posted}");
    let update = sqlx::query("UPDATE events SET payload = payload WHERE position = 1")
        .execute(&app.pool)
        .await;
    assert!(update.is_err(), "the store is append-only again");
    assert_eq!(
        reseal(&app)["epoch"],
        Value::Null,
        "a second reseal finds nothing"
    );

    app.settle().await;
    let parked: i64 = sqlx::query_scalar("SELECT count(*) FROM parked_events")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(parked, 0, "no worker parked the epoch's event");
    assert_rebuilt_equals_live(&app).await;
}
