//! The edge's defences (OWASP API8): security headers, no TRACE, CORS only for configured
//! origins, problem+json for every refusal (bodies over the limit included), no internals in
//! any error even with the database gone, a time limit on answers, `/metrics` behind a token.

mod common;

use bountyline::startup::Parts;
use common::*;
use serde_json::{json, Value};

async fn app_with(tune: impl FnOnce(&mut bountyline::config::HttpSettings)) -> TestApp {
    spawn_tuned(Parts::ALL, tune).await
}

/// An API without workers: its read models never catch up, so a read of one's own write
/// waits its whole read-your-writes time (and holds its place meanwhile).
async fn api_without_workers(tune: impl FnOnce(&mut bountyline::config::HttpSettings)) -> TestApp {
    spawn_tuned(Parts::API, tune).await
}

async fn spawn_tuned(
    parts: Parts,
    tune: impl FnOnce(&mut bountyline::config::HttpSettings),
) -> TestApp {
    let nats_url = std::env::var("NATS_URL").expect("NATS_URL (run scripts/test)");
    let mut settings = test_settings(&fresh_database().await, &nats_url);
    tune(&mut settings.http);
    TestApp::spawn_with(settings, parts).await
}

async fn problem(res: reqwest::Response, status: u16) -> Value {
    assert_eq!(res.status(), status, "{}", res.url());
    let kind = res.headers()["content-type"].to_str().unwrap().to_owned();
    assert!(kind.starts_with("application/problem+json"), "{kind}");
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["status"], status);
    body
}

#[tokio::test]
async fn every_answer_carries_security_headers_and_trace_is_refused() {
    let app = TestApp::spawn().await;
    let alice = app.user("alice").await;
    let answers = [
        app.client
            .get(app.url("/health/live"))
            .send()
            .await
            .unwrap(),
        app.get(&alice, "/v1/me").await,
        app.client.get(app.url("/v1/me")).send().await.unwrap(),
        app.client
            .get(app.url("/no/such/route"))
            .send()
            .await
            .unwrap(),
    ];
    for res in answers {
        let h = res.headers();
        assert_eq!(h["x-content-type-options"], "nosniff", "{}", res.url());
        assert_eq!(h["x-frame-options"], "DENY");
        assert_eq!(h["referrer-policy"], "no-referrer");
        assert!(h["content-security-policy"]
            .to_str()
            .unwrap()
            .contains("frame-ancestors 'none'"));
        assert!(h.contains_key("x-request-id"));
    }
    for path in ["/v1/me", "/health/live", "/v1/tasks"] {
        let res = app
            .client
            .request(reqwest::Method::TRACE, app.url(path))
            .bearer_auth(&alice.access_token)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 405, "TRACE {path}");
        assert_eq!(res.headers()["x-frame-options"], "DENY");
        let body = res.text().await.unwrap();
        assert!(
            !body.contains(&alice.access_token),
            "TRACE echoed the token"
        );
    }
}

#[tokio::test]
async fn cors_answers_only_the_configured_origins_and_never_a_wildcard() {
    let app =
        app_with(|http| http.cors_origins = "https://app.example, https://ops.example".into())
            .await;
    let preflight = |origin: &'static str| {
        app.client
            .request(reqwest::Method::OPTIONS, app.url("/v1/tasks"))
            .header("Origin", origin)
            .header("Access-Control-Request-Method", "POST")
            .header(
                "Access-Control-Request-Headers",
                "authorization, content-type",
            )
            .send()
    };
    let ok = preflight("https://app.example").await.unwrap();
    assert_eq!(ok.status(), 204);
    assert_eq!(
        ok.headers()["access-control-allow-origin"],
        "https://app.example"
    );
    assert!(ok.headers()["access-control-allow-headers"]
        .to_str()
        .unwrap()
        .contains("idempotency-key"));
    assert!(!ok
        .headers()
        .contains_key("access-control-allow-credentials"));
    let evil = preflight("https://evil.example").await.unwrap();
    assert!(!evil.headers().contains_key("access-control-allow-origin"));
    problem(evil, 403).await;

    for (origin, allowed) in [
        ("https://ops.example", true),
        ("https://evil.example", false),
    ] {
        let res = app
            .client
            .get(app.url("/health/live"))
            .header("Origin", origin)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
        let acao = res.headers().get("access-control-allow-origin");
        assert_eq!(acao.is_some(), allowed, "{origin}");
        assert_ne!(acao.map(|v| v.to_str().unwrap()), Some("*"));
    }
}

