//! One consistent snapshot of the stats read model.

use bountyline_domain::bounty::BountyStatus;
use bountyline_domain::task::TaskStatus;
use chrono::{DateTime, Duration, DurationRound, Utc};
use serde::Serialize;
use sqlx::{Connection, PgPool};
use std::collections::BTreeMap;

/// How many seconds the events-per-second series covers (and "per minute" means).
pub const WINDOW_SECS: i64 = 60;

#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Stats {
    /// The last event position the figures include.
    pub position: i64,
    /// When the snapshot was taken; the per-minute figures cover the minute before it.
    pub at: DateTime<Utc>,
    pub bounties: BountyStats,
    pub escrow_held: Vec<Amount>,
    pub tasks: TaskStats,
    pub completions_per_minute: i64,
    pub events_per_minute: i64,
    /// Events recorded in each of the last [`WINDOW_SECS`] seconds, oldest first.
    pub events_per_second: Vec<i64>,
    /// Distinct people who issued a command today (UTC).
    pub active_users_today: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Amount {
    pub amount: i64,
    pub currency: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct BountyStats {
    pub open: i64,
    pub open_reward: Vec<Amount>,
    /// Every status, zeros included.
    #[schema(value_type = BTreeMap<String, i64>)]
    pub by_status: BTreeMap<&'static str, i64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct TaskStats {
    /// Every status, zeros included.
    #[schema(value_type = BTreeMap<String, i64>)]
    pub by_status: BTreeMap<&'static str, i64>,
    pub queues: Vec<QueueCounts>,
}

#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct QueueCounts {
    pub queue: String,
    /// The queue's tasks by status, every status present (flattened into this object).
    #[serde(flatten)]
    #[schema(value_type = BTreeMap<String, i64>)]
    pub by_status: BTreeMap<&'static str, i64>,
}

fn zeros<const N: usize>(names: [&'static str; N]) -> BTreeMap<&'static str, i64> {
    names.into_iter().map(|name| (name, 0)).collect()
}

fn task_zeros() -> BTreeMap<&'static str, i64> {
    zeros(TaskStatus::ALL.map(|s| s.as_str()))
}

/// Adds `count` under the known status `name`; statuses this build does not know are skipped.
fn add(map: &mut BTreeMap<&'static str, i64>, name: &str, count: i64) {
    if let Some(slot) = map.get_mut(name) {
        *slot += count;
    }
}

/// The figures as of now, read in one repeatable-read transaction so they agree with each
/// other and with `position`.
pub async fn snapshot(pool: &PgPool) -> Result<Stats, sqlx::Error> {
    let now = Utc::now();
    let mut conn = pool.acquire().await?;
    let mut tx = conn.begin().await?;
    sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        .execute(&mut *tx)
        .await?;

    let position: i64 = sqlx::query_scalar(
        "SELECT coalesce((SELECT position FROM projection_checkpoints \
         WHERE projection = 'stats'), 0)",
    )
    .fetch_one(&mut *tx)
    .await?;

    let mut bounties = BountyStats {
        open: 0,
        open_reward: Vec::new(),
        by_status: zeros(BountyStatus::ALL.map(|s| s.as_str())),
    };
    let rows: Vec<(String, String, i64, i64)> = sqlx::query_as(
        "SELECT status, currency, count, amount FROM stats_bounty_counts \
         WHERE count <> 0 ORDER BY currency, status",
    )
    .fetch_all(&mut *tx)
    .await?;
    for (status, currency, count, amount) in rows {
        add(&mut bounties.by_status, &status, count);
        if status == BountyStatus::Open.as_str() {
            bounties.open += count;
            bounties.open_reward.push(Amount { amount, currency });
        }
    }

    let escrow_held = sqlx::query_as::<_, (i64, String)>(
        "SELECT held, currency FROM stats_escrow WHERE held <> 0 ORDER BY currency",
    )
    .fetch_all(&mut *tx)
    .await?
    .into_iter()
    .map(|(amount, currency)| Amount { amount, currency })
    .collect();

    let mut tasks = TaskStats {
        by_status: task_zeros(),
        queues: Vec::new(),
    };
    let rows: Vec<(String, String, i64)> = sqlx::query_as(
        "SELECT queue, status, count FROM stats_task_counts WHERE count <> 0 ORDER BY queue",
    )
    .fetch_all(&mut *tx)
    .await?;
    for (queue, status, count) in rows {
        add(&mut tasks.by_status, &status, count);
        if tasks.queues.last().is_none_or(|q| q.queue != queue) {
            tasks.queues.push(QueueCounts {
                queue,
                by_status: task_zeros(),
            });
        }
        if let Some(q) = tasks.queues.last_mut() {
            add(&mut q.by_status, &status, count);
        }
    }

    // The window ends with the current (partial) second.
    let end = now.duration_trunc(Duration::seconds(1)).unwrap_or(now);
    let start = end - Duration::seconds(WINDOW_SECS - 1);
    let seconds: Vec<(DateTime<Utc>, i64, i64)> = sqlx::query_as(
        "SELECT second, events, completions FROM stats_seconds WHERE second BETWEEN $1 AND $2",
    )
    .bind(start)
    .bind(end)
    .fetch_all(&mut *tx)
    .await?;
    let mut events_per_second = vec![0; WINDOW_SECS as usize];
    let mut completions_per_minute = 0;
    for (second, events, completions) in seconds {
        let slot = (second - start).num_seconds();
        if let Some(count) = usize::try_from(slot)
            .ok()
            .and_then(|i| events_per_second.get_mut(i))
        {
            *count += events;
        }
        completions_per_minute += completions;
    }

    let active_users_today: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM stats_active_users WHERE day = ($1 AT TIME ZONE 'UTC')::date",
    )
    .bind(now)
    .fetch_one(&mut *tx)
    .await?;
    tx.commit().await?;

    Ok(Stats {
        position,
        at: now,
        bounties,
        escrow_held,
        tasks,
        completions_per_minute,
        events_per_minute: events_per_second.iter().sum(),
        events_per_second,
        active_users_today,
    })
}
