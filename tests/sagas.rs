//! The process managers move money exactly once: a redelivery of the whole history, or a
//! worker stopped half way through a flow, never moves it twice, and running again
//! completes every flow.

mod common;

use bountyline::config::Settings;
use bountyline::startup::Parts;
use bountyline::store::APPLICATION_NAME;
use bountyline_projections::checkpoint;
use bountyline_wire::{Proxy, Rule};
use common::{
    bountyline_command, fresh_database, test_settings, wait_until, KillOnDrop, TestApp, TestUser,
};
use serde_json::{json, Value};
use sqlx::{Connection, PgConnection};
use std::net::SocketAddr;
use std::process::Stdio;
use std::time::Duration;
use uuid::Uuid;

async fn post_bounty(app: &TestApp, poster: &TestUser, reward: i64) -> String {
    let res = app
        .post(
            poster,
            "/v1/bounties",
            &json!({"title": "a job", "description": "do it",
            "reward": {"amount": reward, "currency": "USD"}}),
        )
        .await;
    assert_eq!(res.status(), 201);
    res.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// Takes a funded bounty from open to approved (the payout is the process managers' job).
async fn approve(app: &TestApp, id: &str, poster: &TestUser, hunter: &TestUser) {
    submit_work(app, id, poster, hunter).await;
    approve_work(app, id, poster).await;
}

/// Takes a funded bounty from open to work submitted: `hunter` applies, is accepted, submits.
async fn submit_work(app: &TestApp, id: &str, poster: &TestUser, hunter: &TestUser) {
    app.settle().await;
    let res = app
        .post(
            hunter,
            &format!("/v1/bounties/{id}/applications"),
            &json!({"pitch": "me"}),
        )
        .await;
    assert_eq!(res.status(), 201);
    let application: Value = res.json().await.unwrap();
    app.settle().await;
    let accept = app
        .post(
            poster,
            &format!("/v1/bounties/{id}/accept"),
            &json!({"application_id": application["application_id"]}),
        )
        .await;
    assert_eq!(accept.status(), 200);
    let submit = app
        .post(
            hunter,
            &format!("/v1/bounties/{id}/submit"),
            &json!({"deliverable": {"text": "done"}}),
        )
        .await;
    assert_eq!(submit.status(), 200);
}

/// The poster approves the submitted work, which sets off the payout.
async fn approve_work(app: &TestApp, id: &str, poster: &TestUser) {
    assert_eq!(
        app.post(poster, &format!("/v1/bounties/{id}/approve"), &json!({}))
            .await
            .status(),
        200
    );
}

async fn money_events(app: &TestApp) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM events WHERE aggregate_type IN ('Wallet', 'Payment')")
        .fetch_one(&app.pool)
        .await
        .unwrap()
}

#[tokio::test]
async fn replaying_every_event_through_the_process_managers_moves_no_money_twice() {
    let app = TestApp::spawn().await;
    let (poster, hunter) = (app.user("poster").await, app.user("hunter").await);
    app.deposit(&poster, 10_000, "USD").await;
    let paid = post_bounty(&app, &poster, 3_000).await;
    approve(&app, &paid, &poster, &hunter).await;
    let refunded = post_bounty(&app, &poster, 2_000).await;
    app.settle().await;
    assert_eq!(
        app.post(
            &poster,
            &format!("/v1/bounties/{refunded}/cancel"),
            &json!({})
        )
        .await
        .status(),
        200
    );
    app.settle().await;
    let before = (
        app.balances(&poster).await,
        app.balances(&hunter).await,
        money_events(&app).await,
    );
    assert_eq!(
        before.0["balances"][0],
        json!({"currency": "USD", "available": 7000, "held": 0})
    );
    assert_eq!(
        before.1["balances"][0],
        json!({"currency": "USD", "available": 3000, "held": 0})
    );

    // Forget the process managers' progress and deliver the whole history again.
    sqlx::query(
        "UPDATE projection_checkpoints SET position = 0 WHERE projection = 'process-managers'",
    )
    .execute(&app.pool)
    .await
    .unwrap();
    app.republish_everything().await;
    app.wait_for_consumer_to_drain().await;
    app.settle().await;

    let after = (
        app.balances(&poster).await,
        app.balances(&hunter).await,
        money_events(&app).await,
    );
    assert_eq!(
        after, before,
        "a full redelivery moved money or appended money events"
    );
}

