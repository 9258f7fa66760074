//! Batched apply equals event-by-event apply: every read model, fed one generated history
//! once event by event and once in batches of many sizes (with batches delivered twice where
//! the projection itself guards against repeats), ends with exactly the same rows.
//!
//! The history is generated, not driven through the API, so that it holds what a batch must
//! get right and a live run rarely shows: many events of one task in one batch, repeated
//! creations, events for rows that do not exist, dead-letterings, out-of-order recording
//! times, and prune points (every 256th position) with rows on both sides of the cut.

mod common;

use bountyline::workers;
use bountyline_domain::bounty::{BountyEvent, BountyStatus};
use bountyline_domain::payment::PaymentEvent;
use bountyline_domain::task::{FailureOutcome, TaskEvent, TaskStatus};
use bountyline_domain::wallet::{HoldRejection, WalletEvent};
use bountyline_domain::{Actor, Currency, Money};
use bountyline_projections::{Projection, StoredEvent};
use chrono::{DateTime, Duration, TimeZone, Utc};
use serde_json::json;
use sqlx::PgPool;
use uuid::Uuid;

/// A small deterministic generator (xorshift64*), so a failure can be replayed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }

    fn uuid(&mut self) -> Uuid {
        Uuid::from_u64_pair(self.next(), self.next())
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }
}

struct Task {
    id: Uuid,
    sequence: i64,
    status: TaskStatus,
    attempt: u32,
}

struct Bounty {
    id: Uuid,
    payment_id: Uuid,
    sequence: i64,
    payment_sequence: i64,
    /// Applications submitted to it, to withdraw or accept later.
    applications: Vec<Uuid>,
}

/// Builds a history of `len` events in position order.
struct History {
    rng: Rng,
    clock: DateTime<Utc>,
    users: Vec<Uuid>,
    tasks: Vec<Task>,
    bounties: Vec<Bounty>,
    /// Each wallet's last sequence, by owner.
    wallets: std::collections::HashMap<Uuid, i64>,
    events: Vec<StoredEvent>,
}

impl History {
    fn generate(seed: u64, len: usize) -> Vec<StoredEvent> {
        let mut rng = Rng(seed);
        let users = (0..12).map(|_| rng.uuid()).collect();
        let mut history = History {
            rng,
            clock: Utc.with_ymd_and_hms(2026, 3, 1, 12, 0, 0).unwrap(),
            users,
            tasks: Vec::new(),
            bounties: Vec::new(),
            wallets: Default::default(),
            events: Vec::new(),
        };
        while history.events.len() < len {
            match history.rng.below(100) {
                0..=24 => history.create_task(),
                25..=74 => history.move_task(),
                75..=84 => history.wallet(),
                85..=91 => history.bounty(),
                92..=94 => history.ghost_task_event(),
                _ => history.other(),
            }
        }
        history.events
    }

    /// Time moves on by up to two minutes, now and then by a day and a half (always just
    /// before every fourth prune point, so that a batch holds rows on both sides of the cut),
    /// and sometimes back a little (recording times follow commit order only roughly).
    fn tick(&mut self) -> DateTime<Utc> {
        let position = self.events.len() as i64 + 1;
        let step = match self.rng.below(100) {
            _ if position % 1024 == 0 => Duration::hours(36),
            0 => Duration::hours(36),
            1..=5 => -Duration::seconds(self.rng.below(5) as i64),
            _ => Duration::milliseconds(self.rng.below(120_000) as i64),
        };
        self.clock += step;
        self.clock
    }

    fn push(&mut self, aggregate_type: &str, id: Uuid, sequence: i64, payload: serde_json::Value) {
        let event_type = payload
            .as_object()
            .and_then(|o| o.keys().next().cloned())
            .unwrap_or_default();
        let actor = match self.rng.below(4) {
            0 => Actor::SYSTEM_ID.to_string(),
            1 => "not-a-uuid".to_owned(),
            _ => self.rng.pick(&self.users).to_string(),
        };
        let recorded_at = self.tick();
        self.events.push(StoredEvent {
            position: self.events.len() as i64 + 1,
            event_id: self.rng.uuid(),
            aggregate_type: aggregate_type.to_owned(),
            aggregate_id: id.to_string(),
            sequence,
            event_type,
            event_version: "1".to_owned(),
            payload,
            metadata: json!({ "actor": actor }),
            recorded_at,
        });
    }

