//! Browser sessions without tokens in script reach (issue 25, item 6): a sign-in with
//! `"session": "cookie"` keeps its tokens in `HttpOnly` cookies; the session cookie is taken
//! beside bearer tokens; a cookie-authenticated request that changes something needs the
//! server's own `Origin` and the session's `X-CSRF-Token`; refresh and logout work from the
//! cookies; the live streams open with the cookie alone. Every refusal is a 403 problem that
//! changes nothing, checked by reading back what the client sees.

mod common;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use bountyline::startup::Parts;
use common::accounts::{TestUser, GOOD_PASSWORD};
use common::sse::{wait_for_hub, SseStream};
use common::{fresh_database, test_settings, TestApp};
use reqwest::{header, Method, StatusCode};
use serde_json::{json, Value};
use std::collections::BTreeMap;

const SESSION: &str = "__Host-bl_session";
const REFRESH: &str = "__Secure-bl_refresh";
const CSRF: &str = "__Host-bl_csrf";
const CSRF_REJECTED: &str = "https://bountyline.dev/problems/csrf-rejected";

/// What a browser holds after a cookie sign-in: its cookies, and the CSRF token the page kept.
#[derive(Debug, Clone)]
struct Browser {
    session: String,
    refresh: String,
    csrf: String,
}

impl Browser {
    /// The browser after an answer that set its cookies (a sign-in, a refresh).
    fn from_answer(res: &reqwest::Response) -> Browser {
        let set = set_cookies(res);
        Browser {
            session: set[SESSION].0.clone(),
            refresh: set[REFRESH].0.clone(),
            csrf: set[CSRF].0.clone(),
        }
    }

    /// The cookies a browser sends to `path`: the refresh cookie only under `/v1/auth`.
    fn cookies_for(&self, path: &str) -> String {
        let mut cookies = format!("{SESSION}={}; {CSRF}={}", self.session, self.csrf);
        if path.starts_with("/v1/auth") {
            cookies.push_str(&format!("; {REFRESH}={}", self.refresh));
        }
        cookies
    }

    /// A request with the cookies only, as another site's page would make it.
    fn request(&self, app: &TestApp, method: Method, path: &str) -> reqwest::RequestBuilder {
        app.client
            .request(method, app.url(path))
            .header(header::COOKIE, self.cookies_for(path))
    }

    /// A request as the server's own page makes it: the cookies, its `Origin` and the token.
    fn command(&self, app: &TestApp, method: Method, path: &str) -> reqwest::RequestBuilder {
        self.request(app, method, path)
            .header(header::ORIGIN, &app.address)
            .header("X-CSRF-Token", &self.csrf)
    }
}

async fn cookie_login(app: &TestApp, user: &TestUser) -> reqwest::Response {
    app.client
        .post(app.url("/v1/auth/login"))
        .json(&json!({"email": user.email, "password": GOOD_PASSWORD, "session": "cookie"}))
        .send()
        .await
        .unwrap()
}

/// Signs `user` in once more, for a browser session of its own.
async fn browser(app: &TestApp, user: &TestUser) -> Browser {
    let res = cookie_login(app, user).await;
    assert_eq!(res.status(), StatusCode::OK);
    let browser = Browser::from_answer(&res);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["csrf_token"], browser.csrf.as_str());
    browser
}

/// Each `Set-Cookie` of an answer by name: its value, and the whole header.
fn set_cookies(res: &reqwest::Response) -> BTreeMap<String, (String, String)> {
    res.headers()
        .get_all(header::SET_COOKIE)
        .iter()
        .map(|v| {
            let line = v.to_str().unwrap().to_owned();
            let first = line.split(';').next().unwrap();
            let (name, value) = first.split_once('=').unwrap();
            (name.to_owned(), (value.to_owned(), line.clone()))
        })
        .collect()
}

fn task(queue: &str) -> Value {
    json!({"queue": queue, "title": "written from a page"})
}