#[tokio::test]
async fn a_body_over_the_limit_is_a_413_problem_on_every_kind_of_route() {
    let app = app_with(|http| http.body_limit_bytes = 1024).await;
    let alice = app.user("alice").await;
    let big = "x".repeat(4096);
    let json_route = app
        .post(&alice, "/v1/tasks", &json!({"queue": "q", "title": big}))
        .await;
    problem(json_route, 413).await;
    // Raw-body routes (signed webhooks, optional bodies) read bytes, not JSON.
    for path in ["/v1/webhooks/payments", "/v1/queues/q/claim"] {
        let res = app
            .client
            .post(app.url(path))
            .bearer_auth(&alice.access_token)
            .header("content-type", "application/json")
            .body(format!("{{\"pad\": \"{big}\"}}"))
            .send()
            .await
            .unwrap();
        problem(res, 413).await;
    }
    let events = app.event_count().await;
    assert_eq!(events, 0);
}

#[tokio::test]
async fn metrics_can_be_kept_behind_a_token() {
    let app = app_with(|http| http.metrics_token = "scrape-me-please".to_owned().into()).await;
    let get = |token: Option<&'static str>| {
        let mut req = app.client.get(app.url("/metrics"));
        if let Some(token) = token {
            req = req.bearer_auth(token);
        }
        req.send()
    };
    problem(get(None).await.unwrap(), 401).await;
    problem(get(Some("scrape-me-pleasX")).await.unwrap(), 401).await;
    let ok = get(Some("scrape-me-please")).await.unwrap();
    assert_eq!(ok.status(), 200);
    assert!(ok.text().await.unwrap().contains("bountyline_"));
}

#[tokio::test]
async fn an_answer_that_takes_too_long_is_a_503_to_retry() {
    // A read of one's own write waits (5 s) past the time limit (1 s).
    let app = api_without_workers(|http| http.request_timeout_secs = 1).await;
    let alice = app.user("alice").await;
    let written = app.create_task(&alice, "q", "unseen", 0).await;
    let started = std::time::Instant::now();
    let res = app.get_at(&alice, "/v1/tasks", &written["position"]).await;
    assert!(res.headers().contains_key("retry-after"));
    assert_eq!(res.headers()["x-content-type-options"], "nosniff");
    let body = problem(res, 503).await;
    assert!(
        body["detail"].as_str().unwrap().contains("too long"),
        "{body}"
    );
    assert!(started.elapsed() < std::time::Duration::from_secs(4));
}

/// A short stall should cost latency, not 503s: a request finding every place taken waits
/// for one (`http.admission_wait_ms`) and is served when it frees.
#[tokio::test]
async fn a_request_finding_every_place_taken_waits_for_one() {
    // One place, held by a read of one's own write for the whole read-your-writes wait
    // (1.5 s), which then answers 503 itself.
    let app = api_without_workers(|http| {
        http.max_in_flight = 1;
        http.read_your_writes_timeout_ms = 1500;
        http.admission_wait_ms = 5000;
    })
    .await;
    let alice = app.user("alice").await;
    let written = app.create_task(&alice, "q", "unseen", 0).await;
    let holder = app.get_at(&alice, "/v1/tasks", &written["position"]);
    let waiter = async {
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        let started = std::time::Instant::now();
        let res = app.get(&alice, "/v1/me").await;
        (res.status(), started.elapsed())
    };
    let (held, (status, waited)) = tokio::join!(holder, waiter);
    let held = problem(held, 503).await;
    assert!(
        held["detail"].as_str().unwrap().contains("not reached"),
        "{held}"
    );
    assert_eq!(status, 200, "served once the place was given back");
    assert!(
        waited >= std::time::Duration::from_millis(1000),
        "it waited: {waited:?}"
    );
}

