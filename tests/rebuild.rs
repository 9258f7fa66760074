//! Rebuild equals live for every read model (DESIGN.md guarantee 7): after a mixed workload
//! touching tasks, wallets, payments, bounties and notifications, each projection rebuilt from
//! zero through its own apply code has exactly the live rows, and `bountyline replay --all`
//! swaps them all in without changing a row.

mod common;

use bountyline_projections::rebuild::{build_shadow, diff};
use bountyline_projections::Projection;
use common::{TestApp, TestUser};
use secrecy::ExposeSecret;
use serde_json::{json, Value};

async fn mixed_workload(app: &TestApp, users: &[TestUser]) {
    let (poster, hunter, worker) = (&users[0], &users[1], &users[2]);
    for user in users {
        app.deposit(user, 10_000, "USD").await;
    }
    for i in 0..6 {
        app.create_task(poster, "mixed", &format!("t{i}"), i % 3)
            .await;
    }
    app.may_work("mixed", worker).await;
    app.settle().await;
    let claim: Value = app
        .post(worker, "/v1/queues/mixed/claim", &json!({}))
        .await
        .json()
        .await
        .unwrap();
    let id = claim["id"].as_str().unwrap();
    app.post(
        worker,
        &format!("/v1/tasks/{id}/complete"),
        &json!({"result": 1}),
    )
    .await;
    let claim: Value = app
        .post(worker, "/v1/queues/mixed/claim", &json!({}))
        .await
        .json()
        .await
        .unwrap();
    let id = claim["id"].as_str().unwrap();
    app.post(
        worker,
        &format!("/v1/tasks/{id}/fail"),
        &json!({"error": "no", "retryable": false}),
    )
    .await;

    let withdrawal: Value = app
        .post(
            hunter,
            "/v1/wallets/me/withdrawals",
            &json!({"amount": 700, "currency": "USD"}),
        )
        .await
        .json()
        .await
        .unwrap();
    let settle_body = json!({"event": "withdrawal.succeeded", "reference": "w-rebuild", "user_id": hunter.id,
        "amount": 700, "currency": "USD", "withdrawal_id": withdrawal["withdrawal_id"]});
    assert_eq!(app.webhook(&settle_body, true).await.status(), 200);

    for (reward, finish) in [(2_000, "approve"), (1_500, "cancel"), (99_999, "none")] {
        let res = app
            .post(
                poster,
                "/v1/bounties",
                &json!({"title": format!("job {reward}"), "description": "d",
                "reward": {"amount": reward, "currency": "USD"}, "tags": ["rebuild"]}),
            )
            .await;
        let bounty = res.json::<Value>().await.unwrap()["id"]
            .as_str()
            .unwrap()
            .to_owned();
        app.settle().await;
        if finish == "cancel" {
            app.post(poster, &format!("/v1/bounties/{bounty}/cancel"), &json!({}))
                .await;
            continue;
        }
        if finish == "none" {
            continue; // unfunded: too large for the wallet
        }
        let application: Value = app
            .post(
                hunter,
                &format!("/v1/bounties/{bounty}/applications"),
                &json!({"pitch": "me"}),
            )
            .await
            .json()
            .await
            .unwrap();
        app.settle().await;
        app.post(
            poster,
            &format!("/v1/bounties/{bounty}/accept"),
            &json!({"application_id": application["application_id"]}),
        )
        .await;
        app.post(
            hunter,
            &format!("/v1/bounties/{bounty}/submit"),
            &json!({"deliverable": {"text": "ok"}}),
        )
        .await;
        app.post(
            poster,
            &format!("/v1/bounties/{bounty}/approve"),
            &json!({}),
        )
        .await;
    }
    app.settle().await;
    // Read some notifications, so read flags are part of what must survive a rebuild.
    let feed: Value = app
        .get(hunter, "/v1/notifications")
        .await
        .json()
        .await
        .unwrap();
    let first = feed["items"][0]["id"].as_str().unwrap().to_owned();
    assert_eq!(
        app.post(
            hunter,
            &format!("/v1/notifications/{first}/read"),
            &json!({})
        )
        .await
        .status(),
        200
    );
    app.settle().await;
}

