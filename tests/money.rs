//! The money invariant (DESIGN.md guarantee 11) under concurrency: a few hundred random
//! operations through the HTTP API from concurrent clients, then, once everything settled:
//! sum of available + held = settled deposits − completed withdrawals, to the cent, from the
//! read model and from the event store alike; no balance was negative in any read; every
//! escrow hold resolved at most once; and no money flow is left with an error.

mod common;

use common::{TestApp, TestUser};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::Mutex;

const USERS: usize = 6;
const OPS_PER_CLIENT: usize = 80;
const SEED: u64 = 20261122;

/// What the clients saw settle, to check the books against.
#[derive(Default)]
struct Ledger {
    deposited: i64,
    withdrawn: i64,
    pending_withdrawals: Vec<(usize, String, i64)>,
    bounties: Vec<(usize, String)>,
    ops: usize,
    accepted: usize,
}

struct World<'a> {
    app: &'a TestApp,
    users: Vec<TestUser>,
    admin: TestUser,
    ledger: Mutex<Ledger>,
}

impl World<'_> {
    async fn call(&self, user: &TestUser, method: &str, path: &str, body: Value) -> (u16, Value) {
        // Reads see at least everything committed so far, as a careful client would ask.
        let head = self.app.head().await;
        let res = self
            .app
            .client
            .request(method.parse().unwrap(), self.app.url(path))
            .bearer_auth(&user.access_token)
            .header("X-Min-Position", head.to_string())
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = res.status().as_u16();
        assert!(status < 500, "{method} {path}: {status}");
        (status, res.json().await.unwrap_or(Value::Null))
    }

    async fn step(&self, me: usize, rng: &mut StdRng) {
        let user = &self.users[me];
        let choice = rng.random_range(0..100);
        let ok = match choice {
            0..=14 => {
                let amount = rng.random_range(100..5_000);
                let body = json!({"event": "deposit.succeeded", "reference": format!("d-{me}-{}", rng.random::<u64>()),
                                  "user_id": user.id, "amount": amount, "currency": "USD"});
                let res = self.app.webhook(&body, true).await;
                let ok = res.status() == 200;
                if ok {
                    self.ledger.lock().unwrap().deposited += amount;
                }
                ok
            }
            15..=24 => {
                let amount = rng.random_range(50..1_500);
                let (s, b) = self
                    .call(
                        user,
                        "POST",
                        "/v1/wallets/me/withdrawals",
                        json!({"amount": amount, "currency": "USD"}),
                    )
                    .await;
                if s == 201 {
                    let id = b["withdrawal_id"].as_str().unwrap().to_owned();
                    self.ledger
                        .lock()
                        .unwrap()
                        .pending_withdrawals
                        .push((me, id, amount));
                }
                s == 201
            }
            25..=32 => {
                let pending = {
                    let mut l = self.ledger.lock().unwrap();
                    let n = l.pending_withdrawals.len();
                    (n > 0).then(|| l.pending_withdrawals.swap_remove(rng.random_range(0..n)))
                };
                let Some((owner, id, amount)) = pending else {
                    return;
                };
                let succeed = rng.random_bool(0.7);
                let event = if succeed {
                    "withdrawal.succeeded"
                } else {
                    "withdrawal.failed"
                };
                let body = json!({"event": event, "reference": format!("w-{id}"), "user_id": self.users[owner].id,
                                  "amount": amount, "currency": "USD", "withdrawal_id": id});
                let ok = self.app.webhook(&body, true).await.status() == 200;
                if ok && succeed {
                    self.ledger.lock().unwrap().withdrawn += amount;
                }
                ok
            }
            33..=38 => {
                let reward = rng.random_range(100..3_000);
                let (s, b) = self.call(user, "POST", "/v1/bounties",
                    json!({"title": format!("job {}", rng.random::<u16>()), "description": "do it",
                           "reward": {"amount": reward, "currency": "USD"}, "tags": ["rust"]})).await;
                if s == 201 {
                    self.ledger
                        .lock()
                        .unwrap()
                        .bounties
                        .push((me, b["id"].as_str().unwrap().to_owned()));
                }
                s == 201
            }
            _ => {
                let picked = {
                    let l = self.ledger.lock().unwrap();
                    // Mostly the newest few, so that bounties get far enough to pay out.
                    let n = l.bounties.len();
                    (n > 0).then(|| l.bounties[n - 1 - rng.random_range(0..n.min(4))].clone())
                };
                let Some((poster, id)) = picked else { return };
                self.act_on_bounty(me, poster, &id, rng).await
            }
        };
        let mut l = self.ledger.lock().unwrap();
        l.ops += 1;
        l.accepted += usize::from(ok);
    }

    /// Moves a bounty along whatever its state allows, from whoever may.
    async fn act_on_bounty(&self, _me: usize, poster: usize, id: &str, rng: &mut StdRng) -> bool {
        let (_, bounty) = self
            .call(
                &self.users[poster],
                "GET",
                &format!("/v1/bounties/{id}"),
                Value::Null,
            )
            .await;
        let status = bounty["status"].as_str().unwrap_or("");
        let path = |action: &str| format!("/v1/bounties/{id}/{action}");
        let (who, method, url, body) = match status {
            "open" => {
                let pending = bounty["applications"].as_array().and_then(|apps| {
                    apps.iter()
                        .find(|a| a["status"] == "pending")
                        .map(|a| a["id"].clone())
                });
                let applicant = (poster + 1 + rng.random_range(0..USERS - 1)) % USERS;
                match pending {
                    Some(app_id) if rng.random_bool(0.7) => (
                        poster,
                        "POST",
                        path("accept"),
                        json!({"application_id": app_id}),
                    ),
                    _ if rng.random_bool(0.9) => (
                        applicant,
                        "POST",
                        path("applications"),
                        json!({"pitch": "me!"}),
                    ),
                    _ => (poster, "POST", path("cancel"), Value::Null),
                }
            }
            "assigned" => {
                let hunter = self.index_of(&bounty["hunter"]);
                match (hunter, rng.random_range(0..10)) {
                    (Some(h), 0..=7) => (
                        h,
                        "POST",
                        path("submit"),
                        json!({"deliverable": {"text": "done"}}),
                    ),
                    (Some(h), 8) => (h, "POST", path("dispute"), json!({"reason": "unclear"})),
                    _ => (poster, "POST", path("cancel"), Value::Null),
                }
            }
            "submitted" => match rng.random_range(0..10) {
                0..=5 => (poster, "POST", path("approve"), Value::Null),
                6..=7 => (
                    poster,
                    "POST",
                    path("reject"),
                    json!({"reason": "more please"}),
                ),
                _ => (poster, "POST", path("dispute"), json!({"reason": "not it"})),
            },
            "disputed" => {
                let outcome = if rng.random_bool(0.5) {
                    "pay_hunter"
                } else {
                    "refund_poster"
                };
                let (s, _) = self
                    .call(
                        &self.admin,
                        "POST",
                        &format!("/v1/admin/bounties/{id}/resolve"),
                        json!({"outcome": outcome}),
                    )
                    .await;
                return s == 200;
            }
            _ => return false,
        };
        let (s, answer) = self.call(&self.users[who], method, &url, body).await;
        if std::env::var("MONEY_DEBUG").is_ok() && !(200..300).contains(&s) {
            eprintln!("{status} {url}: {s} {answer}");
        }
        (200..300).contains(&s)
    }

    fn index_of(&self, id: &Value) -> Option<usize> {
        let id = id.as_str()?;
        self.users.iter().position(|u| u.id.to_string() == id)
    }

    /// Every read a client makes must show non-negative balances.
    async fn check_balances_read(&self, me: usize) {
        let (s, b) = self
            .call(&self.users[me], "GET", "/v1/wallets/me", Value::Null)
            .await;
        assert_eq!(s, 200);
        for balance in b["balances"].as_array().unwrap() {
            assert!(balance["available"].as_i64().unwrap() >= 0, "{balance}");
            assert!(balance["held"].as_i64().unwrap() >= 0, "{balance}");
        }
    }
}

