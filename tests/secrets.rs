//! No credential or secret ever appears in a log line, an event or an export: a real
//! `bountyline dev` process with debug logging serves a full session (register, log in,
//! refresh, log out, signed webhook, commands, an audit export), and then its logs, the
//! event store and the export are searched for every secret used.

mod common;

use common::{fresh_database, test_settings};
use secrecy::ExposeSecret;
use serde_json::{json, Value};
use std::process::Command;
use std::time::Duration;

#[tokio::test]
async fn no_password_token_or_secret_reaches_the_logs_events_or_exports() {
    let db = fresh_database().await;
    let settings = test_settings(&db, &std::env::var("NATS_URL").unwrap());
    let jwt_secret = settings.auth.jwt_secret.expose_secret().to_owned();
    let webhook_secret = settings.payments.webhook_secret.expose_secret().to_owned();
    let privacy_key = settings.privacy.key.expose_secret().to_owned();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let log_path = std::env::temp_dir().join(format!("bountyline-{}.log", uuid::Uuid::new_v4()));
    let log = std::fs::File::create(&log_path).unwrap();
    let bin = std::path::Path::new(env!("CARGO_BIN_EXE_bountyline"));
    let mut child = common::KillOnDrop(
        common::bountyline_command(bin, "dev", &settings, port)
            .env("BOUNTYLINE_LOG_FORMAT", "json")
            .env("RUST_LOG", "debug")
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap(),
    );
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    common::wait_ready(&client, &base, Duration::from_secs(30)).await;

    let password = format!("pw-{}-long-enough", uuid::Uuid::new_v4());
    let email = format!("secret-{}@example.com", uuid::Uuid::new_v4().simple());
    let post = |path: &str, token: Option<&str>, body: Value| {
        let mut req = client.post(format!("{base}{path}")).json(&body);
        if let Some(token) = token {
            req = req.bearer_auth(token);
        }
        req.send()
    };
    let user: Value = post(
        "/v1/auth/register",
        None,
        json!({"email": email, "password": password, "display_name": "S"}),
    )
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    // A wrong password too: failures must not echo what was tried.
    let wrong = format!("{password}-wrong");
    post(
        "/v1/auth/login",
        None,
        json!({"email": email, "password": wrong}),
    )
    .await
    .unwrap();
    let log_in = || async {
        let answer = post(
            "/v1/auth/login",
            None,
            json!({"email": email, "password": password}),
        )
        .await
        .unwrap();
        answer.json::<Value>().await.unwrap()
    };
    let first = log_in().await;
    let refreshed: Value = post(
        "/v1/auth/refresh",
        None,
        json!({"refresh_token": first["refresh_token"]}),
    )
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    let refreshed_access = refreshed["access_token"].as_str().unwrap().to_owned();
    // Reusing the rotated token is refused and logged; the token must not be in that log line.
    post(
        "/v1/auth/refresh",
        None,
        json!({"refresh_token": first["refresh_token"]}),
    )
    .await
    .unwrap();
    // The reuse revoked the family, which ended the refreshed access token's session too.
    let me = client
        .get(format!("{base}/v1/me"))
        .bearer_auth(&refreshed_access)
        .send()
        .await
        .unwrap();
    assert_eq!(me.status(), 401);
    let again = log_in().await;
    let access = again["access_token"].as_str().unwrap().to_owned();

    let body = json!({"event": "deposit.succeeded", "reference": "dep-secret", "user_id": user["id"],
                      "amount": 1000, "currency": "USD"});
    let raw = serde_json::to_vec(&body).unwrap();
    let signature = bountyline::http::signature::sign(webhook_secret.as_bytes(), &raw);
    let res = client
        .post(format!("{base}/v1/webhooks/payments"))
        .header("X-Signature", &signature)
        .header("content-type", "application/json")
        .body(raw)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let task = post(
        "/v1/tasks",
        Some(&access),
        json!({"queue": "s", "title": "t"}),
    )
    .await
    .unwrap();
    assert_eq!(task.status(), 201);
    post(
        "/v1/bounties",
        Some(&access),
        json!({"title": "b", "description": "d",
        "reward": {"amount": 500, "currency": "USD"}}),
    )
    .await
    .unwrap();
    // Tokens in the query string (the SSE way) must not be logged either.
    let sse = client
        .get(format!("{base}/v1/streams/tasks?access_token={access}"))
        .send()
        .await
        .unwrap();
    drop(sse);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let logout = post(
        "/v1/auth/logout",
        None,
        json!({"refresh_token": refreshed["refresh_token"]}),
    )
    .await
    .unwrap();
    assert_eq!(logout.status(), 204);

    // Export everything, as an auditor would (through the CLI, into a file we can search).
    let export = Command::new(env!("CARGO_BIN_EXE_bountyline"))
        .args(["audit", "export"])
        .env("DATABASE_URL", &db)
        .env("BOUNTYLINE_PRIVACY__KEY", &privacy_key)
        .output()
        .unwrap();
    assert!(export.status.success());
    child.kill();

    let logs = std::fs::read_to_string(&log_path).unwrap();
    let _ = std::fs::remove_file(&log_path);
    assert!(logs.contains("request"), "the logs were captured");
    let pool = sqlx::PgPool::connect(&db).await.unwrap();
    let events: String = sqlx::query_scalar(
        "SELECT coalesce(string_agg(payload::text || metadata::text, ' '), '') FROM events",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    let exported = String::from_utf8_lossy(&export.stdout).to_string();
    assert!(
        exported.contains("DepositConfirmed"),
        "the export has the history"
    );
    let secrets = [
        ("password", password.as_str()),
        ("wrong password", wrong.as_str()),
        ("access token", access.as_str()),
        ("refreshed access token", refreshed_access.as_str()),
        (
            "second login's refresh token",
            again["refresh_token"].as_str().unwrap(),
        ),
        (
            "first access token",
            first["access_token"].as_str().unwrap(),
        ),
        ("refresh token", first["refresh_token"].as_str().unwrap()),
        (
            "rotated refresh token",
            refreshed["refresh_token"].as_str().unwrap(),
        ),
        ("JWT secret", jwt_secret.as_str()),
        ("webhook secret", webhook_secret.as_str()),
        ("privacy key", privacy_key.as_str()),
        ("webhook signature", signature.trim_start_matches("sha256=")),
        ("argon2 hash", "$argon2"),
    ];
    for (what, secret) in secrets {
        assert!(!logs.contains(secret), "the {what} is in the logs");
        assert!(!events.contains(secret), "the {what} is in the events");
        assert!(!exported.contains(secret), "the {what} is in the export");
    }
}
