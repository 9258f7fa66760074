//! The campaign's users: concurrent clients that drive random operations through the HTTP API,
//! each from its own seeded generator, and record every request with its outcome. A request
//! whose connection broke, timed out or met a 5xx has an unknown outcome; it is retried with
//! the same Idempotency-Key (or the same webhook reference) once the faults are over.

use rand::rngs::StdRng;
use rand::seq::IndexedRandom;
use rand::Rng;
use reqwest::Method;
use serde_json::{json, Value};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Duration;
use uuid::Uuid;

pub const CURRENCY: &str = "USD";
/// The queues the clients post to and claim from.
const QUEUES: [&str; 2] = ["alpha", "beta"];
/// Leases the clients take; some run out (a client that never completes), which the workers'
/// lease-expiry scheduler must turn back into queued tasks.
pub const LEASE_SECONDS: u64 = 20;
const REQUEST_TIMEOUT: Duration = Duration::from_secs(15);

#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Ok(u16, Value),
    Refused(u16, Value),
    Unknown(String),
}

impl Outcome {
    /// Whether the outcome is still open: no answer, or one that says "try again" (another
    /// writer got there first, or the same key is still running), which commits nothing.
    pub fn is_unknown(&self) -> bool {
        match self {
            Outcome::Unknown(_) => true,
            Outcome::Refused(409, body) => body["type"].as_str().is_some_and(|t| {
                t.ends_with("concurrency-conflict") || t.ends_with("request-in-progress")
            }),
            _ => false,
        }
    }
}

/// One request as sent, and what came of it.
#[derive(Debug, Clone)]
pub struct Request {
    pub user: usize,
    pub kind: &'static str,
    pub method: Method,
    pub path: String,
    pub body: Value,
    /// The Idempotency-Key, or for a webhook its signature (the body is the identity).
    pub key: Option<String>,
    pub webhook: bool,
}

#[derive(Debug, Clone)]
pub struct Record {
    pub request: Request,
    pub outcome: Outcome,
}

pub struct User {
    pub id: Uuid,
    pub token: String,
}

/// What the clients know of each other's work, to pick operations that can succeed.
#[derive(Default)]
struct Known {
    bounties: Vec<(Uuid, usize)>,
    claimed: Vec<(Uuid, usize)>,
    withdrawals: Vec<(Uuid, usize, i64)>,
}

pub struct World {
    pub apis: Vec<String>,
    pub users: Vec<User>,
    pub webhook_secret: String,
    pub seed: u64,
    client: reqwest::Client,
    known: Mutex<Known>,
    pub journal: Mutex<Vec<Record>>,
    /// Negative balances seen by any client read (must stay empty).
    pub negative_reads: Mutex<Vec<String>>,
    pub done: AtomicUsize,
    /// Clients wait at this many operations until the next fault has begun, so that every
    /// fault strikes while operations are running, however fast they are.
    pub allowed: AtomicUsize,
}

impl World {
    pub fn new(apis: Vec<String>, webhook_secret: String, seed: u64) -> Self {
        Self {
            apis,
            users: Vec::new(),
            webhook_secret,
            seed,
            client: reqwest::Client::builder()
                .timeout(REQUEST_TIMEOUT)
                .build()
                .expect("an HTTP client"),
            known: Mutex::new(Known::default()),
            journal: Mutex::new(Vec::new()),
            negative_reads: Mutex::new(Vec::new()),
            done: AtomicUsize::new(0),
            allowed: AtomicUsize::new(usize::MAX),
        }
    }

