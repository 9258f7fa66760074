//! Applies a batch of events to the stats counters set-based: each task's and bounty's row is
//! read once, counters are summed in memory, and every table gets one write per batch. The
//! prune points inside the batch are played in memory too ([`Activity`]), so that one delete
//! and one write per table remove and add exactly what event by event would have
//! (`tests/batch_apply.rs` compares the two paths).

use bountyline_domain::bounty::BountyEvent;
use bountyline_domain::payment::PaymentEvent;
use bountyline_domain::task::{TaskEvent, TaskStatus};
use bountyline_domain::Actor;
use chrono::{DateTime, Days, NaiveDate, SubsecRound, TimeDelta, Utc};
use sqlx::{Postgres, Transaction};
use std::collections::hash_map::Entry;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use uuid::Uuid;

use super::apply::{id_of, PRUNE_EVERY};
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

/// `stats_tasks` rows to write, one array per column.
#[derive(Default)]
struct TaskColumns {
    ids: Vec<Uuid>,
    queues: Vec<String>,
    statuses: Vec<String>,
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
    /// The tasks `stats_tasks` held when the batch read it (the rest are new).
    tasks_stored: HashSet<Uuid>,
    tasks_changed: Vec<Uuid>,
    task_counts: BTreeMap<(String, String), Delta>,
    bounties: HashMap<Uuid, BountyRow>,
    bounties_changed: Vec<Uuid>,
    /// Per (status, currency): the bounties' count and the net change of their reward.
    bounty_counts: BTreeMap<(String, String), (Delta, i64)>,
    escrow: BTreeMap<String, i64>,
    activity: Activity,
}

/// What a batch does to `stats_seconds` and `stats_active_users`, pruning included. Event by
/// event, each event adds to its second (and its actor to its day), and every `PRUNE_EVERY`
/// positions the seconds and days too old are deleted. The rows a batch adds that a later
/// prune of the batch deletes are dropped here as the prune is met; of the stored rows, a
/// batch's prunes delete whatever lies below the highest of their bounds. So one delete per
/// table (below that bound) and then one write of what is left give the same rows.
#[derive(Default)]
struct Activity {
    /// Per second: the events and completions added since a prune last deleted that second.
    seconds: BTreeMap<DateTime<Utc>, (i64, i64)>,
    /// The days and actors added since a prune last deleted that day.
    active: BTreeSet<(NaiveDate, Uuid)>,
    /// The highest bounds of the batch's prunes: stored seconds and days below are deleted.
    seconds_below: Option<DateTime<Utc>>,
    days_below: Option<NaiveDate>,
}

