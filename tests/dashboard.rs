//! The live dashboard in a real browser: Debian's headless Chromium, driven by playwright-core
//! (`tests/browser/dashboard.mjs`, installed by `scripts/browser-deps`), signs in to the real
//! `bountyline serve` binary and follows its streams while this test issues commands, kills
//! the server with SIGKILL and starts it again on the same port.
//!
//! Coordination: the Node script prints `{"step":"ready"}` once the page is live, then answers
//! one JSON line per command read on its stdin (`snapshot`, `screenshot`, `quit`). Every
//! assertion is made here, on snapshots of what the page shows, polled with deadlines.
//! Screenshots go to `tests/output/dashboard/` (git-ignored); the first test's also becomes
//! `docs/dashboard.png` when `BOUNTYLINE_UPDATE_SCREENSHOT=1`.
//!
//! Signing in through the form opens a cookie session (httpOnly cookies, CSRF token on
//! commands); a page opened with `#token=` holds bearer tokens.

mod common;

use bountyline::startup::Parts;
use common::{fresh_database, test_settings, TestApp, TestUser};
use serde::Deserialize;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};
use tokio::time::{timeout, Instant};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// The browser resumes its streams itself, sending Last-Event-ID.
#[tokio::test]
async fn the_dashboard_follows_commands_live_and_misses_no_event_across_a_server_kill() {
    dashboard_across_a_server_kill(None, "dashboard.png").await;
}

/// Access tokens live 4 s, so the page renews its cookie session every few seconds (each
/// renewal ends its streams on the server) and, when the server goes away, reopens its streams
/// with a fresh session, resuming each by Last-Event-ID.
#[tokio::test]
async fn the_dashboard_misses_no_event_when_it_must_reopen_its_streams_with_a_fresh_token() {
    dashboard_across_a_server_kill(Some(4), "dashboard-reopened.png").await;
}