    /// Registers and logs in `n` users (before any fault), retrying until the API answers.
    pub async fn register(&mut self, n: usize) -> anyhow::Result<()> {
        for i in 0..n {
            let email = format!("user{i}-{}@campaign.example", self.seed);
            let password = format!("campaign password {i}");
            let base = &self.apis[i % self.apis.len()];
            let res = self
                .client
                .post(format!("{base}/v1/auth/register"))
                .json(&json!({"email": email, "password": password, "display_name": format!("User {i}")}))
                .send()
                .await?;
            anyhow::ensure!(res.status().is_success(), "register: {}", res.status());
            let id: Uuid = serde_json::from_value(res.json::<Value>().await?["id"].clone())?;
            let login: Value = self
                .client
                .post(format!("{base}/v1/auth/login"))
                .json(&json!({"email": email, "password": password}))
                .send()
                .await?
                .json()
                .await?;
            let token = login["access_token"]
                .as_str()
                .ok_or_else(|| anyhow::anyhow!("no token: {login}"))?
                .to_owned();
            self.users.push(User { id, token });
        }
        self.share_queues().await
    }

    /// Every client works every queue: the first posts a task to each (making it theirs) and
    /// grants it to the others.
    async fn share_queues(&self) -> anyhow::Result<()> {
        let base = &self.apis[0];
        let Some((owner, others)) = self.users.split_first() else {
            return Ok(());
        };
        for queue in QUEUES {
            let res = self
                .client
                .post(format!("{base}/v1/tasks"))
                .bearer_auth(&owner.token)
                .json(&json!({"queue": queue, "title": "opens the queue"}))
                .send()
                .await?;
            anyhow::ensure!(res.status().is_success(), "open {queue}: {}", res.status());
            for worker in others {
                let res = self
                    .client
                    .put(format!("{base}/v1/queues/{queue}/workers/{}", worker.id))
                    .bearer_auth(&owner.token)
                    .send()
                    .await?;
                anyhow::ensure!(res.status().is_success(), "grant {queue}: {}", res.status());
            }
        }
        Ok(())
    }

    /// Sends `request` to one of the APIs and classifies the answer.
    pub async fn send(&self, request: &Request, rng: &mut StdRng) -> Outcome {
        let base = self.apis.choose(rng).expect("at least one API");
        let mut builder = self
            .client
            .request(request.method.clone(), format!("{base}{}", request.path));
        if request.webhook {
            let body = request.body.to_string();
            let signature =
                bountyline::http::signature::sign(self.webhook_secret.as_bytes(), body.as_bytes());
            builder = builder
                .header("X-Signature", signature)
                .header("content-type", "application/json")
                .body(body);
        } else {
            builder = builder.bearer_auth(&self.users[request.user].token);
            if let Some(key) = &request.key {
                builder = builder.header("Idempotency-Key", key);
            }
            if request.method == Method::POST {
                builder = builder.json(&request.body);
            }
        }
        match builder.send().await {
            Err(e) => Outcome::Unknown(format!("{e}")),
            Ok(res) => {
                let status = res.status().as_u16();
                let body = res.json::<Value>().await.unwrap_or(Value::Null);
                match status {
                    200..=299 => Outcome::Ok(status, body),
                    500.. => Outcome::Unknown(format!("{status} {body}")),
                    _ => Outcome::Refused(status, body),
                }
            }
        }
    }

    async fn record(&self, request: Request, rng: &mut StdRng) -> Outcome {
        let outcome = self.send(&request, rng).await;
        self.journal.lock().unwrap().push(Record {
            request,
            outcome: outcome.clone(),
        });
        outcome
    }

    fn command(
        &self,
        user: usize,
        n: usize,
        kind: &'static str,
        path: String,
        body: Value,
    ) -> Request {
        Request {
            user,
            kind,
            method: Method::POST,
            path,
            body,
            key: Some(format!("c{}-u{user}-{n}", self.seed)),
            webhook: false,
        }
    }

    fn webhook(&self, user: usize, kind: &'static str, body: Value) -> Request {
        Request {
            user,
            kind,
            method: Method::POST,
            path: "/v1/webhooks/payments".into(),
            body,
            key: None,
            webhook: true,
        }
    }

