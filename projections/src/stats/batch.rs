//! Applies a batch of events to the stats counters set-based: each task's and bounty's row is
//! read once, counters are summed in memory, and every table gets one write per batch. The
//! per-second and active-user rows are written before each prune point, so pruning removes
//! exactly what it removes event by event (`tests/batch_apply.rs` compares the two paths).

use bountyline_domain::bounty::BountyEvent;
use bountyline_domain::payment::PaymentEvent;
use bountyline_domain::task::{TaskEvent, TaskStatus};
use bountyline_domain::Actor;
use chrono::{DateTime, Utc};
use sqlx::{Postgres, Transaction};
use std::collections::hash_map::Entry;
use std::collections::{BTreeMap, HashMap};
use uuid::Uuid;

use super::apply::{id_of, prune, PRUNE_EVERY};
use crate::{ProjectionError, StoredEvent};

type Tx = Transaction<'static, Postgres>;

/// What one event does to the counters, decoded.
enum Change {
    TaskCreated { id: Uuid, queue: String },
    TaskMoved { id: Uuid, status: TaskStatus },
    BountyPosted { id: Uuid, row: BountyRow },
    BountyMoved { id: Uuid, status: &'static str },
    Escrow { currency: String, delta: i64 },
    Nothing,
}

struct BountyRow {
    status: String,
    currency: String,
    amount: i64,
}

/// A task's queue and current status, as `stats_tasks` holds them.
struct TaskRow {
    queue: String,
    status: String,
}

/// A counter's net change, and whether anything was added to it (which creates its row).
#[derive(Default)]
struct Delta {
    net: i64,
    incremented: bool,
}

impl Delta {
    fn add(&mut self, by: i64) {
        self.net += by;
        self.incremented |= by > 0;
    }