/// Asserts a 403 `csrf-rejected` problem that names nothing of the server's insides.
async fn assert_csrf_rejected(res: reqwest::Response, case: &str) {
    assert_eq!(res.status(), StatusCode::FORBIDDEN, "{case}");
    assert_eq!(
        res.headers()[header::CONTENT_TYPE],
        "application/problem+json",
        "{case}"
    );
    assert!(
        res.headers().get(header::SET_COOKIE).is_none(),
        "{case}: a refusal sets no cookie"
    );
    let problem: Value = res.json().await.unwrap();
    assert_eq!(problem["type"], CSRF_REJECTED, "{case}: {problem}");
    assert_eq!(problem["status"], 403, "{case}");
    let detail = problem["detail"].as_str().unwrap().to_lowercase();
    for inside in ["sql", "panic", "hmac", "family", "src/"] {
        assert!(!detail.contains(inside), "{case}: {detail}");
    }
}

/// The titles of the tasks in `queue` as `user` sees them, once the read model has everything
/// up to a command sent after the requests being checked: anything they did is in it.
async fn tasks_seen(app: &TestApp, user: &TestUser, queue: &str) -> Vec<String> {
    let marker = app
        .create_task(user, &format!("{queue}-marker"), "marker", 0)
        .await;
    let res = app
        .get_at(
            user,
            &format!("/v1/tasks?queue={queue}"),
            &marker["position"],
        )
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    let page: Value = res.json().await.unwrap();
    page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["title"].as_str().unwrap().to_owned())
        .collect()
}

async fn me_status(app: &TestApp, browser: &Browser) -> StatusCode {
    browser
        .request(app, Method::GET, "/v1/me")
        .send()
        .await
        .unwrap()
        .status()
}

#[tokio::test]
async fn a_cookie_sign_in_sets_three_secure_cookies_and_answers_no_token() {
    let app = TestApp::spawn().await;
    let ann = app.user("ann").await;

    let res = cookie_login(&app, &ann).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()[header::CACHE_CONTROL], "no-store");
    assert_eq!(res.headers().get_all(header::SET_COOKIE).iter().count(), 3);
    let set = set_cookies(&res);
    let (session, refresh, csrf) = (&set[SESSION], &set[REFRESH], &set[CSRF]);
    assert_eq!(
        session.1,
        format!(
            "{SESSION}={}; HttpOnly; Secure; SameSite=Strict; Path=/; Max-Age=900",
            session.0
        )
    );
    assert_eq!(
        refresh.1,
        format!(
            "{REFRESH}={}; HttpOnly; Secure; SameSite=Strict; Path=/v1/auth; Max-Age=3600",
            refresh.0
        )
    );
    assert_eq!(
        csrf.1,
        format!(
            "{CSRF}={}; Secure; SameSite=Strict; Path=/; Max-Age=3600",
            csrf.0
        ),
        "the CSRF cookie is readable by the page"
    );
    let claims = session.0.split('.').nth(1).unwrap();
    let claims: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(claims).unwrap()).unwrap();
    assert_eq!(
        claims["sub"],
        ann.id.to_string(),
        "the session cookie is ann's token"
    );
    assert!(refresh.0.len() >= 43);

    let body: Value = res.json().await.unwrap();
    let mut fields: Vec<&str> = body
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    fields.sort_unstable();
    assert_eq!(fields, ["csrf_token", "expires_in", "token_type"], "{body}");
    assert_eq!(body["token_type"], "Cookie");
    assert_eq!(body["expires_in"], 900);
    assert_eq!(body["csrf_token"], csrf.0.as_str());
    assert_eq!(URL_SAFE_NO_PAD.decode(&csrf.0).unwrap().len(), 32);

    // Without `session` (or with `token`) the answer is the token pair, as before.
    for session in [None, Some("token")] {
        let mut body = json!({"email": ann.email, "password": GOOD_PASSWORD});
        if let Some(session) = session {
            body["session"] = json!(session);
        }
        let res = app.client.post(app.url("/v1/auth/login")).json(&body);
        let res = res.send().await.unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        assert!(res.headers().get(header::SET_COOKIE).is_none());
        let pair: Value = res.json().await.unwrap();
        assert_eq!(pair["token_type"], "Bearer");
        assert!(pair["access_token"].is_string() && pair["refresh_token"].is_string());
    }
    let body = json!({"email": ann.email, "password": GOOD_PASSWORD, "session": "jar"});
    let res = app.client.post(app.url("/v1/auth/login")).json(&body);
    let res = res.send().await.unwrap();
    assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);
}