/// A TCP relay to Postgres that can be cut: open connections drop and new ones are refused,
/// as when the database host goes away.
struct Link {
    port: u16,
    cut: tokio::sync::watch::Sender<bool>,
}

impl Link {
    async fn to(target: std::net::SocketAddr) -> Link {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let (cut, mut down) = tokio::sync::watch::channel(false);
        tokio::spawn(async move {
            let mut open = tokio::task::JoinSet::new();
            loop {
                tokio::select! {
                    accepted = listener.accept() => {
                        let Ok((mut client, _)) = accepted else { continue };
                        open.spawn(async move {
                            if let Ok(mut server) = tokio::net::TcpStream::connect(target).await {
                                let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                            }
                        });
                    }
                    _ = down.changed() => break,
                }
            }
            // Dropping the listener refuses new connections; the open ones are cut.
            open.abort_all();
        });
        Link { port, cut }
    }
}

#[tokio::test]
async fn with_the_database_gone_answers_are_503s_that_say_nothing_of_it() {
    let nats_url = std::env::var("NATS_URL").expect("NATS_URL (run scripts/test)");
    let direct = fresh_database().await;
    let mut url = reqwest::Url::parse(&direct).unwrap();
    let target = format!("{}:{}", url.host_str().unwrap(), url.port().unwrap());
    let link = Link::to(target.parse().unwrap()).await;
    url.set_port(Some(link.port)).unwrap();
    let app = TestApp::spawn_with(test_settings(url.as_str(), &nats_url), Parts::ALL).await;
    let alice = app.user("alice").await;
    link.cut.send(true).unwrap();
    let answers = [
        app.get(&alice, "/v1/tasks").await,
        app.post(&alice, "/v1/tasks", &json!({"queue": "q", "title": "t"}))
            .await,
        app.client
            .post(app.url("/v1/auth/login"))
            .json(&json!({"email": alice.email, "password": alice.password}))
            .send()
            .await
            .unwrap(),
    ];
    for res in answers {
        // Out of reach is not a bug of ours: 503 and a time to retry, not 500.
        assert_eq!(res.status(), 503, "from {}", res.url());
        assert!(res.headers().contains_key("retry-after"));
        let text = res.text().await.unwrap().to_lowercase();
        for leak in [
            "sqlx",
            "postgres",
            "select",
            "database",
            "connection",
            "pool",
            "panicked",
            ".rs:",
        ] {
            assert!(!text.contains(leak), "{leak:?} leaked: {text}");
        }
    }
}

#[tokio::test]
async fn the_api_description_can_be_switched_off() {
    let app = app_with(|http| http.docs = false).await;
    for path in ["/openapi.json", "/docs", "/docs/", "/docs/swagger-ui.css"] {
        let res = app.client.get(app.url(path)).send().await.unwrap();
        let body = problem(res, 404).await;
        assert!(
            body["type"].as_str().unwrap().ends_with("no-such-route"),
            "{path}: {body}"
        );
    }
    let on = TestApp::spawn().await;
    let res = on.client.get(on.url("/openapi.json")).send().await.unwrap();
    assert_eq!(res.status(), 200);
}

#[tokio::test]
async fn a_known_path_with_another_method_is_a_405_that_names_the_methods() {
    let app = TestApp::spawn().await;
    let alice = app.user("alice").await;
    for (method, path, allow) in [
        (reqwest::Method::PUT, "/v1/tasks", "GET, POST"),
        (reqwest::Method::PUT, "/v1/me", "GET, DELETE"),
        (
            reqwest::Method::PATCH,
            "/v1/tasks/0192f3a4-5b6c-7d8e-9f01-23456789abcd",
            "GET",
        ),
    ] {
        let res = app
            .client
            .request(method.clone(), app.url(path))
            .bearer_auth(&alice.access_token)
            .send()
            .await
            .unwrap();
        assert_eq!(res.headers()["allow"], allow, "{method} {path}");
        problem(res, 405).await;
    }
    let nowhere = app.client.put(app.url("/v1/nowhere")).send().await.unwrap();
    problem(nowhere, 404).await;
}