    /// Whether the counter's row is written: a row is created by the first increment and only
    /// ever moved after that; a decrement always finds its row (the task or bounty entered
    /// that status through an increment), so adding the net change gives what the single
    /// increments and decrements gave.
    fn written(&self) -> bool {
        self.net != 0 || self.incremented
    }
}

#[derive(Default)]
struct Batch {
    tasks: HashMap<Uuid, TaskRow>,
    tasks_changed: Vec<Uuid>,
    task_counts: BTreeMap<(String, String), Delta>,
    bounties: HashMap<Uuid, BountyRow>,
    bounties_changed: Vec<Uuid>,
    /// Per (status, currency): the bounties' count and the net change of their reward.
    bounty_counts: BTreeMap<(String, String), (Delta, i64)>,
    escrow: BTreeMap<String, i64>,
    /// Recording time and completion (0 or 1) of each event since the last flush.
    seconds: Vec<(DateTime<Utc>, i64)>,
    /// Recording time and actor of each event by a person since the last flush.
    active: Vec<(DateTime<Utc>, Uuid)>,
}

pub(super) async fn apply(tx: &mut Tx, events: &[StoredEvent]) -> Result<(), ProjectionError> {
    let changes = events.iter().map(change).collect::<Result<Vec<_>, _>>()?;
    let mut batch = Batch::load(tx, &changes).await?;
    for (event, change) in events.iter().zip(changes) {
        let completed = batch.fold(change);
        batch
            .seconds
            .push((event.recorded_at, i64::from(completed)));
        let actor = event
            .meta("actor")
            .and_then(|a| Uuid::parse_str(a).ok())
            .filter(|a| *a != Actor::SYSTEM_ID);
        if let Some(actor) = actor {
            batch.active.push((event.recorded_at, actor));
        }
        if event.position % PRUNE_EVERY == 0 {
            batch.write_activity(tx).await?;
            prune(tx, event).await?;
        }
    }
    batch.write_activity(tx).await?;
    batch.write_rows(tx).await
}

/// Decodes an event as `apply.rs` does, failing on the same events.
fn change(event: &StoredEvent) -> Result<Change, ProjectionError> {
    let decode_err = |e| ProjectionError::decode(event, e);
    Ok(match event.aggregate_type.as_str() {
        "Task" => {
            let id = id_of(event)?;
            match event.decode::<TaskEvent>().map_err(decode_err)? {
                TaskEvent::TaskCreated { queue, .. } => Change::TaskCreated { id, queue },
                task => match task.status_after() {
                    Some(status) => Change::TaskMoved { id, status },
                    None => Change::Nothing,
                },
            }
        }
        "Bounty" => {
            let id = id_of(event)?;
            let bounty = event.decode::<BountyEvent>().map_err(decode_err)?;
            let Some(status) = bounty.status_after().map(|s| s.as_str()) else {
                return Ok(Change::Nothing);
            };
            match bounty {
                BountyEvent::BountyPosted { reward, .. } => Change::BountyPosted {
                    id,
                    row: BountyRow {
                        status: status.to_owned(),
                        currency: reward.currency().as_str().to_owned(),
                        amount: reward.amount(),
                    },
                },
                _ => Change::BountyMoved { id, status },
            }
        }
        "Payment" => match event.decode::<PaymentEvent>().map_err(decode_err)? {
            PaymentEvent::PaymentHeld {
                currency, amount, ..
            } => Change::Escrow {
                currency: currency.as_str().to_owned(),
                delta: amount,
            },
            PaymentEvent::PaymentReleased {
                currency, amount, ..
            }
            | PaymentEvent::PaymentRefunded {
                currency, amount, ..
            } => Change::Escrow {
                currency: currency.as_str().to_owned(),
                delta: -amount,
            },
            _ => Change::Nothing,
        },
        _ => Change::Nothing,
    })
}

impl Batch {
    /// Reads the task and bounty rows the changes touch.
    async fn load(tx: &mut Tx, changes: &[Change]) -> Result<Self, ProjectionError> {
        let mut task_ids = Vec::new();
        let mut bounty_ids = Vec::new();
        for change in changes {
            match change {
                Change::TaskCreated { id, .. } | Change::TaskMoved { id, .. } => task_ids.push(*id),
                Change::BountyPosted { id, .. } | Change::BountyMoved { id, .. } => {
                    bounty_ids.push(*id)
                }
                Change::Escrow { .. } | Change::Nothing => {}
            }
        }
        let mut batch = Batch::default();
        if !task_ids.is_empty() {
            let rows: Vec<(Uuid, String, String)> = sqlx::query_as(
                "SELECT task_id, queue, status FROM stats_tasks WHERE task_id = ANY($1)",
            )
            .bind(&task_ids)
            .fetch_all(&mut **tx)
            .await?;
            batch.tasks = rows
                .into_iter()
                .map(|(id, queue, status)| (id, TaskRow { queue, status }))
                .collect();
        }
        if !bounty_ids.is_empty() {
            let rows: Vec<(Uuid, String, String, i64)> = sqlx::query_as(
                "SELECT bounty_id, status, currency, amount FROM stats_bounties \
                 WHERE bounty_id = ANY($1)",
            )
            .bind(&bounty_ids)
            .fetch_all(&mut **tx)
            .await?;
            batch.bounties = rows
                .into_iter()
                .map(|(id, status, currency, amount)| {
                    let row = BountyRow {
                        status,
                        currency,
                        amount,
                    };
                    (id, row)
                })
                .collect();
        }
        Ok(batch)
    }