/// Signs in, issues commands and checks the page follows; kills the server, issues more, starts
/// it again on the same port and checks the page recovers with every event exactly once.
async fn dashboard_across_a_server_kill(access_ttl_secs: Option<u32>, screenshot: &str) {
    install_browser().await;
    let db = fresh_database().await;
    let settings = test_settings(&db, &std::env::var("NATS_URL").expect("NATS_URL"));
    // Workers and a second API in this process: the second takes commands while the real
    // server, the one the browser talks to, is down.
    let workers = TestApp::spawn_with(settings.clone(), Parts::WORKERS).await;
    let api = TestApp::spawn_with(settings.clone(), Parts::API).await;
    let auditor = api.auditor().await;
    let poster = api.user("poster").await;
    let mut server = Server::start(&settings, access_ttl_secs).await;
    let mut page = Page::open(&server.base, SignIn::Form(&auditor)).await;

    let first = page
        .wait_for("the first stats snapshot", |s| {
            s.stat("open_bounties") == "0"
        })
        .await;
    assert!(first.feed_shown, "an auditor sees the events feed");

    // The form opened a cookie session: nothing a script on the page could steal, cookies as
    // they must be, and a page of another origin on the same site cannot act with them (were
    // its task created, the queue's counts below would be off by one).
    assert!(
        !first.script_sees_credentials,
        "a token or an auth cookie is within a script's reach"
    );
    let cookies = page.call(json!({"cmd": "cookies"})).await;
    for (name, http_only, path) in [
        ("__Host-bl_session", true, "/"),
        ("__Secure-bl_refresh", true, "/v1/auth"),
        ("__Host-bl_csrf", false, "/"),
    ] {
        let cookie = cookies
            .as_array()
            .and_then(|all| all.iter().find(|c| c["name"] == name))
            .unwrap_or_else(|| panic!("no cookie {name}: {cookies}"));
        assert_eq!(cookie["httpOnly"], http_only, "{cookie}");
        assert_eq!(cookie["secure"], true, "{cookie}");
        assert_eq!(cookie["sameSite"], "Strict", "{cookie}");
        assert_eq!(cookie["path"], path, "{cookie}");
    }
    let forged = page
        .call(json!({
            "cmd": "foreign_post",
            "path": "/v1/tasks",
            "body": r#"{"queue":"dash","title":"forged by another origin"}"#,
        }))
        .await;
    assert_eq!(
        forged["status"], 403,
        "the forged command is refused: {forged}"
    );

    // While everything runs: tasks move, a bounty is posted, figures and feed follow.
    for title in ["index the archive", "resize images", "send the digest"] {
        api.create_task(&poster, "dash", title, 0).await;
    }
    workers.settle().await; // a claim reads the tasks read model
    claim_and_complete(&api, &poster, "dash").await;
    api.deposit(&poster, 10_000, "USD").await;
    post_bounty(&api, &poster, "Translate the handbook", 2_500).await;
    workers.settle().await;
    page.wait_for("the first commands on the page", |s| {
        s.stat("tasks_queued") == "2"
            && s.stat("tasks_completed") == "1"
            && s.stat("open_bounties") == "1"
            && s.stat("escrow_held").contains("2500")
            && s.stat("events_per_minute") != "0"
            && s.queue("dash") == Some(vec![2, 0, 1, 0, 0])
            && s.bounty("Translate the handbook") == Some("open")
            && s.worker(&poster) == Some("completed")
    })
    .await;
    let head = workers.head().await;
    page.wait_for("every event so far in the feed", |s| {
        s.newest() == Some(head)
    })
    .await;

    if let Some(ttl) = access_ttl_secs {
        // Not while the page refreshes its token: a rotation the server committed but could
        // not answer leaves the page a spent refresh token, which signs it out (by design).
        let fresh = i64::from(ttl) * 1000 - 1500;
        page.wait_for("a token refreshed just now", |s| {
            s.token_expires_in_ms > fresh
        })
        .await;
    }
    // SIGKILL the server the browser is connected to: the page says so.
    server.kill();
    page.wait_for("the page to show it is disconnected", |s| {
        s.connection == "disconnected"
    })
    .await;
    // Commands while it is down, through the other API.
    api.create_task(&poster, "dash", "while the server was down", 0)
        .await;
    post_bounty(&api, &poster, "Proofread the release notes", 1_500).await;
    server.restart().await;
    // And after it is back.
    api.create_task(&poster, "dash", "after the restart", 0)
        .await;
    workers.settle().await;
    let head = workers.head().await;
    let last = page
        .wait_for("the page to recover and catch up", |s| {
            s.connection == "live"
                && s.newest() == Some(head)
                && s.stat("tasks_queued") == "4"
                && s.stat("open_bounties") == "2"
                && s.bounty("Proofread the release notes") == Some("open")
        })
        .await;

    // The feed holds exactly the store's events in its window, newest on top, each once.
    assert!(
        last.feed.windows(2).all(|w| w[0] > w[1]),
        "the feed is newest first with no position twice: {:?}",
        last.feed
    );
    let oldest = *last.feed.last().expect("a feed");
    let stored: Vec<i64> = sqlx::query_scalar(
        "SELECT position FROM events WHERE position BETWEEN $1 AND $2 ORDER BY position DESC",
    )
    .bind(oldest)
    .bind(head)
    .fetch_all(&workers.pool)
    .await
    .expect("positions");
    assert_eq!(last.feed, stored, "the feed against the store");
    let before_page: i64 = sqlx::query_scalar("SELECT count(*) FROM events WHERE position < $1")
        .bind(oldest)
        .fetch_one(&workers.pool)
        .await
        .expect("count");
    assert_eq!(
        before_page, 0,
        "the feed starts at the first event after sign-in"
    );
    // The page resumes every stream by Last-Event-ID (the client reads streams over fetch,
    // which can send it on every reconnect), so it never reads the feed's history from the
    // audit API (which records every read), not even after its token expired.
    let fills: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM audit_reads WHERE actor = $1 AND what = 'events.json'",
    )
    .bind(auditor.id)
    .fetch_one(&workers.pool)
    .await
    .expect("audit reads");
    assert_eq!(fills, 0, "resumed by Last-Event-ID, with no gap to fill");
    assert!(
        last.problems.is_empty(),
        "page problems: {:?}",
        last.problems
    );

    page.screenshot(screenshot).await;
    page.quit().await;
}

#[tokio::test]
async fn a_member_opened_with_a_token_in_the_fragment_sees_the_figures_but_no_event_feed() {
    install_browser().await;
    let app = TestApp::spawn().await;
    let member = app.user("member").await;
    let mut page = Page::open(&app.address, SignIn::Token(&member.access_token)).await;
    let shown = page
        .wait_for("the figures", |s| s.stat("open_bounties") == "0")
        .await;
    assert!(
        !shown.feed_shown,
        "the events feed is for auditors and admins"
    );
    assert_eq!(shown.connection, "live");
    assert_eq!(
        shown.fragment, "",
        "the token does not stay in the address bar"
    );

    // Signing out forgets everything; a wrong password is refused on the form.
    page.call(json!({"cmd": "click", "selector": "#logout"}))
        .await;
    let out = page
        .wait_for("signing out", |s| s.connection == "signed-out")
        .await;
    assert_eq!(out.stat("open_bounties"), "", "the figures are forgotten");
    for (selector, value) in [("#email", member.email.as_str()), ("#password", "wrong")] {
        page.call(json!({"cmd": "fill", "selector": selector, "value": value}))
            .await;
    }
    page.call(json!({"cmd": "click", "selector": "#login button[type=submit]"}))
        .await;
    let refused = page
        .wait_for("the refusal", |s| !s.login_error.is_empty())
        .await;
    assert_eq!(refused.connection, "signed-out");
    assert!(
        refused.problems.is_empty(),
        "page problems: {:?}",
        refused.problems
    );
    page.quit().await;
}