    fn create_task(&mut self) {
        // Now and then a creation repeats for a task that exists (it must change nothing).
        let (id, sequence) = match self.tasks.len() {
            n if n > 0 && self.rng.chance(5) => {
                let task = &mut self.tasks[self.rng.below(n as u64) as usize];
                task.sequence += 1;
                (task.id, task.sequence)
            }
            _ => {
                let id = self.rng.uuid();
                self.tasks.push(Task {
                    id,
                    sequence: 1,
                    status: TaskStatus::Queued,
                    attempt: 0,
                });
                (id, 1)
            }
        };
        let at = self.clock;
        let event = TaskEvent::TaskCreated {
            queue: self.rng.pick(&["mail", "render", "index"]).to_string(),
            title: format!("task {}", self.events.len()),
            description: "generated".to_owned(),
            priority: self.rng.below(10) as u8,
            payload: self
                .rng
                .chance(50)
                .then(|| json!({ "n": self.events.len() })),
            max_attempts: 3,
            bounty_id: self.rng.chance(10).then(|| Uuid::from_u64_pair(1, 2)),
            creator: *self.rng.pick(&self.users),
            created_at: at,
        };
        self.push("Task", id, sequence, serde_json::to_value(event).unwrap());
    }

    fn move_task(&mut self) {
        if self.tasks.is_empty() {
            return self.create_task();
        }
        let index = self.rng.below(self.tasks.len() as u64) as usize;
        let (worker, at) = (*self.rng.pick(&self.users), self.clock);
        let lease = self.rng.uuid();
        let task = &self.tasks[index];
        let (queue, attempt) = ("mail".to_owned(), task.attempt);
        let roll = self.rng.below(100);
        let outcome = |dead: bool| {
            if dead || attempt >= 3 {
                FailureOutcome::DeadLettered
            } else {
                FailureOutcome::Requeued
            }
        };
        let event = match task.status {
            TaskStatus::Queued if roll < 85 => TaskEvent::TaskClaimed {
                queue,
                worker,
                lease_id: lease,
                attempt: attempt + 1,
                lease_seconds: 30,
                lease_expires_at: at + Duration::seconds(30),
                claimed_at: at,
            },
            TaskStatus::Queued | TaskStatus::Claimed if roll >= 95 => TaskEvent::TaskCancelled {
                queue,
                cancelled_by: worker,
                previous_status: task.status,
                cancelled_at: at,
            },
            TaskStatus::Claimed if roll < 40 => TaskEvent::TaskHeartbeatRecorded {
                worker,
                progress: self.rng.chance(50).then(|| self.rng.below(100) as u8),
                note: self.rng.chance(50).then(|| format!("note {roll}")),
                lease_expires_at: at + Duration::seconds(60),
                at,
            },
            TaskStatus::Claimed if roll < 70 => TaskEvent::TaskCompleted {
                queue,
                worker,
                result: self.rng.chance(70).then(|| json!({ "ok": roll })),
                completed_at: at,
            },
            TaskStatus::Claimed if roll < 85 => TaskEvent::TaskFailed {
                queue,
                worker,
                error: format!("error {roll}"),
                attempt,
                outcome: outcome(self.rng.chance(30)),
                failed_at: at,
            },
            TaskStatus::Claimed => TaskEvent::TaskLeaseExpired {
                queue,
                worker,
                lease_id: lease,
                attempt,
                outcome: outcome(self.rng.chance(30)),
                expired_at: at,
            },
            _ => return self.create_task(),
        };
        let task = &mut self.tasks[index];
        if let Some(status) = event.status_after() {
            task.status = status;
        }
        if let TaskEvent::TaskClaimed { attempt, .. } = &event {
            task.attempt = *attempt;
        }
        task.sequence += 1;
        let (id, sequence) = (task.id, task.sequence);
        self.push("Task", id, sequence, serde_json::to_value(event).unwrap());
    }

