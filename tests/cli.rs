//! The `bountyline` binary as an operator uses it: help, migrate, replay, admin create.

mod common;

use common::{fresh_database, TestApp};
use secrecy::ExposeSecret;
use serde_json::json;
use std::process::{Command, Output};

fn bountyline(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_bountyline"));
    cmd.args(args).env("RUST_LOG", "warn");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("run bountyline")
}

#[test]
fn every_subcommand_explains_itself() {
    for sub in [
        vec!["--help"],
        vec!["serve", "--help"],
        vec!["work", "--help"],
        vec!["dev", "--help"],
        vec!["migrate", "--help"],
        vec!["replay", "--help"],
        vec!["admin", "create", "--help"],
    ] {
        let out = bountyline(&sub, &[]);
        assert!(out.status.success(), "{sub:?}");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains("Usage:"), "{sub:?}: {text}");
    }
}

#[tokio::test]
async fn migrate_is_repeatable_and_needs_no_token_key() {
    let db = fresh_database().await;
    for _ in 0..2 {
        let out = bountyline(&["migrate"], &[("DATABASE_URL", &db)]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[tokio::test]
async fn replay_rebuilds_a_projection_and_keeps_its_rows() {
    let app = TestApp::spawn().await;
    let alice = app.user("alice").await;
    for i in 0..10 {
        app.create_task(&alice, "q", &format!("t{i}"), i % 3).await;
    }
    app.settle().await;
    let snapshot = || async {
        sqlx::query_scalar::<_, serde_json::Value>(
            "SELECT coalesce(jsonb_agg(to_jsonb(t) ORDER BY id), '[]') FROM tasks t",
        )
        .fetch_one(&app.pool)
        .await
        .unwrap()
    };
    let before = snapshot().await;
    let db = app.settings.database_url.expose_secret().to_owned();
    let key = app.settings.privacy.key.expose_secret().to_owned();
    let env = [
        ("DATABASE_URL", db.as_str()),
        ("BOUNTYLINE_PRIVACY__KEY", &key),
    ];
    let listed = bountyline(&["replay", "--list"], &env);
    assert!(String::from_utf8_lossy(&listed.stdout)
        .lines()
        .any(|l| l == "tasks"));
    let out = bountyline(&["replay", "tasks"], &env);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("swapped in"), "{stderr}");
    assert_eq!(snapshot().await, before);
    let unknown = bountyline(&["replay", "nope"], &env);
    assert!(!unknown.status.success());
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("no projection named nope"));
}

#[tokio::test]
async fn admin_create_makes_an_admin_who_can_log_in() {
    let app = TestApp::spawn().await;
    let db = app.settings.database_url.expose_secret().to_owned();
    let email = format!("root-{}@example.com", uuid::Uuid::new_v4().simple());
    let out = bountyline(
        &["admin", "create", "--email", &email],
        &[
            ("DATABASE_URL", &db),
            ("BOUNTYLINE_ADMIN_PASSWORD", "a long admin password"),
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let login = app
        .client
        .post(app.url("/v1/auth/login"))
        .json(&json!({"email": email, "password": "a long admin password"}))
        .send()
        .await
        .unwrap();
    assert_eq!(login.status(), 200);
    let token: serde_json::Value = login.json().await.unwrap();
    let me: serde_json::Value = app
        .client
        .get(app.url("/v1/me"))
        .bearer_auth(token["access_token"].as_str().unwrap())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        me["roles"].as_array().unwrap().contains(&json!("admin")),
        "{me}"
    );
}

#[tokio::test]
async fn audit_export_heads_and_verify_work_from_the_command_line() {
    let app = TestApp::spawn().await;
    let alice = app.user("alice").await;
    for i in 0..3 {
        app.create_task(&alice, "audit", &format!("t{i}"), 0).await;
    }
    let db = app.settings.database_url.expose_secret().to_owned();
    let key = app.settings.privacy.key.expose_secret().to_owned();
    let env = [
        ("DATABASE_URL", db.as_str()),
        ("BOUNTYLINE_PRIVACY__KEY", &key),
    ];

    let csv = bountyline(
        &[
            "audit",
            "export",
            "--format",
            "csv",
            "--event-type",
            "TaskCreated",
        ],
        &env,
    );
    assert!(
        csv.status.success(),
        "{}",
        String::from_utf8_lossy(&csv.stderr)
    );
    let text = String::from_utf8_lossy(&csv.stdout);
    assert!(text.starts_with("position,"), "{text}");
    assert_eq!(text.lines().count(), 4, "a header and three events: {text}");

    let heads = bountyline(&["audit", "heads"], &env);
    assert!(heads.status.success());
    let file = std::env::temp_dir().join(format!("heads-{}.json", uuid::Uuid::new_v4()));
    std::fs::write(&file, &heads.stdout).unwrap();
    let file_arg = file.to_string_lossy().to_string();
    let clean = bountyline(&["audit", "verify", "--heads", &file_arg], &env);
    assert!(
        clean.status.success(),
        "{}",
        String::from_utf8_lossy(&clean.stdout)
    );
    assert!(String::from_utf8_lossy(&clean.stdout).contains("\"ok\": true"));

    // A superuser removes the newest event of one stream, around the append-only trigger.
    let mut conn = app.pool.acquire().await.unwrap();
    sqlx::query("SET session_replication_role = replica")
        .execute(&mut *conn)
        .await
        .unwrap();
    sqlx::query("DELETE FROM events WHERE position = (SELECT max(position) FROM events)")
        .execute(&mut *conn)
        .await
        .unwrap();
    sqlx::query("SET session_replication_role = DEFAULT")
        .execute(&mut *conn)
        .await
        .unwrap();
    drop(conn);
    let caught = bountyline(&["audit", "verify", "--heads", &file_arg], &env);
    assert!(!caught.status.success(), "the removal went unnoticed");
    assert!(String::from_utf8_lossy(&caught.stdout).contains("problems"));
    let _ = std::fs::remove_file(file);
}
