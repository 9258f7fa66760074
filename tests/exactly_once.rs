//! Exactly once when the outcome is unknown (DESIGN.md guarantee 3), at the wire: the API's
//! connection to Postgres runs through a fault proxy (`campaign/wire`), which lets the group
//! commit's `append_group` statement reach Postgres and commit, then drops its answer and cuts
//! the connection. The client is told 503 `outcome-unknown`; its retry with the same
//! Idempotency-Key must get the original answer, and the effect must have happened once.
//!
//! One test per command route, each checked against what the client sent and was told: the
//! retry's answer names what the store holds under the key, a third try replays it, and the
//! domain shows one effect (one task, one claim, one hold, one application, one payout, one
//! withdrawal, one credit, one deposit).

mod common;

use bountyline::startup::Parts;
use bountyline::store::{APPLICATION_NAME, FLUSHER_NAME};
use bountyline_wire::{Proxy, Rule};
use common::*;
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use uuid::Uuid;

const APPEND: &str = "append_group";

/// The app, every one of its database connections through a fault proxy.
async fn behind_proxy() -> (TestApp, Proxy) {
    let url = fresh_database().await;
    let (head, rest) = url.split_once('@').expect("a URL with credentials");
    let (server, database) = rest.split_once('/').expect("a URL with a database");
    let upstream: SocketAddr = server.parse().expect("Postgres on a loopback address");
    let proxy = Proxy::start(upstream).await.expect("the fault proxy");
    let through = format!("{head}@{}/{database}", proxy.address());
    let nats = std::env::var("NATS_URL").expect("NATS_URL");
    let app = TestApp::spawn_with(test_settings(&through, &nats), Parts::ALL).await;
    (app, proxy)
}

/// What the client was told.
#[derive(Debug, Clone, PartialEq)]
struct Told {
    status: u16,
    body: Value,
}

async fn send(app: &TestApp, user: &TestUser, path: &str, body: &Value, key: &str) -> Told {
    let res = app
        .client
        .post(app.url(path))
        .bearer_auth(&user.access_token)
        .header("Idempotency-Key", key)
        .json(body)
        .send()
        .await
        .expect("request");
    told(res).await
}

async fn told(res: reqwest::Response) -> Told {
    let status = res.status().as_u16();
    let retry_after = res.headers().get("retry-after").is_some();
    let body = res.json().await.unwrap_or(Value::Null);
    if status == 503 {
        assert!(retry_after, "a 503 says when to retry: {body}");
    }
    Told { status, body }
}

/// The command stored under (user, key): `(aggregate_id, last_sequence, position)`.
async fn recorded(app: &TestApp, actor: &str, key: &str) -> Option<(String, i64, i64)> {
    sqlx::query_as(
        "SELECT aggregate_id, last_sequence, position FROM command_keys \
         WHERE actor = $1 AND idempotency_key = $2",
    )
    .bind(actor)
    .bind(key)
    .fetch_optional(&app.pool)
    .await
    .expect("command_keys")
}

/// Commands in the store whose events carry this actor and key.
async fn commands_under(app: &TestApp, actor: &str, key: &str) -> i64 {
    sqlx::query_scalar(
        "SELECT count(DISTINCT metadata ->> 'command_id') FROM events \
         WHERE metadata ->> 'actor' = $1 AND metadata ->> 'idempotency_key' = $2",
    )
    .bind(actor)
    .bind(key)
    .fetch_one(&app.pool)
    .await
    .expect("count")
}

fn assert_outcome_unknown(first: &Told) {
    assert_eq!(first.status, 503, "the cut try: {:?}", first.body);
    assert_eq!(
        first.body["type"], "https://bountyline.dev/problems/outcome-unknown",
        "{:?}",
        first.body
    );
}

/// Sends the request with the committer's group cut after its commit, then retries it twice
/// with the same key. Returns the retry's answer, after checking: the first try was told
/// `outcome-unknown` though it committed; the retry answers what the store recorded under the
/// key, as a success; the third try replays it exactly; one command is stored under the key.
async fn cut_after_commit(
    app: &TestApp,
    proxy: &Proxy,
    user: &TestUser,
    path: &str,
    body: &Value,
) -> Told {
    cut_then_retry_on(app, app, proxy, user, path, body).await
}