/// Runs `scripts/browser-deps`, which installs Chromium and playwright-core when missing.
async fn install_browser() {
    let script = Path::new(ROOT).join("scripts/browser-deps");
    let run = Command::new(&script).kill_on_drop(true).status();
    let status = timeout(Duration::from_secs(900), run)
        .await
        .expect("scripts/browser-deps did not finish within 15 minutes")
        .expect("run scripts/browser-deps");
    assert!(status.success(), "scripts/browser-deps failed: {status}");
}

async fn claim_and_complete(api: &TestApp, worker: &TestUser, queue: &str) {
    api.may_work(queue, worker).await;
    let res = api
        .post(worker, &format!("/v1/queues/{queue}/claim"), &json!({}))
        .await;
    assert_eq!(res.status(), 200, "claim");
    let task: Value = res.json().await.expect("json");
    let id = task["id"].as_str().expect("task id");
    let res = api
        .post(worker, &format!("/v1/tasks/{id}/complete"), &json!({}))
        .await;
    assert_eq!(res.status(), 200, "complete");
}

async fn post_bounty(api: &TestApp, poster: &TestUser, title: &str, amount: i64) {
    let body = json!({
        "title": title,
        "description": "posted by the dashboard test",
        "reward": {"amount": amount, "currency": "USD"},
    });
    let res = api.post(poster, "/v1/bounties", &body).await;
    assert_eq!(res.status(), 201, "post bounty");
}

/// The real `bountyline serve`, on a port that stays the same across restarts.
struct Server {
    child: Option<std::process::Child>,
    settings: bountyline::config::Settings,
    access_ttl_secs: Option<u32>,
    port: u16,
    base: String,
    client: reqwest::Client,
}

impl Server {
    async fn start(
        settings: &bountyline::config::Settings,
        access_ttl_secs: Option<u32>,
    ) -> Server {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let mut server = Server {
            child: None,
            settings: settings.clone(),
            access_ttl_secs,
            port,
            base: format!("http://127.0.0.1:{port}"),
            client: reqwest::Client::new(),
        };
        server.restart().await;
        server
    }

    async fn restart(&mut self) {
        let mut command = common::bountyline_command(
            Path::new(env!("CARGO_BIN_EXE_bountyline")),
            "serve",
            &self.settings,
            self.port,
        );
        if let Some(ttl) = self.access_ttl_secs {
            command.env("BOUNTYLINE_AUTH__ACCESS_TTL_SECS", ttl.to_string());
        }
        let child = command
            .env("BOUNTYLINE_SSE__KEEP_ALIVE_SECS", "1")
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .spawn()
            .expect("start bountyline serve");
        self.child = Some(child);
        common::wait_ready(&self.client, &self.base, Duration::from_secs(20)).await;
    }

    /// SIGKILL: no goodbye to the browser's streams.
    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().expect("kill the server");
            child.wait().expect("reap the server");
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}

/// What the page shows, as `dashboard.mjs` reads it.
#[derive(Debug, Deserialize)]
struct Snapshot {
    connection: String,
    stats: HashMap<String, Option<String>>,
    queues: Vec<QueueRow>,
    bounties: Vec<BountyRow>,
    /// `data-position` of every feed row, top to bottom.
    feed: Vec<i64>,
    feed_shown: bool,
    /// `location.hash`.
    fragment: String,
    /// What the sign-in form says went wrong.
    login_error: String,
    /// The workers panel: each worker's id and latest activity.
    workers: Vec<WorkerRow>,
    /// How long the page's access token has left.
    token_expires_in_ms: i64,
    /// Whether a script on the page can read a token or an auth cookie.
    script_sees_credentials: bool,
    problems: Vec<String>,
}

#[derive(Debug, Deserialize)]
struct QueueRow {
    queue: String,
    counts: Vec<i64>,
}

#[derive(Debug, Deserialize)]
struct WorkerRow {
    worker: String,
    doing: String,
}

#[derive(Debug, Deserialize)]
struct BountyRow {
    title: String,
    status: String,
}

impl Snapshot {
    fn stat(&self, name: &str) -> &str {
        self.stats
            .get(name)
            .and_then(|v| v.as_deref())
            .unwrap_or("")
    }

    fn queue(&self, name: &str) -> Option<Vec<i64>> {
        self.queues
            .iter()
            .find(|q| q.queue == name)
            .map(|q| q.counts.clone())
    }

    fn bounty(&self, title: &str) -> Option<&str> {
        self.bounties
            .iter()
            .find(|b| b.title == title)
            .map(|b| b.status.as_str())
    }