    /// An event for a task that was never created: updates find no row.
    fn ghost_task_event(&mut self) {
        let at = self.clock;
        let event = TaskEvent::TaskFailed {
            queue: "mail".to_owned(),
            worker: Actor::SYSTEM_ID,
            error: "ghost".to_owned(),
            attempt: 3,
            outcome: FailureOutcome::DeadLettered,
            failed_at: at,
        };
        let id = self.rng.uuid();
        self.push("Task", id, 2, serde_json::to_value(event).unwrap());
    }

    /// A bounty posted, opened or cancelled, with its payment held, released or refunded.
    fn bounty(&mut self) {
        let (poster, at) = (*self.rng.pick(&self.users), self.clock);
        let usd = Currency::parse("USD").unwrap();
        let reward = Money::positive(500, usd).unwrap();
        if self.bounties.is_empty() || self.rng.chance(30) {
            let (id, payment_id) = (self.rng.uuid(), self.rng.uuid());
            self.bounties.push(Bounty {
                id,
                payment_id,
                sequence: 1,
                payment_sequence: 1,
                applications: Vec::new(),
            });
            let event = BountyEvent::BountyPosted {
                poster,
                payment_id,
                title: format!("bounty {}", self.events.len()),
                description: "generated".to_owned(),
                reward,
                deadline: self.rng.chance(2).then_some(at + Duration::days(7)),
                tags: match self.rng.below(3) {
                    0 => vec![],
                    1 => vec!["rust".to_owned()],
                    _ => vec!["rust".to_owned(), "has \"quotes\", commas".to_owned()],
                },
                at,
            };
            self.push("Bounty", id, 1, serde_json::to_value(event).unwrap());
            let event = PaymentEvent::PaymentRequested {
                payer: poster,
                bounty_id: id,
                currency: usd,
                amount: 500,
                at,
            };
            return self.push(
                "Payment",
                payment_id,
                1,
                serde_json::to_value(event).unwrap(),
            );
        }
        let index = self.rng.below(self.bounties.len() as u64) as usize;
        let roll = self.rng.below(12);
        let (hunter, application) = (*self.rng.pick(&self.users), self.rng.uuid());
        let pick = self.rng.below(8);
        let bounty = &mut self.bounties[index];
        let (id, payment_id) = (bounty.id, bounty.payment_id);
        // An application of this bounty, or now and then one nobody submitted.
        let known = match bounty.applications.len() {
            0 => application,
            n => bounty.applications[pick as usize % n],
        };
        if roll < 9 {
            bounty.sequence += 1;
            let sequence = bounty.sequence;
            let event = match roll {
                0 => BountyEvent::BountyOpened {
                    poster,
                    payment_id,
                    reward,
                    at,
                },
                2 => {
                    bounty.applications.push(application);
                    BountyEvent::ApplicationSubmitted {
                        application_id: application,
                        hunter,
                        poster,
                        pitch: format!("pitch {sequence}"),
                        at,
                    }
                }
                3 => BountyEvent::ApplicationWithdrawn {
                    application_id: known,
                    hunter,
                    poster,
                    at,
                },
                4 => BountyEvent::ApplicationAccepted {
                    application_id: known,
                    hunter,
                    poster,
                    at,
                },
                5 => BountyEvent::WorkSubmitted {
                    hunter,
                    poster,
                    text: pick.is_multiple_of(2).then(|| format!("work {sequence}")),
                    link: pick
                        .is_multiple_of(3)
                        .then(|| "https://example.com/pr".to_owned()),
                    revision: sequence as u32,
                    at,
                },
                6 => BountyEvent::WorkRejected {
                    hunter,
                    poster,
                    reason: format!("not yet {sequence}"),
                    at,
                },
                7 => BountyEvent::BountyDisputed {
                    raised_by: hunter,
                    poster,
                    hunter,
                    reason: format!("dispute {sequence}"),
                    previous_status: BountyStatus::Submitted,
                    at,
                },
                8 => BountyEvent::BountyRefunded {
                    poster,
                    payment_id,
                    reward,
                    at,
                },
                _ => BountyEvent::BountyCancelled {
                    poster,
                    cancelled_by: poster,
                    hunter: None,
                    payment_id,
                    reward,
                    previous_status: BountyStatus::Open,
                    refund: true,
                    at,
                },
            };
            return self.push("Bounty", id, sequence, serde_json::to_value(event).unwrap());
        }
        bounty.payment_sequence += 1;
        let sequence = bounty.payment_sequence;
        let (currency, amount) = (usd, 500);
        let event = match self.rng.below(3) {
            0 => PaymentEvent::PaymentHeld {
                payer: poster,
                bounty_id: id,
                currency,
                amount,
                at,
            },
            1 => PaymentEvent::PaymentReleased {
                payer: poster,
                payee: poster,
                bounty_id: id,
                currency,
                amount,
                at,
            },
            _ => PaymentEvent::PaymentRefunded {
                payer: poster,
                bounty_id: id,
                currency,
                amount,
                at,
            },
        };
        self.push(
            "Payment",
            payment_id,
            sequence,
            serde_json::to_value(event).unwrap(),
        );
    }

