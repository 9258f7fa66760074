//! Event schemas that evolve (docs/adr/0006-event-schemas-that-evolve.md): an event stored at
//! an older version of its type, as a deployment from before the change wrote it, is read in
//! its current form by every reader (the aggregate, the projections live and rebuilt, the
//! audit state), while the store keeps it exactly as written, so `audit verify` still passes
//! and the audit export shows what was recorded.

mod common;

use bountyline_projections::rebuild::{build_shadow, diff};
use common::TestApp;
use serde_json::{json, Value};

/// The stored form, version and hash of one wallet event.
async fn stored(app: &TestApp, owner: &str, sequence: i64) -> (String, String, Value, Vec<u8>) {
    sqlx::query_as(
        "SELECT payload::text, event_version, payload, hash FROM events \
         WHERE aggregate_type = 'Wallet' AND aggregate_id = $1 AND sequence = $2",
    )
    .bind(owner)
    .bind(sequence)
    .fetch_one(&app.pool)
    .await
    .expect("a stored wallet event")
}

#[tokio::test]
async fn a_credit_stored_before_credits_had_ids_is_read_by_every_reader_and_still_verifies() {
    let app = TestApp::spawn().await;
    let (owner, admin, auditor) = (
        app.user("owner").await,
        app.admin().await,
        app.auditor().await,
    );
    let id = owner.id.to_string();
    app.deposit(&owner, 1_000, "USD").await;

    // An admin's credit as the release before credits had ids (commit 15c3d80) appended it:
    // `WalletCredited` at version 1, without `credit_id`, which the current type requires.
    let v1 = json!({"WalletCredited": {
        "owner": owner.id,
        "currency": "USD",
        "amount": 250,
        "reason": "goodwill from the old release",
        "credited_by": admin.id,
        "available": 1250,
        "held": 0,
        "at": "2026-11-01T12:00:00Z",
    }});
    let metadata = json!({
        "actor": admin.id.to_string(),
        "command": "CreditWallet",
        "request_id": "old-release",
        "correlation_id": "old-release",
        "causation_id": "old-release",
    });
    sqlx::query(
        "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, \
         payload, metadata) VALUES ('Wallet', $1, 2, 'WalletCredited', '1', $2, $3)",
    )
    .bind(&id)
    .bind(&v1)
    .bind(&metadata)
    .execute(&app.pool)
    .await
    .expect("append the old credit");
    let before = stored(&app, &id, 2).await;

    // The projections, live: the wallets read model applied it (a credit it could not read
    // would be parked, leaving the balance at 1,000).
    app.settle().await;
    assert_eq!(
        app.usd(&owner).await,
        (1_250, 0),
        "the balance after the v1 credit"
    );
    let entries: Value = app
        .get(&owner, "/v1/wallets/me/entries")
        .await
        .json()
        .await
        .expect("entries");
    assert!(
        entries["items"]
            .as_array()
            .expect("a page")
            .iter()
            .any(|e| e["reference"] == "goodwill from the old release"),
        "the ledger shows the old credit: {entries}"
    );
    let parked: i64 = sqlx::query_scalar("SELECT count(*) FROM parked_events")
        .fetch_one(&app.pool)
        .await
        .expect("parked events");
    assert_eq!(parked, 0, "no projection parked the old event");

    // The aggregate: a command decided on a history holding the v1 credit (a 500 if it could
    // not be read) counts it in the balance it records.
    app.deposit(&owner, 100, "USD").await;
    let (_, version, deposit, _) = stored(&app, &id, 3).await;
    assert_eq!(version, "1", "deposits are at version 1");
    assert_eq!(deposit["DepositConfirmed"]["available"], 1_350);
    // A credit made now is stored at the current version, with its id.
    let res = app
        .post(
            &admin,
            &format!("/v1/admin/wallets/{id}/credit"),
            &json!({"amount": 50, "currency": "USD", "reason": "goodwill now"}),
        )
        .await;
    assert_eq!(res.status(), 200, "an admin credit");
    let (_, version, credit, _) = stored(&app, &id, 4).await;
    assert_eq!(version, "2", "credits are at version 2");
    assert!(
        credit["WalletCredited"]["credit_id"].is_string(),
        "{credit}"
    );
    assert_eq!(credit["WalletCredited"]["available"], 1_400);

    // The audit state, folded from the store with the domain's own apply.
    for (query, available) in [("?version=2", 1_250), ("", 1_400)] {
        let res = app
            .get(
                &auditor,
                &format!("/v1/audit/aggregates/Wallet/{id}{query}"),
            )
            .await;
        assert_eq!(res.status(), 200, "the wallet's state{query}");
        let state: Value = res.json().await.expect("state");
        assert_eq!(
            state["state"]["state"]["balances"]["USD"],
            json!({"available": available, "held": 0}),
            "{state}"
        );
    }

    // The projections, rebuilt from the store: the same rows as live.
    app.settle().await;
    for projection in bountyline::workers::projections(&app.opener()) {
        build_shadow(&app.pool, projection.as_ref(), None, &|_, _| {})
            .await
            .expect("rebuild");
        for (table, differing) in diff(&app.pool, projection.as_ref()).await.expect("diff") {
            assert_eq!(
                differing,
                0,
                "{}: table {table} rebuilt differs from live",
                projection.name()
            );
        }
    }

    // History is untouched: the stored bytes, version and hash are what was appended, the
    // chain verifies over them, and the audit export shows the event as recorded.
    assert_eq!(
        stored(&app, &id, 2).await,
        before,
        "the old event was not rewritten"
    );
    let res = app.get(&auditor, "/v1/audit/verify").await;
    assert_eq!(res.status(), 200);
    let report: Value = res.json().await.expect("verify report");
    assert_eq!(report["ok"], true, "{report}");
    assert_eq!(report["checked"], app.event_count().await);
    let res = app
        .get(&auditor, "/v1/audit/events?aggregate_type=Wallet")
        .await;
    assert_eq!(res.status(), 200);
    let exported: Value = res.json().await.expect("exported events");
    let old = exported["items"]
        .as_array()
        .expect("a page")
        .iter()
        .find(|e| e["aggregate_id"] == id.as_str() && e["sequence"] == 2)
        .cloned()
        .expect("the old credit is exported");
    assert_eq!(old["event_version"], "1");
    assert_eq!(old["payload"], v1, "exported as stored");
}