    fn read(&self, user: usize, kind: &'static str, path: String) -> Request {
        Request {
            user,
            kind,
            method: Method::GET,
            path,
            body: Value::Null,
            key: None,
            webhook: false,
        }
    }

    /// One client's share of the operations.
    pub async fn client(&self, user: usize, ops: usize, mut rng: StdRng) {
        for n in 0..ops {
            while self.done.load(Ordering::Relaxed) >= self.allowed.load(Ordering::Relaxed) {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            self.step(user, n, &mut rng).await;
            self.done.fetch_add(1, Ordering::Relaxed);
        }
    }

    async fn step(&self, me: usize, n: usize, rng: &mut StdRng) {
        let my_id = self.users[me].id;
        match rng.random_range(0..100) {
            0..=9 => {
                let body = json!({"event": "deposit.succeeded", "reference": format!("dep-{}-{me}-{n}", self.seed),
                                  "user_id": my_id, "amount": rng.random_range(100..5_000), "currency": CURRENCY});
                self.record(self.webhook(me, "deposit", body), rng).await;
            }
            10..=14 => {
                let amount = rng.random_range(50..1_000);
                let body = json!({"amount": amount, "currency": CURRENCY});
                let request =
                    self.command(me, n, "withdraw", "/v1/wallets/me/withdrawals".into(), body);
                if let Outcome::Ok(_, answer) = self.record(request, rng).await {
                    if let Some(id) = answer["withdrawal_id"]
                        .as_str()
                        .and_then(|s| s.parse().ok())
                    {
                        self.known
                            .lock()
                            .unwrap()
                            .withdrawals
                            .push((id, me, amount));
                    }
                }
            }
            15..=19 => {
                let pending = {
                    let mut known = self.known.lock().unwrap();
                    let len = known.withdrawals.len();
                    (len > 0).then(|| known.withdrawals.swap_remove(rng.random_range(0..len)))
                };
                if let Some((id, owner, amount)) = pending {
                    let event = if rng.random_bool(0.8) {
                        "withdrawal.succeeded"
                    } else {
                        "withdrawal.failed"
                    };
                    let body = json!({"event": event, "reference": format!("wd-{id}"), "user_id": self.users[owner].id,
                                      "amount": amount, "currency": CURRENCY, "withdrawal_id": id});
                    self.record(self.webhook(owner, "settle-withdrawal", body), rng)
                        .await;
                }
            }
            20..=29 => {
                let body = json!({"title": format!("Job {me}-{n}"), "description": "campaign work",
                                  "reward": {"amount": rng.random_range(100..2_000), "currency": CURRENCY}});
                let request = self.command(me, n, "post", "/v1/bounties".into(), body);
                if let Outcome::Ok(_, answer) = self.record(request, rng).await {
                    if let Some(id) = answer["id"].as_str().and_then(|s| s.parse().ok()) {
                        self.known.lock().unwrap().bounties.push((id, me));
                    }
                }
            }
            30..=39 => {
                if let Some((bounty, _)) = self.some_bounty(rng, |poster| poster != me) {
                    let body = json!({"pitch": format!("{me} can do it")});
                    let path = format!("/v1/bounties/{bounty}/applications");
                    self.record(self.command(me, n, "apply", path, body), rng)
                        .await;
                }
            }
            40..=47 => self.accept(me, n, rng).await,
            48..=54 => {
                if let Some((bounty, _)) = self.some_bounty(rng, |poster| poster != me) {
                    let body = json!({"deliverable": {"text": "done", "link": "https://example.com/pr/1"}});
                    let path = format!("/v1/bounties/{bounty}/submit");
                    self.record(self.command(me, n, "submit", path, body), rng)
                        .await;
                }
            }
            55..=61 => {
                if let Some((bounty, _)) = self.some_bounty(rng, |poster| poster == me) {
                    let (kind, body) = match rng.random_range(0..10) {
                        0..=5 => ("approve", json!({})),
                        6..=7 => ("reject", json!({"reason": "not yet"})),
                        8 => ("cancel", json!({})),
                        _ => ("dispute", json!({"reason": "disagree"})),
                    };
                    let path = format!("/v1/bounties/{bounty}/{kind}");
                    self.record(self.command(me, n, kind, path, body), rng)
                        .await;
                }
            }
            62..=75 => {
                let queue = QUEUES.choose(rng).expect("a queue");
                let body =
                    json!({"queue": queue, "title": format!("task {me}-{n}"), "max_attempts": 2});
                self.record(
                    self.command(me, n, "create-task", "/v1/tasks".into(), body),
                    rng,
                )
                .await;
            }
            76..=85 => {
                let queue = QUEUES.choose(rng).expect("a queue");
                let path = format!("/v1/queues/{queue}/claim");
                let body = json!({"lease_seconds": LEASE_SECONDS});
                if let Outcome::Ok(200, answer) = self
                    .record(self.command(me, n, "claim", path, body), rng)
                    .await
                {
                    if let Some(id) = answer["id"].as_str().and_then(|s| s.parse().ok()) {
                        self.known.lock().unwrap().claimed.push((id, me));
                    }
                }
            }
            86..=93 => {
                let mine = {
                    let mut known = self.known.lock().unwrap();
                    let mine: Vec<usize> = (0..known.claimed.len())
                        .filter(|i| known.claimed[*i].1 == me)
                        .collect();
                    mine.choose(rng).map(|i| known.claimed.swap_remove(*i).0)
                };
                if let Some(task) = mine {
                    let (kind, body) = if rng.random_bool(0.75) {
                        ("complete", json!({"result": {"ok": true}}))
                    } else {
                        ("fail", json!({"error": "flaky"}))
                    };
                    let path = format!("/v1/tasks/{task}/{kind}");
                    self.record(self.command(me, n, kind, path, body), rng)
                        .await;
                }
            }
            _ => {
                let outcome = self
                    .record(self.read(me, "balances", "/v1/wallets/me".into()), rng)
                    .await;
                if let Outcome::Ok(_, answer) = outcome {
                    self.check_balances(me, &answer);
                }
            }
        }
    }

    fn some_bounty(
        &self,
        rng: &mut StdRng,
        poster: impl Fn(usize) -> bool,
    ) -> Option<(Uuid, usize)> {
        let known = self.known.lock().unwrap();
        let candidates: Vec<&(Uuid, usize)> =
            known.bounties.iter().filter(|(_, p)| poster(*p)).collect();
        candidates.choose(rng).map(|b| **b)
    }

    /// The poster reads one of their bounties and accepts a pending application.
    async fn accept(&self, me: usize, n: usize, rng: &mut StdRng) {
        let Some((bounty, _)) = self.some_bounty(rng, |poster| poster == me) else {
            return;
        };
        let detail = self.read(me, "bounty-detail", format!("/v1/bounties/{bounty}"));
        let Outcome::Ok(_, answer) = self.record(detail, rng).await else {
            return;
        };
        let pending: Vec<&Value> = answer["applications"]
            .as_array()
            .map(|a| a.iter().filter(|a| a["status"] == "pending").collect())
            .unwrap_or_default();
        if let Some(application) = pending.choose(rng) {
            let body = json!({"application_id": application["id"]});
            let path = format!("/v1/bounties/{bounty}/accept");
            self.record(self.command(me, n, "accept", path, body), rng)
                .await;
        }
    }

    fn check_balances(&self, me: usize, answer: &Value) {
        let balances = answer["balances"].as_array().or_else(|| answer.as_array());
        for balance in balances.into_iter().flatten() {
            for field in ["available", "held"] {
                if balance[field].as_i64().is_some_and(|v| v < 0) {
                    self.negative_reads
                        .lock()
                        .unwrap()
                        .push(format!("user {me} read {balance}"));
                }
            }
        }
    }
}