    /// Money moving in a user's wallet, in one of two currencies: a balance moved twice in a
    /// batch must end at the later figures, and a rejected hold moves nothing.
    fn wallet(&mut self) {
        let owner = *self.rng.pick(&self.users);
        let sequence = self.wallets.entry(owner).or_insert(0);
        *sequence += 1;
        let sequence = *sequence;
        let currency = *self.rng.pick(&[
            Currency::parse("USD").unwrap(),
            Currency::parse("EUR").unwrap(),
        ]);
        let (amount, available, held) = (
            1 + self.rng.below(900) as i64,
            self.rng.below(10_000) as i64,
            self.rng.below(5_000) as i64,
        );
        let (payment_id, at) = (self.rng.uuid(), self.clock);
        let event = match self.rng.below(6) {
            0 => WalletEvent::DepositConfirmed {
                owner,
                reference: format!("dep-{}", self.events.len()),
                currency,
                amount,
                available,
                held,
                at,
            },
            1 => WalletEvent::FundsHeld {
                owner,
                payment_id,
                currency,
                amount,
                available,
                held,
                at,
            },
            2 => WalletEvent::HoldReleased {
                owner,
                payment_id,
                currency,
                amount,
                available,
                held,
                at,
            },
            3 => WalletEvent::HoldRejected {
                owner,
                payment_id,
                currency,
                amount,
                reason: HoldRejection::InsufficientFunds,
                available,
                held,
                at,
            },
            4 => WalletEvent::PaymentReceived {
                owner,
                payment_id,
                from: *self.rng.pick(&self.users),
                currency,
                amount,
                available,
                held,
                at,
            },
            _ => WalletEvent::WithdrawalRequested {
                owner,
                withdrawal_id: self.rng.uuid(),
                currency,
                amount,
                available,
                held,
                at,
            },
        };
        self.push(
            "Wallet",
            owner,
            sequence,
            serde_json::to_value(event).unwrap(),
        );
    }

    /// An event no read model takes apart from the activity counters.
    fn other(&mut self) {
        let id = self.rng.uuid();
        self.push("Audit", id, 1, json!({ "Viewed": {} }));
    }
}

/// Fresh copies of the projection's tables in `schema`.
async fn make_schema(pool: &PgPool, projection: &dyn Projection, schema: &str) {
    sqlx::query(&format!("CREATE SCHEMA {schema}"))
        .execute(pool)
        .await
        .unwrap();
    for table in projection.tables() {
        sqlx::query(&format!(
            "CREATE TABLE {schema}.{table} (LIKE public.{table} INCLUDING ALL)"
        ))
        .execute(pool)
        .await
        .unwrap();
    }
}

/// Applies `events` into `schema`, event by event or as one batch, in one transaction.
async fn apply(
    pool: &PgPool,
    projection: &dyn Projection,
    schema: &str,
    events: &[StoredEvent],
    batched: bool,
) {
    let mut tx = pool.begin().await.unwrap();
    sqlx::query(&format!("SET LOCAL search_path TO {schema}, public"))
        .execute(&mut *tx)
        .await
        .unwrap();
    if batched {
        projection.apply_batch(&mut tx, events).await.unwrap();
    } else {
        for event in events {
            projection.apply(&mut tx, event).await.unwrap();
        }
    }
    tx.commit().await.unwrap();
}

