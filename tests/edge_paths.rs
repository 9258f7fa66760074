//! Every guard sees the path the router routes (issue 23): the per-address limit on
//! `/v1/auth/*` and the switch that hides the API description hold for every spelling of their
//! paths (percent-encoded letters, doubled slashes), and dot segments are refused. Requests go
//! out byte for byte as written here: an HTTP client library would tidy the paths first.

mod common;

use common::*;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Sends `method path` with `body` (JSON) as written, and returns the status and the body.
async fn raw(app: &TestApp, method: &str, path: &str, body: &Value) -> (u16, Value) {
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", app.port))
        .await
        .expect("connect");
    let body = body.to_string();
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await.expect("send");
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).await.expect("answer");
    let answer = String::from_utf8_lossy(&answer);
    let status = answer
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("a status line");
    let json = answer
        .split_once("\r\n\r\n")
        .and_then(|(_, body)| serde_json::from_str(body.trim()).ok())
        .unwrap_or(Value::Null);
    (status, json)
}

async fn app_with(tune: impl FnOnce(&mut bountyline::config::Settings)) -> TestApp {
    let nats = std::env::var("NATS_URL").expect("NATS_URL (run scripts/test)");
    let mut settings = test_settings(&fresh_database().await, &nats);
    tune(&mut settings);
    TestApp::spawn_with(settings, bountyline::startup::Parts::API).await
}

#[tokio::test]
async fn every_spelling_of_an_auth_path_meets_the_same_per_address_limit() {
    let app = app_with(|s| {
        s.limits.auth_per_minute = 1;
        s.limits.auth_burst = 3;
    })
    .await;
    let login = json!({"email": "nobody@example.com", "password": "wrong password"});
    for _ in 0..3 {
        assert_eq!(raw(&app, "POST", "/v1/auth/login", &login).await.0, 401);
    }
    assert_eq!(raw(&app, "POST", "/v1/auth/login", &login).await.0, 429);
    let register = json!({"email": common::accounts::unique_email("past"), "password": "a good long password",
                          "display_name": "Past the limit"});
    for (path, body) in [
        ("/v1/%61uth/login", &login),
        ("/v1/%61%75%74%68/login", &login),
        ("/v1/auth/%6cogin", &login),
        ("/v1//auth/login", &login),
        ("//v1/auth/login", &login),
        ("/v1/auth//login", &login),
        ("/%76%31/auth/login", &login),
        ("/v1/%61uth/register", &register),
        ("/v1//auth/register", &register),
        ("/v1/%61uth/refresh", &json!({"refresh_token": "x"})),
    ] {
        let (status, problem) = raw(&app, "POST", path, body).await;
        assert_eq!(status, 429, "{path}: {problem}");
    }
}

#[tokio::test]
async fn the_api_description_switched_off_is_off_in_every_spelling() {
    let app = app_with(|s| s.http.docs = false).await;
    for path in [
        "/openapi.json",
        "/openapi%2Ejson",
        "/openapi%2ejson",
        "/%6Fpenapi.json",
        "//openapi.json",
        "/docs/",
        "/%64ocs/",
        "//docs/",
        "/docs//",
    ] {
        let (status, problem) = raw(&app, "GET", path, &Value::Null).await;
        assert_eq!(status, 404, "{path}: {problem}");
    }
}

#[tokio::test]
async fn dot_segments_are_refused_in_every_spelling() {
    let app = app_with(|_| {}).await;
    for path in [
        "/v1/tasks/../auth/login",
        "/v1/./auth/login",
        "/v1/%2E%2E/auth/login",
        "/v1/%2e%2E/v1/auth/login",
        "/v1/auth/login/..",
    ] {
        let (status, problem) = raw(&app, "POST", path, &json!({})).await;
        assert_eq!(status, 400, "{path}: {problem}");
        assert_eq!(
            problem["type"],
            "https://bountyline.dev/problems/bad-request"
        );
    }
}

#[tokio::test]
async fn a_path_spelled_another_way_reaches_the_same_route() {
    let app = app_with(|_| {}).await;
    let (status, _) = raw(&app, "GET", "/health/%6Cive", &Value::Null).await;
    assert_eq!(status, 200);
    let (status, _) = raw(&app, "GET", "//health//live", &Value::Null).await;
    assert_eq!(status, 200);
}