#[tokio::test]
async fn a_command_with_the_cookie_the_servers_origin_and_the_token_succeeds() {
    let app = TestApp::spawn().await;
    let bea = app.user("bea").await;
    let page = browser(&app, &bea).await;

    // Reads need neither Origin nor token.
    let res = page.request(&app, Method::GET, "/v1/me").send().await;
    let res = res.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let me: Value = res.json().await.unwrap();
    assert_eq!(me["id"], bea.id.to_string());

    let res = page.command(&app, Method::POST, "/v1/tasks");
    let res = res.json(&task("page")).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::CREATED);
    let created: Value = res.json().await.unwrap();
    let path = format!("/v1/tasks/{}", created["id"].as_str().unwrap());
    let res = app.get_at(&bea, &path, &created["position"]).await;
    let seen: Value = res.json().await.unwrap();
    assert_eq!(seen["creator"], bea.id.to_string(), "the task is bea's");
    assert_eq!(
        tasks_seen(&app, &bea, "page").await,
        ["written from a page"]
    );
}

#[tokio::test]
async fn an_origin_listed_in_configuration_may_send_commands_too() {
    let nats = std::env::var("NATS_URL").expect("NATS_URL");
    let mut settings = test_settings(&fresh_database().await, &nats);
    settings.http.allowed_origins = "https://app.example, https://ops.example:8443".into();
    let app = TestApp::spawn_with(settings, Parts::ALL).await;
    let cid = app.user("cid").await;
    let page = browser(&app, &cid).await;

    for (origin, queue) in [
        ("https://app.example", "app"),
        ("https://ops.example:8443", "ops"),
        (app.address.as_str(), "own"),
    ] {
        let res = page.request(&app, Method::POST, "/v1/tasks");
        let res = res
            .header(header::ORIGIN, origin)
            .header("X-CSRF-Token", &page.csrf);
        let res = res.json(&task(queue)).send().await.unwrap();
        assert_eq!(res.status(), StatusCode::CREATED, "{origin}");
    }
    for origin in [
        "https://evil.example",
        "http://app.example",
        "https://ops.example",
    ] {
        let res = page.request(&app, Method::POST, "/v1/tasks");
        let res = res
            .header(header::ORIGIN, origin)
            .header("X-CSRF-Token", &page.csrf);
        let res = res.json(&task("evil")).send().await.unwrap();
        assert_csrf_rejected(res, origin).await;
    }
    assert!(tasks_seen(&app, &cid, "evil").await.is_empty());
}

#[tokio::test]
async fn a_cookie_command_without_the_servers_own_origin_is_refused_and_changes_nothing() {
    let app = TestApp::spawn().await;
    let dee = app.user("dee").await;
    let page = browser(&app, &dee).await;
    let events = app.event_count().await;

    let other_port = format!("http://127.0.0.1:{}", app.port.wrapping_add(1));
    let other_scheme = app.address.replacen("http://", "https://", 1);
    let origins = [
        None,
        Some("null"),
        Some("https://evil.example"),
        Some(other_port.as_str()),
        Some(other_scheme.as_str()),
    ];
    for origin in origins {
        let mut req = page
            .request(&app, Method::POST, "/v1/tasks")
            .header("X-CSRF-Token", &page.csrf);
        if let Some(origin) = origin {
            req = req.header(header::ORIGIN, origin);
        }
        let res = req.json(&task("refused")).send().await.unwrap();
        assert_csrf_rejected(res, &format!("Origin {origin:?}")).await;
    }
    // Two Origin headers, one of them right, are no proof either.
    let res = page
        .command(&app, Method::POST, "/v1/tasks")
        .header(header::ORIGIN, "https://evil.example")
        .json(&task("refused"))
        .send()
        .await
        .unwrap();
    assert_csrf_rejected(res, "two Origin headers").await;

    assert_eq!(app.event_count().await, events, "a refusal appends nothing");
    assert!(tasks_seen(&app, &dee, "refused").await.is_empty());
}