#[tokio::test]
async fn money_is_conserved_through_hundreds_of_concurrent_random_operations() {
    let app = TestApp::spawn().await;
    let mut users = Vec::new();
    for i in 0..USERS {
        users.push(app.user(&format!("trader{i}")).await);
    }
    let world = World {
        admin: app.admin().await,
        app: &app,
        users,
        ledger: Mutex::new(Ledger::default()),
    };
    let clients = (0..USERS).map(|me| {
        let world = &world;
        async move {
            let mut rng = StdRng::seed_from_u64(SEED + me as u64);
            for i in 0..OPS_PER_CLIENT {
                world.step(me, &mut rng).await;
                if i % 10 == 0 {
                    world.check_balances_read(me).await;
                }
            }
        }
    });
    futures::future::join_all(clients).await;
    app.settle().await;

    let ledger = std::mem::take(&mut *world.ledger.lock().unwrap());
    // 1. The read model's books balance to the cent.
    let (available, held): (i64, i64) = sqlx::query_as(
        "SELECT coalesce(sum(available), 0)::bigint, coalesce(sum(held), 0)::bigint \
         FROM wallet_balances WHERE currency = 'USD'",
    )
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!(
        available + held,
        ledger.deposited - ledger.withdrawn,
        "read model books"
    );

    // 2. The aggregates agree: the last balance each wallet's events carry.
    let from_events: HashMap<String, (i64, i64)> = sqlx::query_as::<_, (String, i64, i64)>(
        "SELECT DISTINCT ON (aggregate_id) aggregate_id, \
           (payload -> event_type ->> 'available')::bigint, (payload -> event_type ->> 'held')::bigint \
         FROM events WHERE aggregate_type = 'Wallet' ORDER BY aggregate_id, sequence DESC",
    )
    .fetch_all(&app.pool)
    .await
    .unwrap()
    .into_iter()
    .map(|(id, a, h)| (id, (a, h)))
    .collect();
    let read_model: HashMap<String, (i64, i64)> = sqlx::query_as::<_, (uuid::Uuid, i64, i64)>(
        "SELECT user_id, available, held FROM wallet_balances WHERE currency = 'USD'",
    )
    .fetch_all(&app.pool)
    .await
    .unwrap()
    .into_iter()
    .map(|(id, a, h)| (id.to_string(), (a, h)))
    .collect();
    assert_eq!(from_events, read_model, "read model equals the aggregates");

    // 3. Every hold resolved at most once, and resolved holds match their payments.
    let double: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM (SELECT payload -> event_type ->> 'payment_id' FROM events \
         WHERE event_type IN ('HoldReleased', 'HoldRefunded') GROUP BY 1 HAVING count(*) > 1) d",
    )
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!(double, 0, "a hold resolved twice");
    let unsettled: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM payments WHERE status IN ('releasing', 'refunding', 'requested')",
    )
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!(unsettled, 0, "every flow completed once things settled");
    let errors: Vec<(uuid::Uuid, String, Option<String>)> = sqlx::query_as(
        "SELECT flow_id, step, last_error FROM process_flows WHERE last_error IS NOT NULL",
    )
    .fetch_all(&app.pool)
    .await
    .unwrap();
    assert!(errors.is_empty(), "flows with errors: {errors:?}");
    let parked: i64 = sqlx::query_scalar("SELECT count(*) FROM parked_events")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(parked, 0);
    // 4. An operator sees the flows: none stuck, the finished ones done.
    let (s, stuck) = world
        .call(
            &world.admin,
            "GET",
            "/v1/admin/flows?state=stuck",
            Value::Null,
        )
        .await;
    assert_eq!(s, 200);
    assert_eq!(stuck["items"], json!([]));
    let (_, all) = world
        .call(
            &world.admin,
            "GET",
            "/v1/admin/flows?state=all",
            Value::Null,
        )
        .await;
    let flows = all["items"].as_array().unwrap();
    let bounties = ledger.bounties.len();
    assert_eq!(flows.len(), bounties, "one flow per bounty's payment");
    let (s, _) = world
        .call(&world.users[0], "GET", "/v1/admin/flows", Value::Null)
        .await;
    assert_eq!(s, 403);
    let statuses: Vec<(String, i64)> =
        sqlx::query_as("SELECT status, count(*) FROM bounties GROUP BY status ORDER BY status")
            .fetch_all(&app.pool)
            .await
            .unwrap();
    eprintln!(
        "money: {} operations ({} accepted), deposited {}, withdrawn {}, {} bounties {statuses:?}; books balance",
        ledger.ops, ledger.accepted, ledger.deposited, ledger.withdrawn, ledger.bounties.len()
    );
}
