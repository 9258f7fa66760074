//! Group commit (issue 7, docs/adr/0003-group-commit.md): concurrent commands' appends share
//! transactions, each command's events go in all or nothing, and optimistic concurrency stays
//! exact per aggregate.
//!
//! Each test holds the append lock in a transaction of its own while the appends gather, so
//! that they are sure to meet in the committer's queue, then lets them through.

mod common;

use bountyline::audit::chain;
use bountyline::store::EventRepository;
use bountyline_domain::task::Task;
use common::{wait_until, TestApp};
use cqrs_es::persist::{PersistedEventRepository, PersistenceError, SerializedEvent};
use serde_json::{json, Value};
use sqlx::{PgPool, Postgres, Transaction};
use std::ops::RangeInclusive;
use std::time::Duration;
use uuid::Uuid;

/// The append lock every insert into `events` takes (migrations/0001_event_store.sql).
const APPEND_LOCK: i64 = 1_651_271_030;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_appends_share_a_transaction_and_take_contiguous_positions() {
    let app = TestApp::spawn().await;
    let store = EventRepository::new(app.pool.clone());
    let held = hold_appends(&app.pool).await;
    let appends: Vec<_> = (0..30)
        .map(|i| {
            append(
                &store,
                probe(&Uuid::new_v4().to_string(), 1..=2, &i.to_string()),
            )
        })
        .collect();
    let_appends_through(&app.pool, held).await;
    for outcome in futures::future::join_all(appends).await {
        outcome.expect("task").expect("append");
    }

    let rows: Vec<(i64, String)> = sqlx::query_as(
        "SELECT position, xmin::text FROM events WHERE aggregate_type = 'Probe' ORDER BY position",
    )
    .fetch_all(&app.pool)
    .await
    .expect("stored probes");
    assert_eq!(rows.len(), 60);
    let positions: Vec<i64> = rows.iter().map(|r| r.0).collect();
    assert_eq!(
        positions,
        (1..=60).collect::<Vec<_>>(),
        "gap-free from the first"
    );
    let mut transactions: Vec<&str> = rows.iter().map(|r| r.1.as_str()).collect();
    transactions.dedup();
    // The committer's first group waited on the lock alone or with a few; everything that
    // queued behind it went in together.
    assert!(
        transactions.len() <= 2,
        "30 commands took {} transactions",
        transactions.len()
    );
    assert!(chain::verify(&app.pool).await.expect("verify").ok);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn of_racing_appends_to_one_aggregate_one_wins_and_the_rest_append_nothing() {
    let app = TestApp::spawn().await;
    let store = EventRepository::new(app.pool.clone());
    let contended = Uuid::new_v4().to_string();
    store
        .persist::<Task>(&probe(&contended, 1..=1, "seed"), None)
        .await
        .expect("seed");

    let held = hold_appends(&app.pool).await;
    // Every racer decided on version 1 and appends three events; the bystanders append to
    // aggregates of their own, in the same groups.
    let racers: Vec<_> = (0..10)
        .map(|i| append(&store, probe(&contended, 2..=4, &format!("racer {i}"))))
        .collect();
    let bystanders: Vec<_> = (0..10)
        .map(|i| {
            append(
                &store,
                probe(&Uuid::new_v4().to_string(), 1..=1, &i.to_string()),
            )
        })
        .collect();
    let_appends_through(&app.pool, held).await;

    let mut winners = 0;
    for outcome in futures::future::join_all(racers).await {
        match outcome.expect("task") {
            Ok(()) => winners += 1,
            Err(PersistenceError::OptimisticLockError) => {}
            Err(other) => panic!("a racer failed: {other}"),
        }
    }
    assert_eq!(winners, 1, "exactly one racer wins version 2");
    for outcome in futures::future::join_all(bystanders).await {
        outcome
            .expect("task")
            .expect("a bystander is not failed by the racers");
    }

    let stream = stored(&app.pool, &contended).await;
    assert_eq!(stream.iter().map(|e| e.0).collect::<Vec<_>>(), [1, 2, 3, 4]);
    let winner = &stream[1].1;
    assert!(
        stream[1..].iter().all(|e| &e.1 == winner),
        "the stream mixes racers: {stream:?}"
    );
    assert!(chain::verify(&app.pool).await.expect("verify").ok);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_command_the_database_refuses_fails_alone_and_leaves_none_of_its_events() {
    let app = TestApp::spawn().await;
    let store = EventRepository::new(app.pool.clone());
    let refused = Uuid::new_v4().to_string();
    // jsonb cannot hold a NUL character: the second event of this command is refused.
    let mut poisoned = probe(&refused, 1..=2, "poisoned");
    poisoned[1].payload = json!({"mark": "poisoned", "text": "\u{0}"});

    let held = hold_appends(&app.pool).await;
    let poisoned = append(&store, poisoned);
    let others: Vec<_> = (0..10)
        .map(|i| {
            append(
                &store,
                probe(&Uuid::new_v4().to_string(), 1..=2, &i.to_string()),
            )
        })
        .collect();
    let_appends_through(&app.pool, held).await;

    match poisoned.await.expect("task") {
        Err(PersistenceError::UnknownError(_)) => {}
        other => panic!("the refused command answered {other:?}"),
    }
    for outcome in futures::future::join_all(others).await {
        outcome.expect("task").expect("the others commit");
    }
    assert!(stored(&app.pool, &refused).await.is_empty());
    let probes: i64 =
        sqlx::query_scalar("SELECT count(*) FROM events WHERE aggregate_type = 'Probe'")
            .fetch_one(&app.pool)
            .await
            .expect("count");
    assert_eq!(probes, 20);
    assert!(chain::verify(&app.pool).await.expect("verify").ok);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_http_commands_on_one_task_take_turns_beside_other_commands() {
    let app = TestApp::spawn().await;
    let (alice, worker) = (app.user("alice").await, app.user("worker").await);
    let created = app.create_task(&alice, "q", "contended", 0).await;
    app.wait_for_projection("tasks", created["position"].as_i64().unwrap())
        .await;
    app.may_work("q", &worker).await;
    let claim = app.post(&worker, "/v1/queues/q/claim", &json!({})).await;
    assert_eq!(claim.status(), 200);
    let id = created["id"].as_str().unwrap().to_owned();
    let before = stored_tasks(&app.pool, &id).await;

    let held = hold_appends(&app.pool).await;
    let send = |path: String, body: Value, token: String| {
        let (client, url) = (app.client.clone(), app.url(&path));
        tokio::spawn(async move {
            let res = client
                .post(url)
                .bearer_auth(token)
                .json(&body)
                .send()
                .await
                .expect("request");
            (res.status().as_u16(), res.text().await.expect("body"))
        })
    };
    let heartbeats: Vec<_> = (0..8)
        .map(|i| {
            let body = json!({"progress": i});
            send(
                format!("/v1/tasks/{id}/heartbeat"),
                body,
                worker.access_token.clone(),
            )
        })
        .collect();
    let creates: Vec<_> = (0..8)
        .map(|i| {
            let body = json!({"queue": "other", "title": format!("beside {i}")});
            send("/v1/tasks".into(), body, alice.access_token.clone())
        })
        .collect();
    let_appends_through(&app.pool, held).await;

    let heartbeats: Vec<_> = futures::future::join_all(heartbeats).await;
    // One process: the heartbeats take turns on the task (src/commands/turns.rs), each
    // deciding on the version the one before it left, so none conflicts.
    let mut versions = Vec::new();
    for (status, body) in heartbeats.into_iter().map(|r| r.expect("task")) {
        assert_eq!(status, 200, "{body}");
        let answer: Value = serde_json::from_str(&body).expect("json");
        versions.push(answer["version"].as_i64().expect("version"));
    }
    versions.sort_unstable();
    let first = versions[0];
    assert_eq!(versions, (first..first + 8).collect::<Vec<i64>>());
    for (status, body) in futures::future::join_all(creates)
        .await
        .into_iter()
        .map(|r| r.expect("task"))
    {
        assert_eq!(status, 201, "{body}");
        // The answer names the version and position the group gave this command's event.
        let answer: Value = serde_json::from_str(&body).expect("json");
        let stored: (i64, i64) = sqlx::query_as(
            "SELECT sequence, position FROM events WHERE aggregate_type = 'Task' AND aggregate_id = $1",
        )
        .bind(answer["id"].as_str().expect("id"))
        .fetch_one(&app.pool)
        .await
        .expect("the created task's event");
        assert_eq!(
            (answer["version"].as_i64(), answer["position"].as_i64()),
            (Some(stored.0), Some(stored.1))
        );
    }
    assert_eq!(stored_tasks(&app.pool, &id).await, before + 8);
}

/// `append_group` (migrations/0018, 0020) decides in arrival order: the first command at a version
/// wins, one decided on the same version loses, one decided on the winner's version follows
/// it; streams do not interfere; a loser appends nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_group_statement_decides_each_stream_in_arrival_order() {
    let app = TestApp::spawn().await;
    let (t1, t2) = (Uuid::new_v4().to_string(), Uuid::new_v4().to_string());
    let first = append_group(&app.pool, &[(&t1, 1..=2, "first", None)]).await;
    assert!(first[0] > 0, "{first:?}");

    let positions = append_group(
        &app.pool,
        &[
            (&t1, 3..=3, "a", None),
            (&t1, 3..=4, "b", None),
            (&t1, 4..=4, "c", None),
            (&t2, 5..=5, "d", None),
            (&t2, 1..=1, "e", None),
        ],
    )
    .await;
    let won: Vec<bool> = positions.iter().map(|p| *p > 0).collect();
    assert_eq!(won, [true, false, true, false, true], "{positions:?}");
    assert!(positions[0] < positions[2] && positions[2] < positions[4]);
    assert_eq!(
        stored(&app.pool, &t1).await,
        [
            (1, "first".to_owned()),
            (2, "first".to_owned()),
            (3, "a".to_owned()),
            (4, "c".to_owned())
        ]
    );
    assert_eq!(stored(&app.pool, &t2).await, [(1, "e".to_owned())]);
}

/// A delivery's reference is claimed with the winner's events: a command whose reference is
/// claimed with another body, stored or by a winner before it in the group, loses and moves
/// neither its stream nor the claim; the same body again (a delivery run again) does not lose.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_group_statement_claims_deliveries_with_their_events() {
    let app = TestApp::spawn().await;
    sqlx::query("INSERT INTO webhook_deliveries (reference, body_hash, event) VALUES ('r1', '\\xaa', 'deposit.succeeded')")
        .execute(&app.pool)
        .await
        .expect("a stored claim");
    let [w1, w2, w3, w5] = [(); 4].map(|_| Uuid::new_v4().to_string());
    let positions = append_group(
        &app.pool,
        &[
            (&w1, 1..=1, "w1", Some(("r1", "aa"))),
            (&w2, 1..=1, "w2", Some(("r2", "bb"))),
            (&w3, 1..=1, "w3", Some(("r2", "cc"))),
            (&w3, 1..=1, "w4", None),
            (&w5, 1..=1, "w5", Some(("r1", "ff"))),
        ],
    )
    .await;
    let won: Vec<bool> = positions.iter().map(|p| *p > 0).collect();
    assert_eq!(won, [true, true, false, true, false], "{positions:?}");
    assert_eq!(stored(&app.pool, &w3).await, [(1, "w4".to_owned())]);
    assert!(stored(&app.pool, &w5).await.is_empty());
    let claims: Vec<(String, String)> = sqlx::query_as(
        "SELECT reference, encode(body_hash, 'hex') FROM webhook_deliveries ORDER BY reference",
    )
    .fetch_all(&app.pool)
    .await
    .expect("claims");
    assert_eq!(
        claims,
        [
            ("r1".to_owned(), "aa".to_owned()),
            ("r2".to_owned(), "bb".to_owned())
        ]
    );
}

/// One probe command: its stream, its events' sequences, the mark they carry, and the
/// delivery (reference, body hash) it claims.
type ProbeCommand<'a> = (
    &'a str,
    RangeInclusive<usize>,
    &'a str,
    Option<(&'a str, &'a str)>,
);