/// As [`cut_after_commit`], the retry sent to `retry_on` (another API process on the same
/// store, which has none of the first one's memory of the aggregate).
async fn cut_then_retry_on(
    app: &TestApp,
    retry_on: &TestApp,
    proxy: &Proxy,
    user: &TestUser,
    path: &str,
    body: &Value,
) -> Told {
    let key = format!("k-{}", Uuid::new_v4());
    let actor = user.id.to_string();
    let fired = proxy.fired();
    proxy.arm(Rule::after_answer(APPLICATION_NAME, APPEND));
    let first = send(app, user, path, body, &key).await;
    assert_eq!(proxy.fired(), fired + 1, "the cut happened");
    assert_outcome_unknown(&first);
    let stored = recorded(app, &actor, &key).await;
    let (id, version, position) = stored.expect("the cut try committed");

    let retry = send(retry_on, user, path, body, &key).await;
    assert!(
        retry.status == 200 || retry.status == 201,
        "the retry: {retry:?}"
    );
    assert_eq!(retry.body["position"], position, "{retry:?}");
    assert_eq!(retry.body["version"], version, "{retry:?}");
    assert_eq!(retry.body["id"].as_str(), Some(id.as_str()), "{retry:?}");
    let third = send(app, user, path, body, &key).await;
    assert_eq!(third, retry, "a later retry replays the answer");
    assert_eq!(commands_under(app, &actor, &key).await, 1);
    retry
}

async fn count(app: &TestApp, sql: &str, bind: &str) -> i64 {
    sqlx::query_scalar(sql)
        .bind(bind)
        .fetch_one(&app.pool)
        .await
        .expect("count")
}

const WITHDRAWALS: &str = "/v1/wallets/me/withdrawals";

/// A member with 1,000 USD in their wallet.
async fn saver(app: &TestApp) -> TestUser {
    let user = app.user("saver").await;
    app.deposit(&user, 1_000, "USD").await;
    user
}

/// A withdrawal of 100 USD.
fn hundred() -> Value {
    json!({"amount": 100, "currency": "USD"})
}

#[tokio::test]
async fn a_withdrawal_cut_after_its_commit_is_requested_once_and_its_retry_is_told_so() {
    let (app, proxy) = behind_proxy().await;
    let user = saver(&app).await;
    let retry = cut_after_commit(&app, &proxy, &user, WITHDRAWALS, &hundred()).await;
    assert_eq!(retry.status, 201, "a recovered 201 stays 201");
    app.settle().await;
    assert_eq!(app.usd(&user).await, (900, 100), "held once, not twice");
    let requested: Vec<String> = sqlx::query_scalar(
        "SELECT payload -> 'WithdrawalRequested' ->> 'withdrawal_id' FROM events \
         WHERE event_type = 'WithdrawalRequested' AND aggregate_id = $1",
    )
    .bind(user.id.to_string())
    .fetch_all(&app.pool)
    .await
    .unwrap();
    assert_eq!(requested, [retry.body["withdrawal_id"].as_str().unwrap()]);
}

#[tokio::test]
async fn a_task_created_with_a_cut_after_its_commit_exists_once() {
    let (app, proxy) = behind_proxy().await;
    let user = app.user("creator").await;
    let body = json!({"queue": "cuts", "title": "resize"});
    let retry = cut_after_commit(&app, &proxy, &user, "/v1/tasks", &body).await;
    assert_eq!(retry.status, 201);
    let created = "SELECT count(*) FROM events WHERE event_type = 'TaskCreated' \
                   AND metadata ->> 'actor' = $1";
    assert_eq!(count(&app, created, &user.id.to_string()).await, 1);
}

#[tokio::test]
async fn a_claim_cut_after_its_commit_hands_out_the_same_task_and_leaves_the_next_queued() {
    let (app, proxy) = behind_proxy().await;
    let (creator, worker) = (app.user("creator").await, app.user("worker").await);
    let first = app.create_task(&creator, "claims", "first", 5).await["id"].clone();
    let second = app.create_task(&creator, "claims", "second", 1).await["id"].clone();
    app.may_work("claims", &worker).await;
    let second = second.as_str().unwrap();
    app.settle().await;
    let retry =
        cut_after_commit(&app, &proxy, &worker, "/v1/queues/claims/claim", &json!({})).await;
    assert_eq!(retry.status, 200);
    assert_eq!(retry.body["id"], first, "the task the cut try claimed");
    assert_eq!(retry.body["attempt"], 1);
    let claims = "SELECT count(*) FROM events WHERE event_type = 'TaskClaimed' \
                  AND metadata ->> 'actor' = $1";
    assert_eq!(count(&app, claims, &worker.id.to_string()).await, 1);
    app.settle().await;
    let res = app.get(&creator, &format!("/v1/tasks/{second}")).await;
    let task: Value = res.json().await.unwrap();
    assert_eq!(
        task["status"], "queued",
        "the retry claimed nothing else: {task}"
    );
}