/// Every index of the projections' live tables, with its definition, in name order.
async fn indexes_of(
    app: &TestApp,
    projections: &[std::sync::Arc<dyn Projection>],
) -> Vec<(String, String)> {
    let tables: Vec<String> = projections
        .iter()
        .flat_map(|p| p.tables().iter().map(|t| (*t).to_owned()))
        .collect();
    sqlx::query_as(
        "SELECT indexname::text, indexdef FROM pg_indexes \
         WHERE schemaname = 'public' AND tablename = ANY($1) ORDER BY indexname",
    )
    .bind(&tables)
    .fetch_all(&app.pool)
    .await
    .unwrap()
}

/// A rebuild loads the shadow tables without the indexes each projection names as deferred
/// and builds them afterwards; a name that matched nothing would silently keep the index
/// through the load (slower, not wrong), so every name must be an index of the projection's
/// own tables, and not one that a constraint (the key `ON CONFLICT` needs) owns.
#[tokio::test]
async fn every_deferred_index_is_an_index_of_its_projections_tables_that_no_constraint_owns() {
    let app = TestApp::spawn().await;
    for projection in bountyline::workers::projections(&app.opener()) {
        for index in projection.deferred_indexes() {
            let owner: Option<(String, bool)> = sqlx::query_as(
                "SELECT t.relname::text, EXISTS (SELECT 1 FROM pg_constraint c \
                     WHERE c.conindid = i.oid) \
                 FROM pg_class i JOIN pg_index x ON x.indexrelid = i.oid \
                 JOIN pg_class t ON t.oid = x.indrelid \
                 JOIN pg_namespace n ON n.oid = i.relnamespace \
                 WHERE n.nspname = 'public' AND i.relname = $1",
            )
            .bind(index)
            .fetch_optional(&app.pool)
            .await
            .unwrap();
            let (table, constrained) =
                owner.unwrap_or_else(|| panic!("{}: no index {index}", projection.name()));
            assert!(
                projection.tables().contains(&table.as_str()),
                "{}: {index} is on {table}, not on its tables",
                projection.name()
            );
            assert!(
                !constrained,
                "{}: {index} belongs to a constraint",
                projection.name()
            );
        }
    }
}

async fn snapshot(app: &TestApp, table: &str) -> Value {
    sqlx::query_scalar(&format!(
        "SELECT coalesce(jsonb_agg(to_jsonb(t) ORDER BY to_jsonb(t)::text), '[]') FROM {table} t"
    ))
    .fetch_one(&app.pool)
    .await
    .unwrap()
}

#[tokio::test]
async fn every_projection_rebuilt_from_zero_equals_the_live_one_row_for_row() {
    let app = TestApp::spawn().await;
    let mut users = Vec::new();
    for name in ["poster", "hunter", "worker"] {
        users.push(app.user(name).await);
    }
    mixed_workload(&app, &users).await;
    let head = app.head().await;
    let projections = bountyline::workers::projections(&app.opener());
    let mut before = Vec::new();
    for projection in &projections {
        let report = build_shadow(&app.pool, projection.as_ref(), Some(head), &|_, _| {})
            .await
            .unwrap();
        assert!(report.events > 0);
        for (table, differing) in diff(&app.pool, projection.as_ref()).await.unwrap() {
            assert_eq!(
                differing,
                0,
                "{}: table {table} differs from its rebuild",
                projection.name()
            );
            let rows = snapshot(&app, &table).await;
            assert!(
                rows.as_array().is_some_and(|r| !r.is_empty())
                    || table.starts_with("notification_task"),
                "{table} is empty: the workload did not reach it"
            );
            before.push((table, rows));
        }
    }

    let indexes = indexes_of(&app, &projections).await;
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_bountyline"))
        .args(["replay", "--all"])
        .env("DATABASE_URL", app.settings.database_url.expose_secret())
        .env(
            "BOUNTYLINE_PRIVACY__KEY",
            app.settings.privacy.key.expose_secret(),
        )
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    for projection in &projections {
        assert!(
            stderr.contains(&format!("{}: rebuilt", projection.name())),
            "{stderr}"
        );
    }
    for (table, rows) in before {
        assert_eq!(
            snapshot(&app, &table).await,
            rows,
            "replay --all changed {table}"
        );
    }
    // The deferred indexes were built after the load: every index is back, under its name.
    assert_eq!(indexes_of(&app, &projections).await, indexes);
    // And the live projections carry on from where the rebuild left them.
    let more = app.create_task(&users[0], "mixed", "after replay", 0).await;
    app.wait_for_projection("tasks", more["position"].as_i64().unwrap())
        .await;
}