/// Runs `append_group` as the committer does (one statement, no transaction around it).
async fn append_group(pool: &PgPool, commands: &[ProbeCommand<'_>]) -> Vec<i64> {
    let (of_command, events): (Vec<i32>, Vec<SerializedEvent>) = (1..)
        .zip(commands)
        .flat_map(|(n, (stream, sequences, mark, _))| {
            probe(stream, sequences.clone(), mark)
                .into_iter()
                .map(move |e| (n, e))
        })
        .unzip();
    sqlx::query_scalar(
        "SELECT append_group($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, \
         $16, $17, $18)",
    )
    .bind(each(commands, |_| "Probe"))
    .bind(each(commands, |c| c.0))
    .bind(each(commands, |c| *c.1.start() as i64))
    .bind(each(commands, |c| *c.1.end() as i64))
    .bind(each(commands, |c| Some(c.3?.0)))
    .bind(each(commands, |c| Some(c.3?.1)))
    .bind(each(commands, |c| c.3.map(|_| "deposit.succeeded")))
    // No Idempotency-Keys: the probes' actor, key and command id (tests/exactly_once.rs
    // tries keyed commands).
    .bind(each(commands, |_| "probe"))
    .bind(each(commands, |_| None::<&str>))
    .bind(each(commands, |c| c.2))
    .bind(of_command)
    .bind(each(&events, |e| e.aggregate_type.clone()))
    .bind(each(&events, |e| e.aggregate_id.clone()))
    .bind(each(&events, |e| e.sequence as i64))
    .bind(each(&events, |e| e.event_type.clone()))
    .bind(each(&events, |e| e.event_version.clone()))
    .bind(each(&events, |e| e.payload.clone()))
    .bind(each(&events, |e| e.metadata.clone()))
    .fetch_one(pool)
    .await
    .expect("append_group")
}

/// One parameter array: a part of each item.
fn each<S, T>(items: &[S], part: impl Fn(&S) -> T) -> Vec<T> {
    items.iter().map(part).collect()
}

/// A transaction holding the append lock: every append waits until it ends.
async fn hold_appends(pool: &PgPool) -> Transaction<'static, Postgres> {
    let mut held = pool.begin().await.expect("begin");
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(APPEND_LOCK)
        .execute(&mut *held)
        .await
        .expect("take the append lock");
    held
}