#[tokio::test]
async fn a_cookie_command_without_its_sessions_token_is_refused_and_changes_nothing() {
    let app = TestApp::spawn().await;
    let eve = app.user("eve").await;
    let fay = app.user("fay").await;
    let page = browser(&app, &eve).await;
    let eves_other_page = browser(&app, &eve).await;
    let fays_page = browser(&app, &fay).await;
    assert_ne!(
        page.csrf, eves_other_page.csrf,
        "each sign-in has its own token"
    );

    let existing = app.create_task(&eve, "kept", "kept as it is", 0).await;
    let id = existing["id"].as_str().unwrap().to_owned();
    let events = app.event_count().await;

    let mut flipped = page.csrf.clone().into_bytes();
    flipped[0] = if flipped[0] == b'A' { b'B' } else { b'A' };
    let flipped = String::from_utf8(flipped).unwrap();
    let cases: Vec<(&str, Option<String>)> = vec![
        ("no token", None),
        ("an empty token", Some(String::new())),
        ("a token changed in one character", Some(flipped)),
        ("a token cut short", Some(page.csrf[..40].to_owned())),
        ("a token that is not base64url", Some("not a token!".into())),
        (
            "another user's session's token",
            Some(fays_page.csrf.clone()),
        ),
        (
            "the same user's other session's token",
            Some(eves_other_page.csrf.clone()),
        ),
        ("the access token", Some(page.session.clone())),
    ];
    for (case, token) in cases {
        for (path, body) in [
            ("/v1/tasks".to_owned(), task("refused")),
            (format!("/v1/tasks/{id}/cancel"), json!({})),
        ] {
            let mut req = page
                .request(&app, Method::POST, &path)
                .header(header::ORIGIN, &app.address);
            if let Some(token) = &token {
                req = req.header("X-CSRF-Token", token);
            }
            let res = req.json(&body).send().await.unwrap();
            assert_csrf_rejected(res, &format!("{case} on {path}")).await;
        }
    }
    // A token planted in the CSRF cookie is checked against the session, not the cookie.
    let planted = format!("{SESSION}={}; {CSRF}={}", page.session, fays_page.csrf);
    let res = app
        .client
        .post(app.url("/v1/tasks"))
        .header(header::COOKIE, planted)
        .header(header::ORIGIN, &app.address)
        .header("X-CSRF-Token", &fays_page.csrf)
        .json(&task("refused"))
        .send()
        .await
        .unwrap();
    assert_csrf_rejected(res, "a planted cookie and its token").await;

    assert_eq!(app.event_count().await, events, "a refusal appends nothing");
    assert!(tasks_seen(&app, &eve, "refused").await.is_empty());
    let res = app
        .get_at(&eve, &format!("/v1/tasks/{id}"), &existing["position"])
        .await;
    let seen: Value = res.json().await.unwrap();
    assert_eq!(seen["status"], "queued", "the task was not cancelled");
    assert_eq!(seen["version"], existing["version"]);
}