#[tokio::test]
async fn a_bounty_posted_with_a_cut_after_its_commit_exists_and_holds_its_reward_once() {
    let (app, proxy) = behind_proxy().await;
    let poster = app.user("poster").await;
    app.deposit(&poster, 5_000, "USD").await;
    let body = json!({"title": "Fix the parser", "description": "it breaks",
                      "reward": {"amount": 1_500, "currency": "USD"}});
    let retry = cut_after_commit(&app, &proxy, &poster, "/v1/bounties", &body).await;
    assert_eq!(retry.status, 201);
    app.settle().await;
    assert_eq!(app.usd(&poster).await, (3_500, 1_500), "one reward held");
    let posted = "SELECT count(*) FROM events WHERE event_type = 'BountyPosted' \
                  AND metadata ->> 'actor' = $1";
    assert_eq!(count(&app, posted, &poster.id.to_string()).await, 1);
}

/// An open bounty of 1,500 USD posted by a new poster (no cuts).
async fn open_bounty(app: &TestApp) -> (TestUser, String) {
    let poster = app.user("poster").await;
    app.deposit(&poster, 5_000, "USD").await;
    let body = json!({"title": "Fix the parser", "description": "it breaks",
                      "reward": {"amount": 1_500, "currency": "USD"}});
    let res = app.post(&poster, "/v1/bounties", &body).await;
    assert_eq!(res.status(), 201);
    let id = res.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    app.settle().await;
    (poster, id)
}

#[tokio::test]
async fn an_application_cut_after_its_commit_is_made_once_under_the_id_it_was_told() {
    let (app, proxy) = behind_proxy().await;
    let (_, bounty) = open_bounty(&app).await;
    let hunter = app.user("hunter").await;
    let path = format!("/v1/bounties/{bounty}/applications");
    let retry = cut_after_commit(&app, &proxy, &hunter, &path, &json!({"pitch": "me"})).await;
    assert_eq!(retry.status, 201);
    let applications: Vec<String> = sqlx::query_scalar(
        "SELECT payload -> 'ApplicationSubmitted' ->> 'application_id' FROM events \
         WHERE event_type = 'ApplicationSubmitted' AND aggregate_id = $1",
    )
    .bind(&bounty)
    .fetch_all(&app.pool)
    .await
    .unwrap();
    assert_eq!(
        applications,
        [retry.body["application_id"].as_str().unwrap()]
    );
}

/// `hunter` applies, `poster` accepts, `hunter` submits (no cuts).
async fn submit_work(app: &TestApp, poster: &TestUser, hunter: &TestUser, bounty: &str) {
    let act = |user: &TestUser, action: &str, body: Value| {
        let path = format!("/v1/bounties/{bounty}/{action}");
        let user = user.clone();
        async move {
            let res = app.post(&user, &path, &body).await;
            let status = res.status().as_u16();
            let answer: Value = res.json().await.unwrap();
            assert!(status == 200 || status == 201, "{path}: {answer}");
            answer
        }
    };
    let applied = act(hunter, "applications", json!({"pitch": "me"})).await;
    let application = applied["application_id"].clone();
    act(poster, "accept", json!({"application_id": application})).await;
    let work = json!({"deliverable": {"text": "done", "link": "https://example.com/pr/1"}});
    act(hunter, "submit", work).await;
}

#[tokio::test]
async fn an_approval_cut_after_its_commit_pays_the_hunter_once() {
    let (app, proxy) = behind_proxy().await;
    let (poster, bounty) = open_bounty(&app).await;
    let hunter = app.user("hunter").await;
    submit_work(&app, &poster, &hunter, &bounty).await;
    let path = format!("/v1/bounties/{bounty}/approve");
    let retry = cut_after_commit(&app, &proxy, &poster, &path, &json!({})).await;
    assert_eq!(retry.status, 200);
    app.settle().await;
    assert_eq!(app.usd(&hunter).await, (1_500, 0), "paid once");
    assert_eq!(app.usd(&poster).await, (3_500, 0));
}