/// Waits until an append waits on the lock (the committer, with its first group) and gives
/// the rest a moment to queue behind it, then ends the held transaction.
async fn let_appends_through(pool: &PgPool, held: Transaction<'static, Postgres>) {
    wait_until(
        Duration::from_secs(20),
        "an append to wait on the lock",
        || async {
            let waiting: i64 = sqlx::query_scalar(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted \
             AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
            )
            .fetch_one(pool)
            .await
            .expect("pg_locks");
            waiting > 0
        },
    )
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    held.rollback().await.expect("release the append lock");
}

fn append(
    store: &EventRepository,
    events: Vec<SerializedEvent>,
) -> tokio::task::JoinHandle<Result<(), PersistenceError>> {
    let store = store.clone();
    tokio::spawn(async move { store.persist::<Task>(&events, None).await })
}

/// One command's events on a `Probe` stream (a type no projection knows), marked with it.
fn probe(stream: &str, sequences: RangeInclusive<usize>, mark: &str) -> Vec<SerializedEvent> {
    sequences
        .map(|sequence| {
            SerializedEvent::new(
                stream.to_owned(),
                sequence,
                "Probe".to_owned(),
                "Probed".to_owned(),
                "1".to_owned(),
                json!({ "mark": mark }),
                json!({ "command_id": mark }),
            )
        })
        .collect()
}

