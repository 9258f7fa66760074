//! Bounties over HTTP, end to end: the reward moves through escrow by the process managers
//! (held on posting, released on approval, refunded on cancel, expiry or a dispute), who may
//! do what, the board's filters and paging, and bad input. Money moves asynchronously, so
//! every check of balances or statuses comes after `app.settle()`.

mod common;

use bountyline::workers::projection;
use bountyline_projections::rebuild::{build_shadow, diff};
use chrono::{Duration as Span, Utc};
use common::*;
use serde_json::{json, Value};
use std::time::Duration;

const REWARD: i64 = 1_500;

async fn post_bounty(app: &TestApp, poster: &TestUser, body: Value) -> String {
    let res = app.post(poster, "/v1/bounties", &body).await;
    let status = res.status();
    let answer: Value = res.json().await.unwrap();
    assert_eq!(status, 201, "post a bounty: {answer}");
    assert!(answer["version"].as_i64().is_some() && answer["position"].as_i64().is_some());
    answer["id"].as_str().unwrap().to_owned()
}

fn bounty_body(title: &str, amount: i64) -> Value {
    json!({"title": title, "description": "make it work",
           "reward": {"amount": amount, "currency": "USD"}, "tags": ["rust"]})
}

/// A poster with `deposit` USD who posted a bounty of `REWARD`, settled (so open if funded).
async fn posted(app: &TestApp, deposit: i64) -> (TestUser, String) {
    let poster = app.user("poster").await;
    if deposit > 0 {
        app.deposit(&poster, deposit, "USD").await;
    }
    let id = post_bounty(app, &poster, bounty_body("Fix the parser", REWARD)).await;
    app.settle().await;
    (poster, id)
}

/// The bounty's detail as `user` sees it, once the read model has everything.
async fn detail(app: &TestApp, user: &TestUser, id: &str) -> Value {
    let res = app
        .client
        .get(app.url(&format!("/v1/bounties/{id}")))
        .bearer_auth(&user.access_token)
        .header("X-Min-Position", app.head().await.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    res.json().await.unwrap()
}

async fn act(app: &TestApp, user: &TestUser, id: &str, action: &str, body: Value) -> (u16, Value) {
    let res = app
        .post(user, &format!("/v1/bounties/{id}/{action}"), &body)
        .await;
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or(Value::Null))
}

async fn ok(app: &TestApp, user: &TestUser, id: &str, action: &str, body: Value) -> Value {
    let (status, answer) = act(app, user, id, action, body).await;
    assert!(
        status == 200 || status == 201,
        "{action}: {status} {answer}"
    );
    answer
}

/// Applies as `hunter` and returns the application id.
async fn apply(app: &TestApp, hunter: &TestUser, id: &str) -> String {
    let answer = ok(
        app,
        hunter,
        id,
        "applications",
        json!({"pitch": "I know parsers"}),
    )
    .await;
    answer["application_id"].as_str().unwrap().to_owned()
}

/// An open bounty with `hunter` assigned and work submitted.
async fn submitted(app: &TestApp) -> (TestUser, TestUser, String) {
    let (poster, id) = posted(app, 5_000).await;
    let hunter = app.user("hunter").await;
    let application = apply(app, &hunter, &id).await;
    ok(
        app,
        &poster,
        &id,
        "accept",
        json!({"application_id": application}),
    )
    .await;
    let deliverable = json!({"deliverable": {"text": "done", "link": "https://example.com/pr/1"}});
    ok(app, &hunter, &id, "submit", deliverable).await;
    (poster, hunter, id)
}

async fn payment_status(app: &TestApp, user: &TestUser, payment_id: &Value) -> String {
    let payment_id = payment_id.as_str().unwrap();
    let res = app.get(user, &format!("/v1/payments/{payment_id}")).await;
    assert_eq!(res.status(), 200);
    let payment: Value = res.json().await.unwrap();
    payment["status"].as_str().unwrap().to_owned()
}

/// Every money flow the process managers started has finished, and none was refused.
async fn assert_flows_done(app: &TestApp) {
    let open: Vec<(uuid::Uuid, String, Option<String>)> = sqlx::query_as(
        "SELECT flow_id, step, last_error FROM process_flows WHERE NOT done OR last_error IS NOT NULL",
    )
    .fetch_all(&app.pool)
    .await
    .unwrap();
    assert!(open.is_empty(), "flows left open or refused: {open:?}");
}