    /// Applies one change in memory; returns whether it was a task completion (counted in
    /// its second whether or not the task's row moved, as `apply.rs` counts it).
    fn fold(&mut self, change: Change) -> bool {
        match change {
            Change::TaskCreated { id, queue } => {
                if !self.tasks.contains_key(&id) {
                    let status = TaskStatus::Queued.as_str().to_owned();
                    self.count(&queue, &status, 1);
                    self.tasks.insert(id, TaskRow { queue, status });
                    self.tasks_changed.push(id);
                }
            }
            Change::TaskMoved { id, status } => {
                let to = status.as_str();
                if let Some(row) = self.tasks.get_mut(&id).filter(|row| row.status != to) {
                    let (queue, was) = (row.queue.clone(), std::mem::take(&mut row.status));
                    row.status = to.to_owned();
                    self.tasks_changed.push(id);
                    self.count(&queue, &was, -1);
                    self.count(&queue, to, 1);
                }
                return status == TaskStatus::Completed;
            }
            Change::BountyPosted { id, row } => {
                if let Entry::Vacant(slot) = self.bounties.entry(id) {
                    let key = (row.status.clone(), row.currency.clone());
                    let (count, amount) = self.bounty_counts.entry(key).or_default();
                    count.add(1);
                    *amount += row.amount;
                    slot.insert(row);
                    self.bounties_changed.push(id);
                }
            }
            Change::BountyMoved { id, status } => {
                if let Some(row) = self
                    .bounties
                    .get_mut(&id)
                    .filter(|row| row.status != status)
                {
                    let was = std::mem::replace(&mut row.status, status.to_owned());
                    let (currency, reward) = (row.currency.clone(), row.amount);
                    self.bounties_changed.push(id);
                    for (status, by) in [(was, -1), (status.to_owned(), 1)] {
                        let key = (status, currency.clone());
                        let (count, amount) = self.bounty_counts.entry(key).or_default();
                        count.add(by);
                        *amount += by * reward;
                    }
                }
            }
            Change::Escrow { currency, delta } => {
                *self.escrow.entry(currency).or_default() += delta
            }
            Change::Nothing => {}
        }
        false
    }

    fn count(&mut self, queue: &str, status: &str, by: i64) {
        self.task_counts
            .entry((queue.to_owned(), status.to_owned()))
            .or_default()
            .add(by);
    }

    /// Adds the events counted since the last flush to their seconds and days.
    async fn write_activity(&mut self, tx: &mut Tx) -> Result<(), ProjectionError> {
        if !self.seconds.is_empty() {
            let (at, completed): (Vec<_>, Vec<_>) = self.seconds.drain(..).unzip();
            sqlx::query(
                "INSERT INTO stats_seconds (second, events, completions) \
                 SELECT date_trunc('second', at), count(*), sum(completed)::bigint \
                 FROM UNNEST($1::timestamptz[], $2::int8[]) AS e(at, completed) GROUP BY 1 \
                 ON CONFLICT (second) DO UPDATE SET \
                     events = stats_seconds.events + EXCLUDED.events, \
                     completions = stats_seconds.completions + EXCLUDED.completions",
            )
            .bind(at)
            .bind(completed)
            .execute(&mut **tx)
            .await?;
        }
        if !self.active.is_empty() {
            let (at, actor): (Vec<_>, Vec<_>) = self.active.drain(..).unzip();
            sqlx::query(
                "INSERT INTO stats_active_users (day, user_id) \
                 SELECT DISTINCT (at AT TIME ZONE 'UTC')::date, actor \
                 FROM UNNEST($1::timestamptz[], $2::uuid[]) AS a(at, actor) \
                 ON CONFLICT DO NOTHING",
            )
            .bind(at)
            .bind(actor)
            .execute(&mut **tx)
            .await?;
        }
        Ok(())
    }