/// Found by the held-load run: under a sustained overload every request queued for the
/// database pool, timed out after its turn, and none completed. Beyond `http.max_in_flight`
/// a request now waits a bounded time for a place (`http.admission_wait_ms`), is then
/// refused (503, Retry-After), and the admitted ones finish.
#[tokio::test]
async fn beyond_max_in_flight_requests_are_shed_after_a_bounded_wait_and_health_still_answers() {
    let app = api_without_workers(|http| {
        http.max_in_flight = 1;
        http.read_your_writes_timeout_ms = 3000;
        http.admission_wait_ms = 300;
    })
    .await;
    let alice = app.user("alice").await;
    let task = app.create_task(&alice, "q", "t", 1).await;
    let position = task["position"].as_i64().unwrap();
    let id = task["id"].as_str().unwrap().to_owned();

    let waiting = {
        let (client, url, token) = (
            app.client.clone(),
            app.url(&format!("/v1/tasks/{id}")),
            alice.access_token.clone(),
        );
        tokio::spawn(async move {
            client
                .get(url)
                .bearer_auth(token)
                .header("X-Min-Position", position.to_string())
                .send()
                .await
                .unwrap()
                .status()
        })
    };
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let started = std::time::Instant::now();
    let shed = app.get(&alice, "/v1/me").await;
    let waited = started.elapsed();
    assert!(
        waited >= std::time::Duration::from_millis(250),
        "it waited: {waited:?}"
    );
    assert!(
        waited < std::time::Duration::from_millis(1500),
        "then shed: {waited:?}"
    );
    assert_eq!(shed.headers()["retry-after"], "1");
    let body = problem(shed, 503).await;
    assert!(
        body["type"].as_str().unwrap().ends_with("/unavailable"),
        "{body}"
    );
    let health = app
        .client
        .get(app.url("/health/live"))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200);

    assert_eq!(
        waiting.await.unwrap(),
        503,
        "the waiting read gave up on its position"
    );
    assert_eq!(app.get(&alice, "/v1/me").await.status(), 200);
}

/// Accepted connections send without delay (TCP_NODELAY): with Nagle's algorithm a stream's
/// small messages wait for the client to acknowledge the ones before them, which a client may
/// delay by 40 ms (the benchmark's command-to-screen p99 lost 15-20 ms to it). The server runs
/// in this process, so its end of a connection is found among this process's sockets.
#[tokio::test]
async fn accepted_connections_send_without_delay() {
    use std::io::{Read, Write};
    use std::os::fd::BorrowedFd;

    let app = TestApp::spawn().await;
    let mut client = std::net::TcpStream::connect(("127.0.0.1", app.port)).expect("connect");
    client
        .write_all(b"GET /health/live HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .expect("request");
    client
        .set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .expect("timeout");
    let mut answer = [0u8; 12];
    client.read_exact(&mut answer).expect("an answer");
    assert_eq!(&answer, b"HTTP/1.1 200");

    let ours = client.local_addr().expect("client address");
    let server_side: Vec<bool> = std::fs::read_dir("/proc/self/fd")
        .expect("/proc/self/fd")
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter_map(|fd| {
            // SAFETY: fd is open in this process (listed just now) and only borrowed for the
            // calls below, while the connection it belongs to is still open.
            let fd = unsafe { BorrowedFd::borrow_raw(fd) };
            let socket = socket2::SockRef::from(&fd);
            let peer = socket.peer_addr().ok()?.as_socket()?;
            (peer == ours).then(|| socket.tcp_nodelay().expect("TCP_NODELAY"))
        })
        .collect();
    assert_eq!(
        server_side,
        [true],
        "the server's end of the connection, with TCP_NODELAY"
    );
    drop(client);
    app.shutdown.trigger().await;
}