#[tokio::test]
async fn a_bearer_token_needs_no_csrf_proof_and_wins_over_the_cookie() {
    let app = TestApp::spawn().await;
    let gus = app.user("gus").await;
    let hal = app.user("hal").await;
    let hals_page = browser(&app, &hal).await;

    let res = app
        .client
        .post(app.url("/v1/tasks"))
        .bearer_auth(&gus.access_token)
        .header(header::ORIGIN, "https://evil.example")
        .json(&task("bearer"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        res.status(),
        StatusCode::CREATED,
        "a bearer needs no Origin or token"
    );

    // Gus's token and hal's cookie: the bearer speaks, and needs no proof.
    let res = hals_page
        .request(&app, Method::POST, "/v1/tasks")
        .bearer_auth(&gus.access_token)
        .json(&task("both"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::CREATED);
    let created: Value = res.json().await.unwrap();
    let path = format!("/v1/tasks/{}", created["id"].as_str().unwrap());
    let res = app.get_at(&gus, &path, &created["position"]).await;
    let seen: Value = res.json().await.unwrap();
    assert_eq!(seen["creator"], gus.id.to_string());

    let res = hals_page.request(&app, Method::GET, "/v1/me");
    let res = res.bearer_auth(&gus.access_token).send().await.unwrap();
    let me: Value = res.json().await.unwrap();
    assert_eq!(me["id"], gus.id.to_string());
    // A bad bearer is not rescued by a good cookie.
    let res = hals_page.request(&app, Method::GET, "/v1/me");
    let res = res.bearer_auth("not-a-token").send().await.unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn a_cookie_refresh_rotates_and_a_reused_refresh_cookie_ends_the_session() {
    let app = TestApp::spawn().await;
    let ivy = app.user("ivy").await;
    let first = browser(&app, &ivy).await;

    let res = first.command(&app, Method::POST, "/v1/auth/refresh");
    let res = res.send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()[header::CACHE_CONTROL], "no-store");
    let set = set_cookies(&res);
    assert_eq!(set.len(), 3);
    assert!(set[SESSION]
        .1
        .ends_with("; HttpOnly; Secure; SameSite=Strict; Path=/; Max-Age=900"));
    assert!(set[REFRESH]
        .1
        .ends_with("; HttpOnly; Secure; SameSite=Strict; Path=/v1/auth; Max-Age=3600"));
    let second = Browser::from_answer(&res);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["token_type"], "Cookie");
    assert!(body.get("access_token").is_none() && body.get("refresh_token").is_none());
    assert_eq!(body["csrf_token"], second.csrf.as_str());
    assert_ne!(second.session, first.session);
    assert_ne!(second.refresh, first.refresh);

    assert_eq!(
        me_status(&app, &first).await,
        StatusCode::UNAUTHORIZED,
        "the old session ended"
    );
    assert_eq!(me_status(&app, &second).await, StatusCode::OK);
    let res = second.command(&app, Method::POST, "/v1/tasks");
    let res = res.json(&task("after")).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::CREATED);

    // `{}` is the same as no body; the spent refresh cookie is reuse: the family ends.
    let reuse = first.command(&app, Method::POST, "/v1/auth/refresh");
    let res = reuse.json(&json!({})).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert!(res.headers().get(header::SET_COOKIE).is_none());
    assert_eq!(
        me_status(&app, &second).await,
        StatusCode::UNAUTHORIZED,
        "reuse of the refresh cookie ends the session that rotated from it"
    );
    let res = second.command(&app, Method::POST, "/v1/auth/refresh");
    let res = res.send().await.unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        app.get(&ivy, "/v1/me").await.status(),
        StatusCode::OK,
        "other sessions stand"
    );
}