    /// What the workers panel says `worker` did last.
    fn worker(&self, worker: &TestUser) -> Option<&str> {
        let id = worker.id.to_string();
        self.workers
            .iter()
            .find(|w| w.worker == id)
            .map(|w| w.doing.as_str())
    }

    fn newest(&self) -> Option<i64> {
        self.feed.first().copied()
    }
}

/// How the page is signed in: through its form, or with `#token=` in its address.
enum SignIn<'a> {
    Form(&'a TestUser),
    Token(&'a str),
}

/// The browser, through `tests/browser/dashboard.mjs`.
struct Page {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Lines<BufReader<ChildStdout>>,
}

impl Page {
    /// Starts Chromium, signs in and waits until every stream is live.
    async fn open(base: &str, sign_in: SignIn<'_>) -> Page {
        let mut command = Command::new("node");
        match sign_in {
            SignIn::Form(user) => command
                .env("DASHBOARD_EMAIL", &user.email)
                .env("DASHBOARD_PASSWORD", &user.password),
            SignIn::Token(token) => command.env("DASHBOARD_TOKEN", token),
        };
        let mut child = command
            .arg(Path::new(ROOT).join("tests/browser/dashboard.mjs"))
            .env("DASHBOARD_URL", base)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("start node tests/browser/dashboard.mjs");
        let stdin = child.stdin.take();
        let stdout = child.stdout.take().expect("node's stdout");
        let mut page = Page {
            child,
            stdin,
            lines: BufReader::new(stdout).lines(),
        };
        let ready = page
            .read(Duration::from_secs(60), "the page to sign in")
            .await;
        assert_eq!(ready, json!({"step": "ready"}), "the browser did not start");
        page
    }

    async fn read(&mut self, limit: Duration, what: &str) -> Value {
        let line = timeout(limit, self.lines.next_line())
            .await
            .unwrap_or_else(|_| panic!("the browser gave no answer within {limit:?} to {what}"))
            .expect("read from node")
            .unwrap_or_else(|| panic!("the browser script ended while waiting for {what}"));
        let answer: Value = serde_json::from_str(&line)
            .unwrap_or_else(|e| panic!("the browser script said {line:?}: {e}"));
        if let Some(error) = answer.get("error") {
            panic!("the browser script failed at {what}: {error}");
        }
        answer
    }

    async fn call(&mut self, command: Value) -> Value {
        let stdin = self.stdin.as_mut().expect("node's stdin");
        let line = format!("{command}\n");
        stdin
            .write_all(line.as_bytes())
            .await
            .expect("write to node");
        stdin.flush().await.expect("flush to node");
        let what = command["cmd"].as_str().unwrap_or("a command").to_owned();
        self.read(Duration::from_secs(20), &what).await["ok"].take()
    }

    async fn snapshot(&mut self) -> Snapshot {
        serde_json::from_value(self.call(json!({"cmd": "snapshot"})).await).expect("a snapshot")
    }

    /// Polls the page until `check` holds, failing after 20 s with what it last showed.
    async fn wait_for(&mut self, what: &str, check: impl Fn(&Snapshot) -> bool) -> Snapshot {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let snapshot = self.snapshot().await;
            if check(&snapshot) {
                return snapshot;
            }
            if Instant::now() > deadline {
                panic!("timed out waiting for {what}; the page shows {snapshot:#?}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Saves the page as `tests/output/dashboard/<name>`; `dashboard.png` also becomes the
    /// documentation's picture when asked to.
    async fn screenshot(&mut self, name: &str) {
        let dir = Path::new(ROOT).join("tests/output/dashboard");
        std::fs::create_dir_all(&dir).expect("create tests/output/dashboard");
        let path: PathBuf = dir.join(name);
        self.call(json!({"cmd": "screenshot", "path": path})).await;
        let update = std::env::var("BOUNTYLINE_UPDATE_SCREENSHOT").as_deref() == Ok("1");
        if update && name == "dashboard.png" {
            std::fs::copy(&path, Path::new(ROOT).join("docs/dashboard.png"))
                .expect("copy the screenshot to docs/dashboard.png");
        }
    }

    async fn quit(mut self) {
        self.call(json!({"cmd": "quit"})).await;
        let ended = timeout(Duration::from_secs(10), self.child.wait()).await;
        assert!(
            ended.is_ok_and(|status| status.is_ok_and(|s| s.success())),
            "the browser script did not end cleanly"
        );
    }
}

impl Drop for Page {
    /// The end of its stdin makes the script close Chromium; the kill on drop is the backstop.
    fn drop(&mut self) {
        self.stdin.take();
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while std::time::Instant::now() < deadline {
            if !matches!(self.child.try_wait(), Ok(None)) {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}