pub(super) async fn apply(tx: &mut Tx, events: &[StoredEvent]) -> Result<(), ProjectionError> {
    let changes = events.iter().map(change).collect::<Result<Vec<_>, _>>()?;
    let mut batch = Batch::load(tx, &changes).await?;
    for (event, change) in events.iter().zip(changes) {
        let completed = batch.fold(change);
        let actor = event
            .meta("actor")
            .and_then(|a| Uuid::parse_str(a).ok())
            .filter(|a| *a != Actor::SYSTEM_ID);
        batch.activity.count(event.recorded_at, completed, actor);
        if event.position % PRUNE_EVERY == 0 {
            batch.activity.prune(event.recorded_at);
        }
    }
    std::mem::take(&mut batch.activity).write(tx).await?;
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
            task_ids.sort_unstable();
            task_ids.dedup();
            // One look-up by primary key per task: given thousands of ids, the planner would
            // rather scan a table of some hundred thousand rows whole (in parallel), at ten
            // times the cost, than read them through the index.
            let rows: Vec<(Uuid, String, String)> = sqlx::query_as(
                "SELECT s.task_id, s.queue, s.status FROM unnest($1::uuid[]) AS k(id) \
                 CROSS JOIN LATERAL (SELECT * FROM stats_tasks \
                     WHERE stats_tasks.task_id = k.id LIMIT 1) s",
            )
            .bind(&task_ids)
            .fetch_all(&mut **tx)
            .await?;
            batch.tasks = rows
                .into_iter()
                .map(|(id, queue, status)| (id, TaskRow { queue, status }))
                .collect();
            batch.tasks_stored = batch.tasks.keys().copied().collect();
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

    /// Writes the task, bounty and escrow rows the batch changed, one statement per table.
    async fn write_rows(mut self, tx: &mut Tx) -> Result<(), ProjectionError> {
        self.tasks_changed.sort_unstable();
        self.tasks_changed.dedup();
        // New tasks in a plain insert (an upsert costs a speculative insertion per row, and
        // nearly every task of a catch-up or a rebuild is new), moved ones in an update. The
        // checkpoint's lock keeps every other applier out; were a new row there all the same,
        // the insert fails and the runner applies the batch event by event.
        let (mut new, mut moved) = (TaskColumns::default(), TaskColumns::default());
        for id in self.tasks_changed {
            if let Some(row) = self.tasks.remove(&id) {
                let columns = match self.tasks_stored.contains(&id) {
                    true => &mut moved,
                    false => &mut new,
                };
                columns.ids.push(id);
                columns.queues.push(row.queue);
                columns.statuses.push(row.status);
            }
        }
        if !new.ids.is_empty() {
            sqlx::query(
                "INSERT INTO stats_tasks (task_id, queue, status) \
                 SELECT * FROM UNNEST($1::uuid[], $2::text[], $3::text[])",
            )
            .bind(new.ids)
            .bind(new.queues)
            .bind(new.statuses)
            .execute(&mut **tx)
            .await?;
        }
        if !moved.ids.is_empty() {
            sqlx::query(
                "UPDATE stats_tasks t SET status = m.status \
                 FROM UNNEST($1::uuid[], $2::text[]) AS m(task_id, status) \
                 WHERE t.task_id = m.task_id",
            )
            .bind(moved.ids)
            .bind(moved.statuses)
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

impl Activity {
    /// An event recorded `at`: one more in its second (and a completion), its actor active
    /// on its day (UTC), as `apply.rs`'s `activity` counts them.
    fn count(&mut self, at: DateTime<Utc>, completed: bool, actor: Option<Uuid>) {
        let second = self.seconds.entry(at.trunc_subsecs(0)).or_default();
        second.0 += 1;
        second.1 += i64::from(completed);
        if let Some(actor) = actor {
            self.active.insert((at.date_naive(), actor));
        }
    }

    /// A prune at an event recorded `at`, as `apply.rs`'s `prune` deletes: seconds more than an
    /// hour and days more than a week before it.
    fn prune(&mut self, at: DateTime<Utc>) {
        let second = at - TimeDelta::hours(1);
        self.seconds = self.seconds.split_off(&second);
        self.seconds_below = self.seconds_below.max(Some(second));
        let Some(day) = at.date_naive().checked_sub_days(Days::new(7)) else {
            return;
        };
        self.active = self.active.split_off(&(day, Uuid::nil()));
        self.days_below = self.days_below.max(Some(day));
    }

    async fn write(self, tx: &mut Tx) -> Result<(), ProjectionError> {
        if let Some(below) = self.seconds_below {
            sqlx::query("DELETE FROM stats_seconds WHERE second < $1")
                .bind(below)
                .execute(&mut **tx)
                .await?;
        }
        if let Some(below) = self.days_below {
            sqlx::query("DELETE FROM stats_active_users WHERE day < $1")
                .bind(below)
                .execute(&mut **tx)
                .await?;
        }
        if !self.seconds.is_empty() {
            let (mut seconds, mut events, mut completions) = (Vec::new(), Vec::new(), Vec::new());
            for (second, (n, completed)) in self.seconds {
                seconds.push(second);
                events.push(n);
                completions.push(completed);
            }
            sqlx::query(
                "INSERT INTO stats_seconds (second, events, completions) \
                 SELECT * FROM UNNEST($1::timestamptz[], $2::int8[], $3::int8[]) \
                 ON CONFLICT (second) DO UPDATE SET \
                     events = stats_seconds.events + EXCLUDED.events, \
                     completions = stats_seconds.completions + EXCLUDED.completions",
            )
            .bind(seconds)
            .bind(events)
            .bind(completions)
            .execute(&mut **tx)
            .await?;
        }
        if !self.active.is_empty() {
            let (days, actors): (Vec<_>, Vec<_>) = self.active.into_iter().unzip();
            sqlx::query(
                "INSERT INTO stats_active_users (day, user_id) \
                 SELECT * FROM UNNEST($1::date[], $2::uuid[]) ON CONFLICT DO NOTHING",
            )
            .bind(days)
            .bind(actors)
            .execute(&mut **tx)
            .await?;
        }
        Ok(())
    }
}