/// A probe stream's (sequence, mark) pairs.
async fn stored(pool: &PgPool, stream: &str) -> Vec<(i64, String)> {
    sqlx::query_as(
        "SELECT sequence, payload ->> 'mark' FROM events \
         WHERE aggregate_type = 'Probe' AND aggregate_id = $1 ORDER BY sequence",
    )
    .bind(stream)
    .fetch_all(pool)
    .await
    .expect("stored stream")
}

async fn stored_tasks(pool: &PgPool, id: &str) -> i64 {
    sqlx::query_scalar(
        "SELECT count(*) FROM events WHERE aggregate_type = 'Task' AND aggregate_id = $1",
    )
    .bind(id)
    .fetch_one(pool)
    .await
    .expect("count")
}

/// Two processes' commands on one wallet, both decided on the same version and meeting at
/// the append: the loser is decided again on the winner's state instead of answering 409
/// (src/commands/mod.rs, `TRIES_ON_CONFLICT`).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_command_that_loses_to_another_process_is_decided_again() {
    use bountyline::commands::{CommandBus, CommandContext};
    use bountyline_domain::money::{Currency, Money};
    use bountyline_domain::values::ProviderReference;
    use bountyline_domain::wallet::WalletCommand;

    let app = TestApp::spawn().await;
    let (here, there) = (
        CommandBus::new(app.pool.clone()),
        CommandBus::new(app.pool.clone()),
    );
    let ctx = CommandContext::system("conflict retry test");
    let owner = Uuid::new_v4();
    let deposit = |reference: &str| WalletCommand::Deposit {
        owner,
        reference: ProviderReference::parse(reference).expect("reference"),
        money: Money::positive(100, Currency::parse("USD").expect("usd")).expect("money"),
        at: chrono::Utc::now(),
    };
    here.wallet(owner, deposit("first"), &ctx)
        .await
        .expect("the first deposit");

    let held = hold_appends(&app.pool).await;
    let (a, b) = (deposit("from-here"), deposit("from-there"));
    let (ctx_a, ctx_b) = (ctx.clone(), ctx.clone());
    let from_here = tokio::spawn(async move { here.wallet(owner, a, &ctx_a).await });
    let from_there = tokio::spawn(async move { there.wallet(owner, b, &ctx_b).await });
    // Both committers wait on the lock, each with a command decided on version 1.
    wait_until(Duration::from_secs(20), "both appends to wait", || async {
        let waiting: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted \
             AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
        )
        .fetch_one(&app.pool)
        .await
        .expect("pg_locks");
        waiting >= 2
    })
    .await;
    held.rollback().await.expect("release the append lock");

    let mut versions = vec![
        from_here
            .await
            .expect("task")
            .expect("here's deposit")
            .version,
        from_there
            .await
            .expect("task")
            .expect("there's deposit")
            .version,
    ];
    versions.sort_unstable();
    assert_eq!(versions, vec![2, 3]);
}

/// A command's wait for its append is measured from its queueing to its answer
/// (`bountyline_append_wait_seconds`): a command held behind the append lock shows the wait.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_commands_wait_for_its_append_is_measured() {
    let app = TestApp::spawn().await;
    let alice = app.user("alice").await;
    let waited = || async {
        app.value("bountyline_append_wait_seconds_sum")
            .await
            .unwrap_or(0.0)
    };
    let before = (
        app.counter("bountyline_append_wait_seconds_count").await,
        waited().await,
    );
    let held = hold_appends(&app.pool).await;
    let hold = Duration::from_millis(500);
    let (created, ()) = tokio::join!(app.create_task(&alice, "q", "held", 1), async {
        tokio::time::sleep(hold).await;
        held.rollback().await.expect("release the append lock");
    });
    assert!(created["position"].as_i64() > Some(0), "{created}");
    assert!(app.counter("bountyline_append_wait_seconds_count").await > before.0);
    let wait = waited().await - before.1;
    assert!(
        wait >= hold.as_secs_f64() * 0.9,
        "the append waited {wait} s behind a lock held for {hold:?}"
    );
}