/// Rows of `table` that are not in both schemas alike, and the rows the reference holds.
async fn compare(pool: &PgPool, table: &str, reference: &str, batched: &str) -> (i64, i64) {
    let differing: i64 = sqlx::query_scalar(&format!(
        "SELECT count(*) FROM ( \
           (SELECT * FROM {reference}.{table} EXCEPT ALL SELECT * FROM {batched}.{table}) \
           UNION ALL \
           (SELECT * FROM {batched}.{table} EXCEPT ALL SELECT * FROM {reference}.{table})) d"
    ))
    .fetch_one(pool)
    .await
    .unwrap();
    let rows: i64 = sqlx::query_scalar(&format!("SELECT count(*) FROM {reference}.{table}"))
        .fetch_one(pool)
        .await
        .unwrap();
    (differing, rows)
}

#[tokio::test]
async fn every_read_model_ends_the_same_applied_in_batches_as_event_by_event() {
    let url = common::fresh_database().await;
    let pool = PgPool::connect(&url).await.unwrap();
    // Ends on a prune point, after a jump in time.
    let history = History::generate(0x5eed_2026, 6_144);
    // Batch sizes from the runner's smallest to a rebuild's chunk, cycled.
    let sizes = [1, 2, 17, 256, 500, 40, 5_000, 3];

    for projection in workers::projections(&opener(&pool, &url)) {
        let name = projection.name();
        let (reference, batched) = (format!("one_{name}"), format!("batch_{name}"));
        make_schema(&pool, projection.as_ref(), &reference).await;
        make_schema(&pool, projection.as_ref(), &batched).await;
        for chunk in history.chunks(500) {
            apply(&pool, projection.as_ref(), &reference, chunk, false).await;
        }
        // Stats counts by increments and relies on the runner's checkpoint to see each
        // position once; every other read model guards its rows itself, so a batch delivered
        // again must change nothing.
        let redeliver = name != "stats";
        let (mut from, mut turn) = (0, 0);
        while from < history.len() {
            let to = (from + sizes[turn % sizes.len()]).min(history.len());
            let batch = &history[from..to];
            apply(&pool, projection.as_ref(), &batched, batch, true).await;
            if redeliver && turn % 3 == 0 {
                apply(&pool, projection.as_ref(), &batched, batch, true).await;
            }
            (from, turn) = (to, turn + 1);
        }
        let mut rows_seen = 0;
        for table in projection.tables() {
            let (differing, rows) = compare(&pool, table, &reference, &batched).await;
            assert_eq!(differing, 0, "{name}: {table} differs in {differing} rows");
            rows_seen += rows;
        }
        // Every read model whose events the history holds must have rows to compare.
        let takes_some = history.iter().any(|e| {
            projection
                .aggregate_types()
                .is_none_or(|types| types.contains(&e.aggregate_type.as_str()))
        });
        assert!(
            rows_seen > 0 || !takes_some,
            "{name}: the history wrote no rows at all"
        );
    }
}

#[tokio::test]
async fn a_batch_with_a_bad_event_fails_whole_so_the_runner_can_isolate_it() {
    let url = common::fresh_database().await;
    let pool = PgPool::connect(&url).await.unwrap();
    let mut history = History::generate(7, 50);
    history[20].payload = json!({ "TaskCompleted": { "no": "fields" } });
    history[20].aggregate_type = "Task".to_owned();
    history[20].event_type = "TaskCompleted".to_owned();
    for projection in workers::projections(&opener(&pool, &url)) {
        let name = projection.name();
        if !projection
            .aggregate_types()
            .is_none_or(|types| types.contains(&"Task"))
        {
            continue;
        }
        let mut tx = pool.begin().await.unwrap();
        let result = projection.apply_batch(&mut tx, &history).await;
        assert!(
            result.is_err(),
            "{name} applied a batch with an undecodable event"
        );
    }
}

/// An opener for the projections under a key of the test's own: the generated histories hold
/// plain texts, which it passes through as they are.
fn opener(pool: &PgPool, url: &str) -> bountyline::privacy::Opener {
    common::opener_for(pool, &common::test_settings(url, "nats://127.0.0.1:1"))
}