    /// Writes the task, bounty and escrow rows the batch changed, one statement per table.
    async fn write_rows(mut self, tx: &mut Tx) -> Result<(), ProjectionError> {
        self.tasks_changed.sort_unstable();
        self.tasks_changed.dedup();
        if !self.tasks_changed.is_empty() {
            let mut ids = Vec::with_capacity(self.tasks_changed.len());
            let (mut queues, mut statuses) = (Vec::new(), Vec::new());
            for id in self.tasks_changed {
                if let Some(row) = self.tasks.remove(&id) {
                    ids.push(id);
                    queues.push(row.queue);
                    statuses.push(row.status);
                }
            }
            sqlx::query(
                "INSERT INTO stats_tasks (task_id, queue, status) \
                 SELECT * FROM UNNEST($1::uuid[], $2::text[], $3::text[]) \
                 ON CONFLICT (task_id) DO UPDATE SET status = EXCLUDED.status",
            )
            .bind(ids)
            .bind(queues)
            .bind(statuses)
            .execute(&mut **tx)
            .await?;
        }
        let counts: Vec<_> = self
            .task_counts
            .into_iter()
            .filter(|(_, delta)| delta.written())
            .collect();
        if !counts.is_empty() {
            let (mut queues, mut statuses, mut nets) = (Vec::new(), Vec::new(), Vec::new());
            for ((queue, status), delta) in counts {
                queues.push(queue);
                statuses.push(status);
                nets.push(delta.net);
            }
            sqlx::query(
                "INSERT INTO stats_task_counts (queue, status, count) \
                 SELECT * FROM UNNEST($1::text[], $2::text[], $3::int8[]) \
                 ON CONFLICT (queue, status) DO UPDATE SET \
                     count = stats_task_counts.count + EXCLUDED.count",
            )
            .bind(queues)
            .bind(statuses)
            .bind(nets)
            .execute(&mut **tx)
            .await?;
        }
        self.bounties_changed.sort_unstable();
        self.bounties_changed.dedup();
        if !self.bounties_changed.is_empty() {
            let mut ids = Vec::with_capacity(self.bounties_changed.len());
            let (mut statuses, mut currencies, mut amounts) = (Vec::new(), Vec::new(), Vec::new());
            for id in self.bounties_changed {
                if let Some(row) = self.bounties.remove(&id) {
                    ids.push(id);
                    statuses.push(row.status);
                    currencies.push(row.currency);
                    amounts.push(row.amount);
                }
            }
            sqlx::query(
                "INSERT INTO stats_bounties (bounty_id, status, currency, amount) \
                 SELECT * FROM UNNEST($1::uuid[], $2::text[], $3::text[], $4::int8[]) \
                 ON CONFLICT (bounty_id) DO UPDATE SET status = EXCLUDED.status",
            )
            .bind(ids)
            .bind(statuses)
            .bind(currencies)
            .bind(amounts)
            .execute(&mut **tx)
            .await?;
        }
        let counts: Vec<_> = self
            .bounty_counts
            .into_iter()
            .filter(|(_, (count, _))| count.written())
            .collect();
        if !counts.is_empty() {
            let (mut statuses, mut currencies) = (Vec::new(), Vec::new());
            let (mut nets, mut amounts) = (Vec::new(), Vec::new());
            for ((status, currency), (count, amount)) in counts {
                statuses.push(status);
                currencies.push(currency);
                nets.push(count.net);
                amounts.push(amount);
            }
            sqlx::query(
                "INSERT INTO stats_bounty_counts (status, currency, count, amount) \
                 SELECT * FROM UNNEST($1::text[], $2::text[], $3::int8[], $4::int8[]) \
                 ON CONFLICT (status, currency) DO UPDATE SET \
                     count = stats_bounty_counts.count + EXCLUDED.count, \
                     amount = stats_bounty_counts.amount + EXCLUDED.amount",
            )
            .bind(statuses)
            .bind(currencies)
            .bind(nets)
            .bind(amounts)
            .execute(&mut **tx)
            .await?;
        }
        if !self.escrow.is_empty() {
            let (currencies, deltas): (Vec<_>, Vec<_>) = self.escrow.into_iter().unzip();
            sqlx::query(
                "INSERT INTO stats_escrow (currency, held) \
                 SELECT * FROM UNNEST($1::text[], $2::int8[]) \
                 ON CONFLICT (currency) DO UPDATE SET held = stats_escrow.held + EXCLUDED.held",
            )
            .bind(currencies)
            .bind(deltas)
            .execute(&mut **tx)
            .await?;
        }
        Ok(())
    }
}