#[tokio::test]
async fn a_cookie_refresh_without_its_proofs_is_refused_and_rotates_nothing() {
    let app = TestApp::spawn().await;
    let jon = app.user("jon").await;
    let page = browser(&app, &jon).await;
    let other = browser(&app, &app.user("kim").await).await;

    let refresh = || page.request(&app, Method::POST, "/v1/auth/refresh");
    let cases = [
        ("no Origin", refresh().header("X-CSRF-Token", &page.csrf)),
        (
            "another origin",
            refresh()
                .header(header::ORIGIN, "https://evil.example")
                .header("X-CSRF-Token", &page.csrf),
        ),
        ("no token", refresh().header(header::ORIGIN, &app.address)),
        (
            "another session's token",
            refresh()
                .header(header::ORIGIN, &app.address)
                .header("X-CSRF-Token", &other.csrf),
        ),
    ];
    for (case, req) in cases {
        assert_csrf_rejected(req.send().await.unwrap(), case).await;
    }
    // Nothing rotated: the session stands, and its refresh cookie was never spent (a spent one
    // would now be reuse, a 401).
    assert_eq!(me_status(&app, &page).await, StatusCode::OK);
    let res = page.command(&app, Method::POST, "/v1/auth/refresh");
    assert_eq!(res.send().await.unwrap().status(), StatusCode::OK);

    // Without a body token or a refresh cookie there is nothing to refresh.
    let res = app.client.post(app.url("/v1/auth/refresh")).send().await;
    assert_eq!(res.unwrap().status(), StatusCode::UNAUTHORIZED);
    // A body token is used as before, cookies or not, with no proof needed.
    let res = other
        .request(&app, Method::POST, "/v1/auth/refresh")
        .json(&json!({"refresh_token": jon.refresh_token}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert!(res.headers().get(header::SET_COOKIE).is_none());
    let pair: Value = res.json().await.unwrap();
    assert_eq!(pair["token_type"], "Bearer");
}

#[tokio::test]
async fn a_cookie_logout_clears_the_cookies_and_ends_the_session() {
    let app = TestApp::spawn().await;
    let lea = app.user("lea").await;
    let page = browser(&app, &lea).await;
    let other_page = browser(&app, &lea).await;

    let res = page
        .request(&app, Method::POST, "/v1/auth/logout")
        .header(header::ORIGIN, &app.address)
        .send()
        .await
        .unwrap();
    assert_csrf_rejected(res, "a logout without the token").await;
    let res = page
        .request(&app, Method::POST, "/v1/auth/logout")
        .header("X-CSRF-Token", &page.csrf)
        .send()
        .await
        .unwrap();
    assert_csrf_rejected(res, "a logout without an Origin").await;
    assert_eq!(
        me_status(&app, &page).await,
        StatusCode::OK,
        "the refused logouts ended nothing"
    );

    let res = page.command(&app, Method::POST, "/v1/auth/logout");
    let res = res.send().await.unwrap();
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    let set = set_cookies(&res);
    assert_eq!(
        set.values()
            .map(|(_, line)| line.as_str())
            .collect::<Vec<_>>(),
        [
            "__Host-bl_csrf=; Secure; SameSite=Strict; Path=/; Max-Age=0",
            "__Host-bl_session=; HttpOnly; Secure; SameSite=Strict; Path=/; Max-Age=0",
            "__Secure-bl_refresh=; HttpOnly; Secure; SameSite=Strict; Path=/v1/auth; Max-Age=0",
        ]
    );

    assert_eq!(
        me_status(&app, &page).await,
        StatusCode::UNAUTHORIZED,
        "the session ended"
    );
    let res = page.command(&app, Method::POST, "/v1/auth/refresh");
    let res = res.send().await.unwrap();
    assert_eq!(
        res.status(),
        StatusCode::UNAUTHORIZED,
        "and its refresh cookie with it"
    );
    assert_eq!(
        me_status(&app, &other_page).await,
        StatusCode::OK,
        "other sign-ins stand"
    );
    assert_eq!(app.get(&lea, "/v1/me").await.status(), StatusCode::OK);

    // Logging out with a body token still works as before.
    let res = app
        .client
        .post(app.url("/v1/auth/logout"))
        .json(&json!({"refresh_token": lea.refresh_token}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    assert!(res.headers().get(header::SET_COOKIE).is_none());
    assert_eq!(
        app.get(&lea, "/v1/me").await.status(),
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn logging_out_everywhere_with_the_cookie_needs_its_proofs_and_ends_every_session() {
    let app = TestApp::spawn().await;
    let max = app.user("max").await;
    let page = browser(&app, &max).await;

    let res = page
        .request(&app, Method::POST, "/v1/auth/logout-all")
        .header(header::ORIGIN, &app.address)
        .send()
        .await
        .unwrap();
    assert_csrf_rejected(res, "logout-all without the token").await;
    assert_eq!(app.get(&max, "/v1/me").await.status(), StatusCode::OK);
    assert_eq!(me_status(&app, &page).await, StatusCode::OK);

    let res = page.command(&app, Method::POST, "/v1/auth/logout-all");
    let res = res.send().await.unwrap();
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    let set = set_cookies(&res);
    assert_eq!(set.len(), 3);
    assert!(set
        .values()
        .all(|(value, line)| value.is_empty() && line.ends_with("Max-Age=0")));
    assert_eq!(me_status(&app, &page).await, StatusCode::UNAUTHORIZED);
    assert_eq!(
        app.get(&max, "/v1/me").await.status(),
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_stream_opens_with_the_session_cookie_alone() {
    let app = TestApp::spawn().await;
    let ned = app.user("ned").await;
    let page = browser(&app, &ned).await;
    wait_for_hub(&app, 2).await;

    // As EventSource sends it: the cookies, no Origin, no token, no header.
    let request = app
        .client
        .get(app.url("/v1/streams/tasks"))
        .header(header::COOKIE, page.cookies_for("/v1/streams/tasks"));
    let mut stream = SseStream::from_request(request, "tasks").await;
    let created = app.create_task(&ned, "streamed", "seen live", 0).await;
    let message = stream.next_message().await;
    assert_eq!(message.event, "TaskCreated");
    assert_eq!(message.data["task_id"], created["id"]);

    let res = app.client.get(app.url("/v1/streams/tasks")).send().await;
    assert_eq!(
        res.unwrap().status(),
        StatusCode::UNAUTHORIZED,
        "nothing is no credential"
    );
    let forged = Browser {
        session: "not-a-token".into(),
        ..page
    };
    let res = forged.request(&app, Method::GET, "/v1/streams/tasks");
    assert_eq!(res.send().await.unwrap().status(), StatusCode::UNAUTHORIZED);
    app.shutdown.trigger().await;
}

#[tokio::test]
async fn the_document_describes_cookie_sessions_and_their_refusal() {
    let app = TestApp::spawn().await;
    let res = app.client.get(app.url("/openapi.json")).send().await;
    let doc: Value = res.unwrap().json().await.unwrap();
    let schemes = &doc["components"]["securitySchemes"];
    assert_eq!(schemes["session_cookie"]["in"], "cookie");
    assert_eq!(schemes["session_cookie"]["name"], SESSION);
    assert_eq!(schemes["csrf_token"]["in"], "header");
    assert_eq!(schemes["csrf_token"]["name"], "X-CSRF-Token");

    let op = |method: &str, path: &str| doc["paths"][path][method].clone();
    let requirements = |method: &str, path: &str| {
        op(method, path)["security"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    };
    let cookie = json!({"session_cookie": []});
    let cookie_and_token = json!({"session_cookie": [], "csrf_token": []});
    assert!(requirements("get", "/v1/me").contains(&cookie));
    assert!(requirements("get", "/v1/streams/{topic}").contains(&cookie));
    assert!(requirements("post", "/v1/tasks").contains(&cookie_and_token));
    assert!(requirements("post", "/v1/tasks").contains(&json!({"bearer": []})));
    assert!(requirements("post", "/v1/auth/logout-all").contains(&cookie_and_token));

    for (method, path) in [
        ("post", "/v1/tasks"),
        ("post", "/v1/bounties/{id}/approve"),
        ("post", "/v1/auth/logout-all"),
        ("post", "/v1/auth/refresh"),
        ("post", "/v1/auth/logout"),
    ] {
        let refusal = op(method, path)["responses"]["403"].to_string();
        assert!(
            refusal.contains(CSRF_REJECTED),
            "{method} {path}: {refusal}"
        );
    }
    let read_refusal = op("get", "/v1/me")["responses"]["403"].to_string();
    assert!(
        !read_refusal.contains(CSRF_REJECTED),
        "a read is never refused so"
    );

    let kinds = doc["components"]["schemas"]["SessionKind"].to_string();
    assert!(
        kinds.contains("\"token\"") && kinds.contains("\"cookie\""),
        "{kinds}"
    );
    let login = doc["components"]["schemas"]["Login"]["properties"]["session"].to_string();
    assert!(login.contains("SessionKind"), "{login}");
    let answer = op("post", "/v1/auth/login")["responses"]["200"].to_string();
    assert!(
        answer.contains("SignedIn") && answer.contains("Set-Cookie"),
        "{answer}"
    );
    let signed_in = doc["components"]["schemas"]["SignedIn"].to_string();
    assert!(
        signed_in.contains("CookieSession") && signed_in.contains("TokenPair"),
        "{signed_in}"
    );
    let cookie_session = doc["components"]["schemas"]["CookieSession"]["required"].to_string();
    assert!(cookie_session.contains("csrf_token"), "{cookie_session}");
    let params = op("post", "/v1/auth/refresh")["parameters"].to_string();
    assert!(
        params.contains(REFRESH) && params.contains("\"cookie\""),
        "{params}"
    );
}