/// A payout interrupted between its steps, where a crash hurts most: the worker has credited
/// the hunter but not yet released the poster's hold, marked the payment released or recorded
/// that it handled the event. The interruption is made, not hoped for: the worker is a real
/// `bountyline work` process whose connections to Postgres run through the fault proxy
/// (`campaign/wire`); the flow's row, locked by the test, holds its process managers at the
/// payout's second batch, and the proxy then withholds the answer to the next append (the
/// hunter's receipt, committed) so that the worker hangs there until it is killed. The state
/// is checked at that moment, and again once the worker is dead; a new worker must then
/// complete the flow exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_payout_interrupted_between_its_steps_completes_exactly_once_when_a_worker_runs_again() {
    let db = fresh_database().await;
    let settings = test_settings(&db, &std::env::var("NATS_URL").unwrap());
    let api = TestApp::spawn_with(settings.clone(), Parts::API).await;
    let (proxy, through) = behind_proxy(&db).await;
    let mut worker = worker_process(&settings, &through);
    let (poster, hunter) = (api.user("poster").await, api.user("hunter").await);
    api.deposit(&poster, 5_000, "USD").await;
    let id = post_bounty(&api, &poster, 4_000).await;
    submit_work(&api, &id, &poster, &hunter).await;
    api.settle().await;
    let payment = flow_of(&api, &id).await;

    // Hold the worker at the payout's first batch (WorkApproved): recording the flow's step
    // waits for the test's lock on the flow's row.
    let mut first = Locker::connect(&db).await;
    first.lock_flow(payment).await;
    approve_work(&api, &id, &poster).await;
    wait_for_a_waiting_flow_record(&api).await;
    // Queue a second lock behind the worker, then let the worker go: it runs the first batch
    // (Payment.Release) and commits it, the second lock is granted as it commits, and the
    // worker waits again, now at the payout's second batch (ReleaseRequested).
    let mut second = Locker::connect(&db).await;
    let second_pid = second.pid;
    let second = tokio::spawn(async move {
        second.lock_flow(payment).await;
        second
    });
    wait_until(Duration::from_secs(20), "the second lock to queue", || {
        waits_on_a_lock(&api, second_pid)
    })
    .await;
    first.release().await;
    let mut second = tokio::time::timeout(Duration::from_secs(20), second)
        .await
        .expect("the second lock within 20 s")
        .expect("the second lock");
    wait_for_a_waiting_flow_record(&api).await;
    let release_requested = position_of(&api, "Payment", payment, "ReleaseRequested").await;
    assert!(
        checkpoint::read(&api.pool, "process-managers")
            .await
            .unwrap()
            < release_requested,
        "the worker is held before its second batch"
    );

    // Stall the worker's next append (the hunter's receipt: it commits, its answer never
    // comes back), then let the worker run into it.
    proxy.arm(Rule::stall(APPLICATION_NAME, "append_group"));
    second.release().await;
    wait_until(Duration::from_secs(20), "the hunter's receipt", || async {
        wallet_events(&api, hunter.id).await == ["PaymentReceived"]
    })
    .await;
    assert_eq!(proxy.fired(), 1, "the receipt's answer was withheld");

    // Half way, and staying there while the worker hangs: the hunter is paid, the poster's
    // hold stands, the payment is not marked released, and neither the flow's step nor the
    // process managers' checkpoint says the second batch was handled.
    let half_way = Flow {
        payment: names(&["PaymentRequested", "PaymentHeld", "ReleaseRequested"]),
        poster: names(&["DepositConfirmed", "FundsHeld"]),
        hunter: names(&["PaymentReceived"]),
        bounty_closed: 0,
        step: ("releasing to hunter".into(), false),
    };
    let checkpoint_then = checkpoint::read(&api.pool, "process-managers")
        .await
        .unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_millis(500);
    while tokio::time::Instant::now() < deadline {
        assert_eq!(
            Flow::read(&api, payment, &poster, &hunter).await,
            half_way,
            "the flow went on past the interruption"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(checkpoint_then < release_requested);
    assert_eq!(
        balances_in_events(&api, &poster, &hunter).await,
        ((1_000, 4_000), (4_000, 0)),
        "the hunter is credited while the poster's hold stands"
    );

    // The worker dies (SIGKILL) with its batch open; its connections go with it.
    worker.kill();
    proxy.cut_all();
    wait_until(
        Duration::from_secs(20),
        "the killed worker's transaction to end",
        || checkpoint_unlocked(&api),
    )
    .await;
    assert_eq!(
        Flow::read(&api, payment, &poster, &hunter).await,
        half_way,
        "the killed worker moved the flow on"
    );
    assert_eq!(
        checkpoint::read(&api.pool, "process-managers")
            .await
            .unwrap(),
        checkpoint_then
    );

    // A new worker (straight to Postgres) runs the second batch again from the start, and the
    // flow completes once: one hold, one receipt, one release, one payout, balances exact.
    let _again = TestApp::spawn_with(settings, Parts::WORKERS).await;
    api.settle().await;
    assert_eq!(
        Flow::read(&api, payment, &poster, &hunter).await,
        Flow {
            payment: names(&[
                "PaymentRequested",
                "PaymentHeld",
                "ReleaseRequested",
                "PaymentReleased",
            ]),
            poster: names(&["DepositConfirmed", "FundsHeld", "HoldReleased"]),
            hunter: names(&["PaymentReceived"]),
            bounty_closed: 1,
            step: ("hunter paid".into(), true),
        }
    );
    assert_eq!(
        balances_in_events(&api, &poster, &hunter).await,
        ((1_000, 0), (4_000, 0))
    );
    assert_eq!(api.usd(&poster).await, (1_000, 0));
    assert_eq!(api.usd(&hunter).await, (4_000, 0));
    let detail: Value = api
        .get(&poster, &format!("/v1/bounties/{id}"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(detail["status"], "completed");
    let open: i64 = sqlx::query_scalar("SELECT count(*) FROM process_flows WHERE NOT done")
        .fetch_one(&api.pool)
        .await
        .unwrap();
    assert_eq!(open, 0);
}

/// The fault proxy in front of the test's Postgres, and `db` as a URL through it.
async fn behind_proxy(db: &str) -> (Proxy, String) {
    let (head, rest) = db.split_once('@').expect("a URL with credentials");
    let (server, database) = rest.split_once('/').expect("a URL with a database");
    let upstream: SocketAddr = server.parse().expect("Postgres on a loopback address");
    let proxy = Proxy::start(upstream).await.expect("the fault proxy");
    let through = format!("{head}@{}/{database}", proxy.address());
    (proxy, through)
}

/// A `bountyline work` process on the test's database (reached at `database_url`), NATS
/// prefix and keys; killed when dropped.
fn worker_process(settings: &Settings, database_url: &str) -> KillOnDrop {
    let bin = std::path::Path::new(env!("CARGO_BIN_EXE_bountyline"));
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    KillOnDrop(
        bountyline_command(bin, "work", settings, port)
            .env("DATABASE_URL", database_url)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start bountyline work"),
    )
}

/// The money flow (the payment's id) of bounty `id`.
async fn flow_of(app: &TestApp, id: &str) -> Uuid {
    sqlx::query_scalar("SELECT flow_id FROM process_flows WHERE bounty_id = $1")
        .bind(Uuid::parse_str(id).unwrap())
        .fetch_one(&app.pool)
        .await
        .expect("the bounty's flow")
}

/// A connection of the test's own that locks a flow's row until it is released.
struct Locker {
    connection: PgConnection,
    pid: i32,
}

impl Locker {
    async fn connect(db: &str) -> Locker {
        let mut connection = PgConnection::connect(db).await.unwrap();
        let pid = sqlx::query_scalar("SELECT pg_backend_pid()")
            .fetch_one(&mut connection)
            .await
            .unwrap();
        Locker { connection, pid }
    }

    /// Locks the flow's row (waiting for it if another transaction holds it).
    async fn lock_flow(&mut self, flow: Uuid) {
        sqlx::query("BEGIN")
            .execute(&mut self.connection)
            .await
            .unwrap();
        let locked: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM (SELECT 1 FROM process_flows WHERE flow_id = $1 FOR UPDATE) l",
        )
        .bind(flow)
        .fetch_one(&mut self.connection)
        .await
        .unwrap();
        assert_eq!(locked, 1, "the flow has a row to lock");
    }

    async fn release(&mut self) {
        sqlx::query("ROLLBACK")
            .execute(&mut self.connection)
            .await
            .unwrap();
    }
}

/// Whether backend `pid` waits for a lock.
async fn waits_on_a_lock(app: &TestApp, pid: i32) -> bool {
    sqlx::query_scalar::<_, bool>(
        "SELECT coalesce(bool_or(wait_event_type = 'Lock'), false) FROM pg_stat_activity \
         WHERE pid = $1",
    )
    .bind(pid)
    .fetch_one(&app.pool)
    .await
    .unwrap()
}

/// Waits until the process managers' record of a flow's step waits for a lock.
async fn wait_for_a_waiting_flow_record(app: &TestApp) {
    wait_until(
        Duration::from_secs(20),
        "the worker to wait for the flow's row",
        || async {
            sqlx::query_scalar::<_, i64>(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() \
                 AND wait_event_type = 'Lock' AND query LIKE 'INSERT INTO public.process_flows%'",
            )
            .fetch_one(&app.pool)
            .await
            .unwrap()
                == 1
        },
    )
    .await;
}

/// Whether no transaction holds the process managers' checkpoint.
async fn checkpoint_unlocked(app: &TestApp) -> bool {
    let mut tx = app.pool.begin().await.unwrap();
    let free: Option<i64> = sqlx::query_scalar(
        "SELECT position FROM projection_checkpoints WHERE projection = 'process-managers' \
         FOR UPDATE SKIP LOCKED",
    )
    .fetch_optional(&mut *tx)
    .await
    .unwrap();
    tx.rollback().await.unwrap();
    free.is_some()
}

/// The position of the `event_type` event of one aggregate.
async fn position_of(app: &TestApp, aggregate: &str, id: Uuid, event_type: &str) -> i64 {
    sqlx::query_scalar(
        "SELECT position FROM events WHERE aggregate_type = $1 AND aggregate_id = $2 \
         AND event_type = $3",
    )
    .bind(aggregate)
    .bind(id.to_string())
    .bind(event_type)
    .fetch_one(&app.pool)
    .await
    .expect("the event")
}

/// Event types of one aggregate, in its order.
async fn events_of(app: &TestApp, aggregate: &str, id: Uuid) -> Vec<String> {
    sqlx::query_scalar(
        "SELECT event_type FROM events WHERE aggregate_type = $1 AND aggregate_id = $2 \
         ORDER BY sequence",
    )
    .bind(aggregate)
    .bind(id.to_string())
    .fetch_all(&app.pool)
    .await
    .unwrap()
}

async fn wallet_events(app: &TestApp, owner: Uuid) -> Vec<String> {
    events_of(app, "Wallet", owner).await
}

fn names(types: &[&str]) -> Vec<String> {
    types.iter().map(|t| t.to_string()).collect()
}

/// Where a payout stands, from the store: the payment's events, each wallet's, how often the
/// bounty was closed as paid, and the flow's recorded step.
#[derive(Debug, PartialEq)]
struct Flow {
    payment: Vec<String>,
    poster: Vec<String>,
    hunter: Vec<String>,
    bounty_closed: i64,
    step: (String, bool),
}

impl Flow {
    async fn read(app: &TestApp, payment: Uuid, poster: &TestUser, hunter: &TestUser) -> Flow {
        let bounty_closed = sqlx::query_scalar(
            "SELECT count(*) FROM events WHERE aggregate_type = 'Bounty' \
             AND event_type IN ('BountyPaid', 'BountyRefunded') \
             AND payload -> event_type ->> 'payment_id' = $1",
        )
        .bind(payment.to_string())
        .fetch_one(&app.pool)
        .await
        .unwrap();
        let step = sqlx::query_as("SELECT step, done FROM process_flows WHERE flow_id = $1")
            .bind(payment)
            .fetch_one(&app.pool)
            .await
            .unwrap();
        Flow {
            payment: events_of(app, "Payment", payment).await,
            poster: wallet_events(app, poster.id).await,
            hunter: wallet_events(app, hunter.id).await,
            bounty_closed,
            step,
        }
    }
}

/// `((available, held) of the poster, of the hunter)` as their wallets' last events state
/// them: what the store says, whatever the read models have applied.
async fn balances_in_events(
    app: &TestApp,
    poster: &TestUser,
    hunter: &TestUser,
) -> ((i64, i64), (i64, i64)) {
    let last = |owner: Uuid| {
        let pool = app.pool.clone();
        async move {
            let (available, held): (i64, i64) = sqlx::query_as(
                "SELECT (payload -> event_type ->> 'available')::bigint, \
                 (payload -> event_type ->> 'held')::bigint \
                 FROM events WHERE aggregate_type = 'Wallet' AND aggregate_id = $1 \
                 ORDER BY sequence DESC LIMIT 1",
            )
            .bind(owner.to_string())
            .fetch_one(&pool)
            .await
            .unwrap();
            (available, held)
        }
    };
    (last(poster.id).await, last(hunter.id).await)
}

/// A batch that moves one flow several times records what moving it one event at a time
/// would: the last step stands, the first bounty named stays, and an older move changes
/// nothing.
#[tokio::test]
async fn a_batch_records_each_flow_as_its_events_one_by_one_would() {
    use bountyline::sagas::flows::{record, Moved, Progress};
    let app = TestApp::spawn().await;
    let (flow, bounty) = (uuid::Uuid::new_v4(), uuid::Uuid::new_v4());
    let moved = |step, bounty, done, position| Moved {
        position,
        progress: Progress {
            flow,
            kind: "bounty-reward",
            bounty,
            step,
            done,
        },
    };
    let mut tx = app.pool.begin().await.unwrap();
    record(
        &mut tx,
        &[
            moved("requesting hold", Some(bounty), false, 10),
            moved("funds held", None, false, 12),
            moved("marking bounty funded", None, true, 15),
        ],
    )
    .await
    .unwrap();
    record(&mut tx, &[moved("redelivered", None, false, 11)])
        .await
        .unwrap();
    tx.commit().await.unwrap();

    let row: (String, Option<uuid::Uuid>, bool, i64) = sqlx::query_as(
        "SELECT step, bounty_id, done, position FROM process_flows WHERE flow_id = $1",
    )
    .bind(flow)
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!(
        row,
        ("marking bounty funded".to_owned(), Some(bounty), true, 15)
    );
}