/// The retry reaches another API process, which reads the bounty from the store: approved
/// already. It must answer what the cut try did, not refuse the approval as a repeat.
#[tokio::test]
async fn an_approval_cut_after_its_commit_and_retried_on_another_process_gets_its_answer() {
    let (app, proxy) = behind_proxy().await;
    let (poster, bounty) = open_bounty(&app).await;
    let hunter = app.user("hunter").await;
    submit_work(&app, &poster, &hunter, &bounty).await;
    let other = TestApp::spawn_with(app.settings.clone(), Parts::API).await;
    let path = format!("/v1/bounties/{bounty}/approve");
    let retry = cut_then_retry_on(&app, &other, &proxy, &poster, &path, &json!({})).await;
    assert_eq!(retry.status, 200);
    app.settle().await;
    assert_eq!(app.usd(&hunter).await, (1_500, 0), "paid once");
}

#[tokio::test]
async fn a_credit_cut_after_its_commit_credits_once() {
    let (app, proxy) = behind_proxy().await;
    let (admin, user) = (app.admin().await, app.user("member").await);
    let path = format!("/v1/admin/wallets/{}/credit", user.id);
    let body = json!({"amount": 250, "currency": "USD", "reason": "goodwill"});
    let retry = cut_after_commit(&app, &proxy, &admin, &path, &body).await;
    assert_eq!(retry.status, 200);
    app.settle().await;
    assert_eq!(app.usd(&user).await, (250, 0), "credited once");
}

#[tokio::test]
async fn a_deposit_webhook_cut_after_its_commit_deposits_once_and_its_retry_names_it() {
    let (app, proxy) = behind_proxy().await;
    let user = app.user("depositor").await;
    let body = deposit_body(&format!("dep-{}", Uuid::new_v4()), user.id, 700, "USD");
    proxy.arm(Rule::after_answer(APPLICATION_NAME, APPEND));
    let first = told(app.webhook(&body, true).await).await;
    assert_outcome_unknown(&first);
    let retry = told(app.webhook(&body, true).await).await;
    assert_eq!(retry.status, 200, "{retry:?}");
    assert_eq!(retry.body["status"], "duplicate");
    let (wallet, version, position): (String, i64, i64) = sqlx::query_as(
        "SELECT aggregate_id, sequence, position FROM events WHERE event_type = 'DepositConfirmed' \
         AND aggregate_id = $1",
    )
    .bind(user.id.to_string())
    .fetch_one(&app.pool)
    .await
    .expect("one deposit");
    assert_eq!(
        (
            &retry.body["wallet"],
            &retry.body["version"],
            &retry.body["position"]
        ),
        (&json!(wallet), &json!(version), &json!(position))
    );
    app.settle().await;
    assert_eq!(app.usd(&user).await, (700, 0), "deposited once");
}

#[tokio::test]
async fn a_withdrawal_cut_before_its_statement_reached_postgres_is_requested_once_on_retry() {
    let (app, proxy) = behind_proxy().await;
    let user = saver(&app).await;
    let (key, body, path) = (format!("k-{}", Uuid::new_v4()), hundred(), WITHDRAWALS);
    proxy.arm(Rule::before_sending(APPLICATION_NAME, APPEND));
    let first = send(&app, &user, path, &body, &key).await;
    assert_outcome_unknown(&first);
    assert_eq!(recorded(&app, &user.id.to_string(), &key).await, None);
    let retry = send(&app, &user, path, &body, &key).await;
    assert_eq!(retry.status, 201, "{retry:?}");
    app.settle().await;
    assert_eq!(app.usd(&user).await, (900, 100));
}

/// A group is committed asynchronously and answered once the WAL is flushed past it
/// (docs/adr/0005): when the flush's connection fails, the group is committed but not known to
/// be durable, so its commands are told their outcome is unknown, and the retry is answered
/// what the first try stored, once it is durable.
#[tokio::test]
async fn a_withdrawal_whose_flush_never_answered_is_unknown_and_its_retry_is_told_the_commit() {
    let (app, proxy) = behind_proxy().await;
    let user = saver(&app).await;
    let (key, body, path) = (format!("k-{}", Uuid::new_v4()), hundred(), WITHDRAWALS);
    proxy.arm(Rule::before_sending(
        FLUSHER_NAME,
        "pg_logical_emit_message",
    ));
    let first = send(&app, &user, path, &body, &key).await;
    assert_eq!(proxy.fired(), 1, "the flush was cut");
    assert_outcome_unknown(&first);
    let (id, version, position) = recorded(&app, &user.id.to_string(), &key)
        .await
        .expect("the group committed before its flush");
    let retry = send(&app, &user, path, &body, &key).await;
    assert_eq!(retry.status, 201, "{retry:?}");
    assert_eq!(retry.body["position"], position, "{retry:?}");
    assert_eq!(retry.body["version"], version, "{retry:?}");
    assert_eq!(retry.body["id"].as_str(), Some(id.as_str()), "{retry:?}");
    app.settle().await;
    assert_eq!(app.usd(&user).await, (900, 100), "held once");
}