fn assert_problem(res: &reqwest::Response, status: u16, what: &str) {
    assert_eq!(res.status().as_u16(), status, "{what}");
    assert_eq!(
        res.headers()["content-type"],
        "application/problem+json",
        "{what}"
    );
}

// ---------------------------------------------------------------------------------------------
// The reward's way through escrow
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn posting_holds_the_reward_and_approval_pays_the_hunter() {
    let app = TestApp::spawn().await;
    let (poster, id) = posted(&app, 5_000).await;
    assert_eq!(app.usd(&poster).await, (5_000 - REWARD, REWARD));
    let bounty = detail(&app, &poster, &id).await;
    assert_eq!(bounty["status"], "open");
    assert_eq!(
        bounty["reward"],
        json!({"amount": REWARD, "currency": "USD"})
    );
    assert_eq!(bounty["tags"], json!(["rust"]));
    assert_eq!(
        payment_status(&app, &poster, &bounty["payment_id"]).await,
        "held"
    );

    let hunter = app.user("hunter").await;
    let application = apply(&app, &hunter, &id).await;
    ok(
        &app,
        &poster,
        &id,
        "accept",
        json!({"application_id": application}),
    )
    .await;
    ok(
        &app,
        &hunter,
        &id,
        "submit",
        json!({"deliverable": "it parses now"}),
    )
    .await;
    let answer = ok(&app, &poster, &id, "approve", Value::Null).await;
    assert_eq!(answer["id"], id.as_str());
    app.settle().await;

    assert_eq!(app.usd(&hunter).await, (REWARD, 0));
    assert_eq!(app.usd(&poster).await, (5_000 - REWARD, 0));
    let bounty = detail(&app, &poster, &id).await;
    assert_eq!(bounty["status"], "completed");
    assert_eq!(bounty["hunter"], hunter.id.to_string());
    assert_eq!(bounty["refunded"], false);
    assert_eq!(bounty["work"]["deliverable_text"], "it parses now");
    assert_eq!(bounty["applications"][0]["status"], "accepted");
    assert_eq!(
        payment_status(&app, &poster, &bounty["payment_id"]).await,
        "released"
    );
    assert_flows_done(&app).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn cancelling_before_anyone_is_assigned_refunds_the_poster() {
    let app = TestApp::spawn().await;
    let (poster, id) = posted(&app, 2_000).await;
    let hunter = app.user("hunter").await;
    apply(&app, &hunter, &id).await;
    ok(&app, &poster, &id, "cancel", Value::Null).await;
    app.settle().await;

    assert_eq!(app.usd(&poster).await, (2_000, 0));
    let bounty = detail(&app, &poster, &id).await;
    assert_eq!(bounty["status"], "cancelled");
    assert_eq!(bounty["refunded"], true);
    assert_eq!(
        payment_status(&app, &poster, &bounty["payment_id"]).await,
        "refunded"
    );
    let (status, _) = act(&app, &poster, &id, "cancel", json!({})).await;
    assert_eq!(status, 409, "a cancelled bounty cannot be cancelled again");
    assert_flows_done(&app).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rejected_work_goes_back_for_rework_and_the_second_submission_is_approved() {
    let app = TestApp::spawn().await;
    let (poster, hunter, id) = submitted(&app).await;
    ok(
        &app,
        &poster,
        &id,
        "reject",
        json!({"reason": "tests fail"}),
    )
    .await;
    let bounty = detail(&app, &hunter, &id).await;
    assert_eq!(bounty["status"], "assigned");
    assert_eq!(bounty["work"]["rejection_reason"], "tests fail");
    assert_eq!(bounty["work"]["revision"], 1);

    let (status, _) = act(&app, &poster, &id, "approve", Value::Null).await;
    assert_eq!(status, 409, "nothing to approve while assigned");
    ok(
        &app,
        &hunter,
        &id,
        "submit",
        json!({"deliverable": {"link": "https://example.com/pr/2"}}),
    )
    .await;
    let bounty = detail(&app, &poster, &id).await;
    assert_eq!(bounty["status"], "submitted");
    assert_eq!(bounty["work"]["revision"], 2);
    assert_eq!(bounty["work"]["rejection_reason"], Value::Null);
    assert_eq!(
        bounty["work"]["deliverable_link"],
        "https://example.com/pr/2"
    );

    ok(&app, &poster, &id, "approve", json!({})).await;
    app.settle().await;
    assert_eq!(app.usd(&hunter).await, (REWARD, 0));
    assert_eq!(detail(&app, &poster, &id).await["status"], "completed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_admin_resolves_a_dispute_by_paying_the_hunter_or_refunding_the_poster() {
    let app = TestApp::spawn().await;
    let admin = app.admin().await;

    let (poster, hunter, id) = submitted(&app).await;
    ok(
        &app,
        &hunter,
        &id,
        "dispute",
        json!({"reason": "the poster went silent"}),
    )
    .await;
    let bounty = detail(&app, &admin, &id).await;
    assert_eq!(bounty["status"], "disputed");
    assert_eq!(bounty["work"]["dispute_reason"], "the poster went silent");
    let res = app
        .post(
            &admin,
            &format!("/v1/admin/bounties/{id}/resolve"),
            &json!({"outcome": "pay_hunter"}),
        )
        .await;
    assert_eq!(res.status(), 200);
    app.settle().await;
    assert_eq!(app.usd(&hunter).await, (REWARD, 0));
    assert_eq!(app.usd(&poster).await, (5_000 - REWARD, 0));
    assert_eq!(detail(&app, &poster, &id).await["status"], "completed");

    let (poster, hunter, id) = submitted(&app).await;
    ok(
        &app,
        &poster,
        &id,
        "dispute",
        json!({"reason": "not what I asked for"}),
    )
    .await;
    let res = app
        .post(
            &admin,
            &format!("/v1/admin/bounties/{id}/resolve"),
            &json!({"outcome": "refund_poster"}),
        )
        .await;
    assert_eq!(res.status(), 200);
    app.settle().await;
    assert_eq!(app.usd(&hunter).await, (0, 0));
    assert_eq!(app.usd(&poster).await, (5_000, 0));
    let bounty = detail(&app, &poster, &id).await;
    assert_eq!(
        (bounty["status"].as_str(), bounty["refunded"].as_bool()),
        (Some("cancelled"), Some(true))
    );
    assert_flows_done(&app).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_open_bounty_past_its_deadline_expires_and_is_refunded() {
    let app = TestApp::spawn().await;
    let poster = app.user("poster").await;
    app.deposit(&poster, 3_000, "USD").await;
    let mut body = bounty_body("Quick job", REWARD);
    body["deadline"] = json!((Utc::now() + Span::seconds(2)).to_rfc3339());
    let id = post_bounty(&app, &poster, body).await;
    app.settle().await;
    assert_eq!(detail(&app, &poster, &id).await["status"], "open");
    assert_eq!(app.usd(&poster).await, (3_000 - REWARD, REWARD));

    let (app_ref, poster_ref, id_ref) = (&app, &poster, &id);
    wait_until(
        Duration::from_secs(20),
        "the bounty to expire and be refunded",
        move || async move {
            app_ref.settle().await;
            let bounty = detail(app_ref, poster_ref, id_ref).await;
            bounty["status"] == "expired" && bounty["refunded"] == true
        },
    )
    .await;
    assert_eq!(app.usd(&poster).await, (3_000, 0));
    let hunter = app.user("hunter").await;
    let (status, _) = act(&app, &hunter, &id, "applications", json!({"pitch": "late"})).await;
    assert_eq!(status, 409, "an expired bounty takes no applications");
    assert_flows_done(&app).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn cancelling_while_the_hold_is_under_way_still_leaves_the_poster_whole() {
    let app = TestApp::spawn().await;
    for _ in 0..3 {
        let poster = app.user("poster").await;
        app.deposit(&poster, 2_000, "USD").await;
        let id = post_bounty(&app, &poster, bounty_body("Changed my mind", REWARD)).await;
        ok(&app, &poster, &id, "cancel", Value::Null).await;
        app.settle().await;
        assert_eq!(app.usd(&poster).await, (2_000, 0));
        // Usually cancelled while the hold was under way: it is refunded once it lands.
        let bounty = detail(&app, &poster, &id).await;
        assert_eq!(
            (bounty["status"].as_str(), bounty["refunded"].as_bool()),
            (Some("cancelled"), Some(true))
        );
    }
    assert_flows_done(&app).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn cancelling_while_a_hold_that_will_fail_is_under_way_holds_nothing_and_ends_the_flow() {
    let app = TestApp::spawn().await;
    for _ in 0..3 {
        let poster = app.user("poster").await;
        app.deposit(&poster, REWARD - 1, "USD").await;
        let id = post_bounty(&app, &poster, bounty_body("Cannot pay", REWARD)).await;
        ok(&app, &poster, &id, "cancel", Value::Null).await;
        app.settle().await;
        assert_eq!(app.usd(&poster).await, (REWARD - 1, 0));
        let bounty = detail(&app, &poster, &id).await;
        assert_eq!(
            (bounty["status"].as_str(), bounty["refunded"].as_bool()),
            (Some("cancelled"), Some(false))
        );
    }
    assert_flows_done(&app).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn posting_again_with_the_same_idempotency_key_posts_and_holds_once() {
    let app = TestApp::spawn().await;
    let poster = app.user("poster").await;
    app.deposit(&poster, 5_000, "USD").await;
    let send = || {
        app.client
            .post(app.url("/v1/bounties"))
            .bearer_auth(&poster.access_token)
            .header("Idempotency-Key", "post-once")
            .json(&bounty_body("Once", REWARD))
            .send()
    };
    let first = send().await.unwrap();
    assert_eq!(first.status(), 201);
    let first: Value = first.json().await.unwrap();
    let again = send().await.unwrap();
    assert_eq!(again.status(), 201);
    assert_eq!(again.json::<Value>().await.unwrap(), first);
    app.settle().await;
    assert_eq!(
        board(&app, &poster, "poster=me").await["items"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    assert_eq!(app.usd(&poster).await, (5_000 - REWARD, REWARD));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_reward_the_wallet_cannot_cover_leaves_the_bounty_unfunded_and_holds_nothing() {
    let app = TestApp::spawn().await;
    let (poster, id) = posted(&app, REWARD - 1).await;
    let bounty = detail(&app, &poster, &id).await;
    assert_eq!(bounty["status"], "unfunded");
    assert_eq!(app.usd(&poster).await, (REWARD - 1, 0));

    let (nobody, id) = posted(&app, 0).await;
    assert_eq!(detail(&app, &nobody, &id).await["status"], "unfunded");
    assert_eq!(app.usd(&nobody).await, (0, 0));
    let hunter = app.user("hunter").await;
    let (status, _) = act(&app, &hunter, &id, "applications", json!({"pitch": "hi"})).await;
    assert_eq!(status, 409, "an unfunded bounty is not open");
    assert_flows_done(&app).await;
}

// ---------------------------------------------------------------------------------------------
// Who may do what
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_poster_cannot_apply_to_their_own_bounty() {
    let app = TestApp::spawn().await;
    let (poster, id) = posted(&app, 5_000).await;
    let res = app
        .post(
            &poster,
            &format!("/v1/bounties/{id}/applications"),
            &json!({"pitch": "me"}),
        )
        .await;
    assert_problem(&res, 403, "self-application");
    let hunter = app.user("hunter").await;
    apply(&app, &hunter, &id).await;
    let (status, _) = act(
        &app,
        &hunter,
        &id,
        "applications",
        json!({"pitch": "again"}),
    )
    .await;
    assert_eq!(status, 409, "one application per hunter");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_stranger_may_not_accept_submit_or_approve_and_a_member_may_not_resolve() {
    let app = TestApp::spawn().await;
    let (poster, id) = posted(&app, 5_000).await;
    let (hunter, stranger) = (app.user("hunter").await, app.user("stranger").await);
    let application = apply(&app, &hunter, &id).await;
    let accept = json!({"application_id": application});
    assert_eq!(
        act(&app, &stranger, &id, "accept", accept.clone()).await.0,
        403
    );
    ok(&app, &poster, &id, "accept", accept).await;
    let work = json!({"deliverable": {"text": "mine now"}});
    assert_eq!(
        act(&app, &stranger, &id, "submit", work.clone()).await.0,
        403
    );
    assert_eq!(act(&app, &poster, &id, "submit", work).await.0, 403);
    ok(&app, &hunter, &id, "submit", json!({"deliverable": "done"})).await;
    assert_eq!(
        act(&app, &stranger, &id, "approve", Value::Null).await.0,
        403
    );
    assert_eq!(act(&app, &hunter, &id, "approve", Value::Null).await.0, 403);
    assert_eq!(
        act(&app, &stranger, &id, "dispute", json!({"reason": "x"}))
            .await
            .0,
        403
    );
    assert_eq!(
        act(&app, &poster, &id, "cancel", Value::Null).await.0,
        409,
        "assigned: admins only"
    );

    ok(&app, &hunter, &id, "dispute", json!({"reason": "silence"})).await;
    let res = app
        .post(
            &poster,
            &format!("/v1/admin/bounties/{id}/resolve"),
            &json!({"outcome": "refund_poster"}),
        )
        .await;
    assert_problem(&res, 403, "a member resolving");
    let missing = uuid::Uuid::now_v7();
    assert_eq!(
        act(&app, &poster, &missing.to_string(), "approve", Value::Null)
            .await
            .0,
        404
    );
    let unknown = json!({"application_id": uuid::Uuid::now_v7()});
    let (other_poster, other) = posted(&app, 5_000).await;
    assert_eq!(
        act(&app, &other_poster, &other, "accept", unknown).await.0,
        404
    );
    app.settle().await;
    assert_eq!(app.usd(&hunter).await, (0, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_poster_sees_every_application_an_applicant_only_their_own_and_a_stranger_none() {
    let app = TestApp::spawn().await;
    let (poster, id) = posted(&app, 5_000).await;
    let (ann, ben, stranger) = (
        app.user("ann").await,
        app.user("ben").await,
        app.user("x").await,
    );
    let auditor = app.auditor().await;
    let anns = apply(&app, &ann, &id).await;
    let bens = apply(&app, &ben, &id).await;

    let seen = |bounty: Value| -> Vec<String> {
        bounty["applications"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["id"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(
        seen(detail(&app, &poster, &id).await),
        [anns.clone(), bens.clone()]
    );
    assert_eq!(seen(detail(&app, &auditor, &id).await).len(), 2);
    assert_eq!(seen(detail(&app, &ann, &id).await), vec![anns.clone()]);
    assert_eq!(seen(detail(&app, &ben, &id).await), vec![bens.clone()]);
    let strangers = detail(&app, &stranger, &id).await;
    assert_eq!(seen(strangers.clone()), Vec::<String>::new());
    assert_eq!(
        strangers["work"],
        Value::Null,
        "the work is for the parties"
    );

    // Only the applicant withdraws, and a withdrawn application cannot be accepted.
    let path = format!("/v1/bounties/{id}/applications/{bens}");
    let delete = |user: &TestUser| {
        app.client
            .delete(app.url(&path))
            .bearer_auth(&user.access_token)
            .send()
    };
    assert_eq!(delete(&ann).await.unwrap().status(), 403);
    assert_eq!(delete(&ben).await.unwrap().status(), 200);
    let bens_view = detail(&app, &ben, &id).await;
    assert_eq!(bens_view["applications"][0]["status"], "withdrawn");
    assert_eq!(
        act(
            &app,
            &poster,
            &id,
            "accept",
            json!({"application_id": bens})
        )
        .await
        .0,
        409
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn approve_racing_an_admin_cancel_moves_the_money_exactly_one_way() {
    let app = TestApp::spawn().await;
    let admin = app.admin().await;
    for round in 0..4 {
        let (poster, hunter, id) = submitted(&app).await;
        let (approved, cancelled) = tokio::join!(
            act(&app, &poster, &id, "approve", Value::Null),
            act(&app, &admin, &id, "cancel", Value::Null),
        );
        let wins = [approved.0, cancelled.0]
            .iter()
            .filter(|s| **s == 200)
            .count();
        assert_eq!(wins, 1, "round {round}: {approved:?} {cancelled:?}");
        assert!(
            [approved.0, cancelled.0].contains(&409),
            "round {round}: the loser is a conflict"
        );
        app.settle().await;

        let (poster_money, hunter_money) = (app.usd(&poster).await, app.usd(&hunter).await);
        assert_eq!(
            poster_money.1 + hunter_money.1,
            0,
            "round {round}: nothing stays held"
        );
        assert_eq!(
            poster_money.0 + hunter_money.0,
            5_000,
            "round {round}: money is conserved"
        );
        let bounty = detail(&app, &poster, &id).await;
        if approved.0 == 200 {
            assert_eq!(hunter_money.0, REWARD, "round {round}");
            assert_eq!(
                (bounty["status"].as_str(), bounty["refunded"].as_bool()),
                (Some("completed"), Some(false))
            );
        } else {
            assert_eq!(hunter_money.0, 0, "round {round}");
            assert_eq!(
                (bounty["status"].as_str(), bounty["refunded"].as_bool()),
                (Some("cancelled"), Some(true))
            );
        }
    }
    assert_flows_done(&app).await;
}

// ---------------------------------------------------------------------------------------------
// The board
// ---------------------------------------------------------------------------------------------

async fn board(app: &TestApp, user: &TestUser, query: &str) -> Value {
    let res = app.get(user, &format!("/v1/bounties?{query}")).await;
    let status = res.status();
    let body: Value = res.json().await.unwrap();
    assert_eq!(status, 200, "{query}: {body}");
    body
}

/// A board page is kept in memory while the bounties read model has not moved
/// (src/http/read_cache.rs) and never served once it has: a bounty just posted is on the
/// page read at its position.
#[tokio::test]
async fn a_board_page_is_served_from_memory_until_the_board_moves() {
    let app = TestApp::spawn().await;
    let (poster, _) = posted(&app, 10_000).await;
    let hits = || app.counter("bountyline_read_cache_total{read=\"board\",outcome=\"hit\"}");
    let first = board(&app, &poster, "").await;
    assert_eq!(titles(&first), ["Fix the parser"]);
    // The last announcements of the settled read model may still be on their way: a read
    // tagged before one arrives is not served after it.
    for _ in 0..40 {
        if hits().await > 0 {
            break;
        }
        assert_eq!(board(&app, &poster, "").await, first, "nothing moved");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(hits().await > 0, "a repeated read was served from memory");

    let res = app
        .post(&poster, "/v1/bounties", &bounty_body("Write the docs", 100))
        .await;
    assert_eq!(res.status(), 201);
    let position = res.json::<Value>().await.unwrap()["position"].clone();
    let res = app.get_at(&poster, "/v1/bounties", position).await;
    assert_eq!(res.status(), 200);
    let page: Value = res.json().await.unwrap();
    assert_eq!(titles(&page), ["Write the docs", "Fix the parser"]);
}

fn titles(page: &Value) -> Vec<String> {
    page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["title"].as_str().unwrap().to_owned())
        .collect()
}

/// Every reward of the board in `sort` order, read `limit` at a time through the cursors.
async fn rewards_paged(app: &TestApp, user: &TestUser, sort: &str, limit: usize) -> Vec<i64> {
    let mut rewards = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut query = format!("sort={sort}&limit={limit}");
        if let Some(c) = &cursor {
            query.push_str(&format!("&cursor={c}"));
        }
        let page = board(app, user, &query).await;
        let items = page["items"].as_array().unwrap();
        assert!(items.len() <= limit);
        rewards.extend(
            items
                .iter()
                .map(|b| b["reward"]["amount"].as_i64().unwrap()),
        );
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => return rewards,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_board_filters_by_status_tag_and_text_and_pages_through_either_reward_order() {
    let app = TestApp::spawn().await;
    let (alice, bob) = (app.user("alice").await, app.user("bob").await);
    app.deposit(&alice, 10_000, "USD").await;
    let specs = [
        ("Rust parser rewrite", 700, vec!["rust", "parsing"]),
        ("Logo design", 300, vec!["design"]),
        ("Fix the tokenizer", 900, vec!["rust"]),
        ("Write docs", 300, vec![]),
        ("Port the parser to Go", 500, vec!["go", "parsing"]),
    ];
    for (title, amount, tags) in &specs {
        let body = json!({"title": title, "description": "see the issue",
                          "reward": {"amount": amount, "currency": "USD"}, "tags": tags});
        post_bounty(&app, &alice, body).await;
    }
    app.deposit(&bob, 100, "USD").await;
    post_bounty(&app, &bob, bounty_body("Too expensive", 20_000)).await;
    app.settle().await;

    let everything = board(&app, &bob, "").await;
    assert_eq!(everything["items"].as_array().unwrap().len(), 6);
    assert_eq!(
        titles(&everything)[0],
        "Too expensive",
        "newest first by default"
    );
    assert_eq!(
        titles(&board(&app, &bob, "status=unfunded").await),
        ["Too expensive"]
    );
    assert_eq!(
        board(&app, &bob, "status=open").await["items"]
            .as_array()
            .unwrap()
            .len(),
        5
    );
    let mut rust = titles(&board(&app, &bob, "tag=rust").await);
    rust.sort();
    assert_eq!(
        rust,
        ["Fix the tokenizer", "Rust parser rewrite", "Too expensive"]
    );
    let mut parser = titles(&board(&app, &bob, "q=parser&status=open").await);
    parser.sort();
    assert_eq!(parser, ["Port the parser to Go", "Rust parser rewrite"]);
    assert_eq!(
        titles(&board(&app, &bob, "q=parser%20go").await),
        ["Port the parser to Go"]
    );
    // Control characters (U+0000 too, which Postgres cannot take) part words as spaces do.
    assert_eq!(
        titles(&board(&app, &bob, "q=parser%00%1Fgo").await),
        ["Port the parser to Go"]
    );
    assert_eq!(
        titles(&board(&app, &bob, "poster=me").await),
        ["Too expensive"]
    );
    assert_eq!(
        board(&app, &alice, &format!("poster={}", alice.id)).await["items"]
            .as_array()
            .unwrap()
            .len(),
        5
    );
    assert_eq!(board(&app, &alice, "hunter=me").await["items"], json!([]));

    let ascending = rewards_paged(&app, &bob, "reward", 2).await;
    assert_eq!(ascending, [300, 300, 500, 700, 900, 20_000]);
    let descending = rewards_paged(&app, &bob, "-reward", 4).await;
    assert_eq!(descending, [20_000, 900, 700, 500, 300, 300]);
    let oldest_first = titles(&board(&app, &bob, "sort=created&limit=200").await);
    assert_eq!(oldest_first[0], "Rust parser rewrite");

    let first = board(&app, &bob, "sort=reward&limit=2").await;
    let cursor = first["next_cursor"].as_str().unwrap();
    let res = app
        .get(&bob, &format!("/v1/bounties?sort=-reward&cursor={cursor}"))
        .await;
    assert_problem(&res, 422, "a cursor of another order");
    let res = app
        .get(&bob, &format!("/v1/bounties?cursor={cursor}"))
        .await;
    assert_problem(&res, 422, "a reward cursor on the default (age) order");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bad_input_gets_a_problem_document_and_posts_nothing() {
    let app = TestApp::spawn().await;
    let alice = app.user("alice").await;
    app.deposit(&alice, 5_000, "USD").await;
    let eleven: Vec<String> = (0..11).map(|i| format!("t{i}")).collect();
    let past = (Utc::now() - Span::minutes(1)).to_rfc3339();
    let money = |amount: i64, currency: &str| json!({"amount": amount, "currency": currency});
    let cases = [
        (
            "a negative reward",
            json!({"title": "t", "description": "", "reward": money(-5, "USD")}),
        ),
        (
            "a zero reward",
            json!({"title": "t", "description": "", "reward": money(0, "USD")}),
        ),
        (
            "a lowercase currency",
            json!({"title": "t", "description": "", "reward": money(5, "usd")}),
        ),
        (
            "eleven tags",
            json!({"title": "t", "description": "", "reward": money(5, "USD"), "tags": eleven}),
        ),
        (
            "a bad tag",
            json!({"title": "t", "description": "", "reward": money(5, "USD"), "tags": ["No Caps"]}),
        ),
        (
            "an unknown field",
            json!({"title": "t", "description": "", "reward": money(5, "USD"), "bonus": 1}),
        ),
        (
            "an unknown money field",
            json!({"title": "t", "description": "", "reward": {"amount": 5, "currency": "USD", "cents": true}}),
        ),
        (
            "a blank title",
            json!({"title": "  ", "description": "", "reward": money(5, "USD")}),
        ),
        (
            "a deadline in the past",
            json!({"title": "t", "description": "", "reward": money(5, "USD"), "deadline": past}),
        ),
        (
            "a deadline that is no time",
            json!({"title": "t", "description": "", "reward": money(5, "USD"), "deadline": "soon"}),
        ),
    ];
    for (what, body) in cases {
        let res = app.post(&alice, "/v1/bounties", &body).await;
        assert_problem(&res, 422, what);
    }
    let res = app
        .post(
            &alice,
            "/v1/bounties",
            &json!({"title": "t", "description": "", "reward": money(5, "USD"), "deadline": past}),
        )
        .await;
    let problem: Value = res.json().await.unwrap();
    assert_eq!(problem["errors"][0]["field"], "deadline");

    for query in [
        "sort=biggest",
        "status=done",
        "cursor=not-a-cursor",
        "tag=No%20Caps",
        "colour=red",
        "limit=0",
        "poster=someone",
    ] {
        let res = app.get(&alice, &format!("/v1/bounties?{query}")).await;
        assert_problem(&res, 422, query);
    }

    let id = post_bounty(&app, &alice, bounty_body("Real one", 100)).await;
    app.settle().await;
    let bob = app.user("bob").await;
    let res = app
        .post(
            &bob,
            &format!("/v1/bounties/{id}/applications"),
            &json!({"pitch": ""}),
        )
        .await;
    assert_problem(&res, 422, "an empty pitch");
    let res = app
        .post(
            &bob,
            &format!("/v1/bounties/{id}/applications"),
            &json!({"pitch": "x", "cv": "y"}),
        )
        .await;
    assert_problem(&res, 422, "an unknown application field");
    let res = app
        .post(
            &alice,
            &format!("/v1/bounties/{id}/cancel"),
            &json!({"why": "no"}),
        )
        .await;
    assert_problem(&res, 422, "a body where none is taken");
    let res = app
        .post(
            &alice,
            &format!("/v1/bounties/{id}/accept"),
            &json!({"application_id": "nope"}),
        )
        .await;
    assert_problem(&res, 422, "an application id that is no id");

    let events: i64 =
        sqlx::query_scalar("SELECT count(*) FROM events WHERE aggregate_type = 'Bounty'")
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert_eq!(events, 2, "only the good bounty was posted (and opened)");
}

// ---------------------------------------------------------------------------------------------
// The read model
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_rebuilt_bounties_read_model_equals_the_live_one() {
    let app = TestApp::spawn().await;
    let admin = app.admin().await;
    let (poster, hunter, id) = submitted(&app).await;
    ok(&app, &poster, &id, "reject", json!({"reason": "again"})).await;
    ok(&app, &hunter, &id, "dispute", json!({"reason": "unfair"})).await;
    let res = app
        .post(
            &admin,
            &format!("/v1/admin/bounties/{id}/resolve"),
            &json!({"outcome": "pay_hunter"}),
        )
        .await;
    assert_eq!(res.status(), 200);
    let (poster2, open) = posted(&app, 5_000).await;
    let ann = app.user("ann").await;
    let anns = apply(&app, &ann, &open).await;
    app.client
        .delete(app.url(&format!("/v1/bounties/{open}/applications/{anns}")))
        .bearer_auth(&ann.access_token)
        .send()
        .await
        .unwrap();
    apply(&app, &app.user("ben").await, &open).await;
    ok(&app, &poster2, &open, "cancel", Value::Null).await;
    posted(&app, 10).await;
    app.settle().await;

    let bounties =
        projection("bounties", &app.opener()).expect("the bounties projection is registered");
    let head = app.head().await;
    let shadow = build_shadow(&app.pool, bounties.as_ref(), Some(head), &|_, _| {})
        .await
        .expect("build the shadow");
    assert_eq!(shadow.position, head);
    let differences = diff(&app.pool, bounties.as_ref()).await.expect("diff");
    assert_eq!(
        differences,
        vec![
            ("bounties".to_owned(), 0),
            ("bounty_applications".to_owned(), 0)
        ]
    );
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM bounties")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(rows, 3);
}