/// A connection that goes quiet after the group was sent (a silent partition, a half-open
/// socket) must not stall the process's appends: the committer gives the group up as unknown
/// and carries on with a new connection.
#[tokio::test]
async fn a_group_whose_answer_never_comes_is_unknown_and_later_commands_still_commit() {
    let (app, proxy) = behind_proxy().await;
    let user = saver(&app).await;
    let (key, body, path) = (format!("k-{}", Uuid::new_v4()), hundred(), WITHDRAWALS);
    proxy.arm(Rule::stall(APPLICATION_NAME, APPEND));
    let started = Instant::now();
    let first = send(&app, &user, path, &body, &key).await;
    assert_outcome_unknown(&first);
    assert!(
        started.elapsed() < Duration::from_secs(25),
        "{:?}",
        started.elapsed()
    );
    let task = app
        .post(&user, "/v1/tasks", &json!({"queue": "q", "title": "after"}))
        .await;
    assert_eq!(task.status(), 201, "appends go on after the stall");
    let retry = send(&app, &user, path, &body, &key).await;
    assert_eq!(retry.status, 201, "{retry:?}");
    app.settle().await;
    assert_eq!(app.usd(&user).await, (900, 100), "held once");
}

/// A wire that drops every connection and closes each new one as it opens (a middlebox, a
/// database going away): requests are told to retry (503), never a 500.
#[tokio::test]
async fn a_database_wire_that_closes_new_connections_answers_503_not_500() {
    let (app, proxy) = behind_proxy().await;
    let user = app.user("member").await;
    proxy.refuse(true);
    proxy.cut_all();
    let read = app.get(&user, "/v1/wallets/me").await;
    assert_eq!(read.status(), 503);
    let command = app
        .post(&user, "/v1/tasks", &json!({"queue": "q", "title": "t"}))
        .await;
    assert_eq!(command.status(), 503);
    proxy.refuse(false);
    let again = app
        .post(&user, "/v1/tasks", &json!({"queue": "q", "title": "t"}))
        .await;
    assert_eq!(again.status(), 201, "served again once the wire is back");
}

/// The backstop: whatever the code above it does, Postgres appends at most one command per
/// actor and key.
#[tokio::test]
async fn the_store_refuses_a_second_command_under_one_actor_and_key() {
    let app = TestApp::spawn().await;
    let group = |id: &str, command: &str| {
        let metadata = json!({"actor": "a1", "idempotency_key": "k1", "command_id": command});
        sqlx::query_scalar::<_, Vec<i64>>(
            "SELECT append_group(ARRAY['Task'], ARRAY[$1], ARRAY[1::bigint], ARRAY[1::bigint], \
             ARRAY[NULL], ARRAY[NULL], ARRAY[NULL], ARRAY['a1'], ARRAY['k1'], ARRAY[$2], \
             ARRAY[1], ARRAY['Task'], ARRAY[$1], ARRAY[1::bigint], ARRAY['TaskCreated'], \
             ARRAY['1'], ARRAY['{}'::jsonb], ARRAY[$3::jsonb])",
        )
        .bind(id.to_owned())
        .bind(command.to_owned())
        .bind(metadata)
        .fetch_one(&app.pool)
    };
    let first = group("t1", "c1").await.expect("the first command");
    assert!(first[0] > 0, "{first:?}");
    assert_eq!(group("t2", "c2").await.expect("a repeat"), [-1]);
    let bypass =
        sqlx::query("INSERT INTO command_keys VALUES ('a1', 'k1', 'c3', 'Task', 't3', 1, 1, 99)")
            .execute(&app.pool)
            .await
            .expect_err("a second record under one key");
    let code = bypass.as_database_error().and_then(|e| e.code());
    assert_eq!(code.as_deref(), Some("23505"));
    let removal = sqlx::query("DELETE FROM command_keys")
        .execute(&app.pool)
        .await;
    assert!(removal.is_err(), "the record is append-only");
}
