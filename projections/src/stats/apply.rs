//! Applies events to the stats counters. The runner applies each position exactly once (the
//! checkpoint commits with the rows), so counters may be incremented rather than recomputed.

use async_trait::async_trait;
use bountyline_domain::bounty::BountyEvent;
use bountyline_domain::payment::PaymentEvent;
use bountyline_domain::task::{TaskEvent, TaskStatus};
use bountyline_domain::Actor;
use sqlx::{Postgres, Transaction};
use uuid::Uuid;

use crate::{Projection, ProjectionError, StoredEvent};

/// Old per-second rows are pruned every this many positions (cheap, and deterministic, so a
/// rebuild holds exactly the rows the live projection holds).
pub(super) const PRUNE_EVERY: i64 = 256;

pub struct StatsProjection;

type Tx = Transaction<'static, Postgres>;

#[async_trait]
impl Projection for StatsProjection {
    fn name(&self) -> &'static str {
        "stats"
    }

    fn tables(&self) -> &'static [&'static str] {
        &[
            "stats_bounties",
            "stats_bounty_counts",
            "stats_escrow",
            "stats_tasks",
            "stats_task_counts",
            "stats_seconds",
            "stats_active_users",
        ]
    }

    fn deferred_indexes(&self) -> &'static [&'static str] {
        &["stats_bounties_status_idx"]
    }

    async fn apply_batch(
        &self,
        tx: &mut Tx,
        events: &[StoredEvent],
    ) -> Result<(), ProjectionError> {
        super::batch::apply(tx, events).await
    }

    async fn apply(&self, tx: &mut Tx, event: &StoredEvent) -> Result<(), ProjectionError> {
        let completed = match event.aggregate_type.as_str() {
            "Task" => task(tx, event).await?,
            "Bounty" => bounty(tx, event).await.map(|()| false)?,
            "Payment" => payment(tx, event).await.map(|()| false)?,
            _ => false,
        };
        activity(tx, event, completed).await?;
        if event.position % PRUNE_EVERY == 0 {
            prune(tx, event).await?;
        }
        Ok(())
    }
}

pub(super) fn id_of(event: &StoredEvent) -> Result<Uuid, ProjectionError> {
    event.aggregate_uuid().ok_or_else(|| {
        ProjectionError::Invalid(format!(
            "{} id {}",
            event.aggregate_type, event.aggregate_id
        ))
    })
}

/// Moves the task between status counters; returns whether it was a completion.
async fn task(tx: &mut Tx, event: &StoredEvent) -> Result<bool, ProjectionError> {
    let id = id_of(event)?;
    let task: TaskEvent = event
        .decode()
        .map_err(|e| ProjectionError::decode(event, e))?;
    if let TaskEvent::TaskCreated { queue, .. } = &task {
        sqlx::query(
            "WITH new AS (INSERT INTO stats_tasks (task_id, queue, status) VALUES ($1, $2, $3) \
                 ON CONFLICT (task_id) DO NOTHING RETURNING queue, status) \
             INSERT INTO stats_task_counts (queue, status, count) SELECT queue, status, 1 FROM new \
             ON CONFLICT (queue, status) DO UPDATE SET count = stats_task_counts.count + 1",
        )
        .bind(id)
        .bind(queue)
        .bind(TaskStatus::Queued.as_str())
        .execute(&mut **tx)
        .await?;
        return Ok(false);
    }
    let Some(status) = task.status_after() else {
        return Ok(false);
    };
    // One round trip: leave the old status's counter, join the new one.
    sqlx::query(
        "WITH old AS (SELECT queue, status FROM stats_tasks \
                 WHERE task_id = $1 AND status <> $2 FOR UPDATE), \
             moved AS (UPDATE stats_tasks t SET status = $2 FROM old WHERE t.task_id = $1 \
                 RETURNING old.queue, old.status AS was), \
             left_old AS (UPDATE stats_task_counts c SET count = c.count - 1 FROM moved \
                 WHERE c.queue = moved.queue AND c.status = moved.was) \
         INSERT INTO stats_task_counts (queue, status, count) SELECT queue, $2, 1 FROM moved \
         ON CONFLICT (queue, status) DO UPDATE SET count = stats_task_counts.count + 1",
    )
    .bind(id)
    .bind(status.as_str())
    .execute(&mut **tx)
    .await?;
    Ok(status == TaskStatus::Completed)
}

async fn bounty(tx: &mut Tx, event: &StoredEvent) -> Result<(), ProjectionError> {
    let id = id_of(event)?;
    let bounty: BountyEvent = event
        .decode()
        .map_err(|e| ProjectionError::decode(event, e))?;
    let Some(status) = bounty.status_after() else {
        return Ok(());
    };
    if let BountyEvent::BountyPosted { reward, .. } = &bounty {
        sqlx::query(
            "WITH new AS (INSERT INTO stats_bounties (bounty_id, status, currency, amount) \
                 VALUES ($1, $2, $3, $4) ON CONFLICT (bounty_id) DO NOTHING \
                 RETURNING status, currency, amount) \
             INSERT INTO stats_bounty_counts (status, currency, count, amount) \
             SELECT status, currency, 1, amount FROM new \
             ON CONFLICT (status, currency) DO UPDATE SET \
                 count = stats_bounty_counts.count + 1, \
                 amount = stats_bounty_counts.amount + EXCLUDED.amount",
        )
        .bind(id)
        .bind(status.as_str())
        .bind(reward.currency().as_str())
        .bind(reward.amount())
        .execute(&mut **tx)
        .await?;
    } else {
        // One round trip, as for tasks: leave the old status's counter, join the new one.
        sqlx::query(
            "WITH old AS (SELECT status, currency, amount FROM stats_bounties \
                     WHERE bounty_id = $1 AND status <> $2 FOR UPDATE), \
                 moved AS (UPDATE stats_bounties b SET status = $2 FROM old \
                     WHERE b.bounty_id = $1 \
                     RETURNING old.status AS was, old.currency, old.amount), \
                 left_old AS (UPDATE stats_bounty_counts c \
                     SET count = c.count - 1, amount = c.amount - moved.amount FROM moved \
                     WHERE c.status = moved.was AND c.currency = moved.currency) \
             INSERT INTO stats_bounty_counts (status, currency, count, amount) \
             SELECT $2, currency, 1, amount FROM moved \
             ON CONFLICT (status, currency) DO UPDATE SET \
                 count = stats_bounty_counts.count + 1, \
                 amount = stats_bounty_counts.amount + EXCLUDED.amount",
        )
        .bind(id)
        .bind(status.as_str())
        .execute(&mut **tx)
        .await?;
    }
    Ok(())
}

/// Escrow is held from `PaymentHeld` until the payment is released or refunded.
async fn payment(tx: &mut Tx, event: &StoredEvent) -> Result<(), ProjectionError> {
    let payment: PaymentEvent = event
        .decode()
        .map_err(|e| ProjectionError::decode(event, e))?;
    let (currency, delta) = match &payment {
        PaymentEvent::PaymentHeld {
            currency, amount, ..
        } => (currency, *amount),
        PaymentEvent::PaymentReleased {
            currency, amount, ..
        }
        | PaymentEvent::PaymentRefunded {
            currency, amount, ..
        } => (currency, -*amount),
        _ => return Ok(()),
    };
    sqlx::query(
        "INSERT INTO stats_escrow (currency, held) VALUES ($1, $2) \
         ON CONFLICT (currency) DO UPDATE SET held = stats_escrow.held + $2",
    )
    .bind(currency.as_str())
    .bind(delta)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Counts the event in its second, and its actor (a person, not bountyline itself) as active
/// on its day.
async fn activity(
    tx: &mut Tx,
    event: &StoredEvent,
    completed: bool,
) -> Result<(), ProjectionError> {
    sqlx::query(
        "INSERT INTO stats_seconds (second, events, completions) \
         VALUES (date_trunc('second', $1), 1, $2) \
         ON CONFLICT (second) DO UPDATE SET events = stats_seconds.events + 1, \
             completions = stats_seconds.completions + $2",
    )
    .bind(event.recorded_at)
    .bind(i64::from(completed))
    .execute(&mut **tx)
    .await?;
    let actor = event
        .meta("actor")
        .and_then(|a| Uuid::parse_str(a).ok())
        .filter(|a| *a != Actor::SYSTEM_ID);
    if let Some(actor) = actor {
        sqlx::query(
            "INSERT INTO stats_active_users (day, user_id) \
             VALUES (($1 AT TIME ZONE 'UTC')::date, $2) ON CONFLICT DO NOTHING",
        )
        .bind(event.recorded_at)
        .bind(actor)
        .execute(&mut **tx)
        .await?;
    }
    Ok(())
}

async fn prune(tx: &mut Tx, event: &StoredEvent) -> Result<(), ProjectionError> {
    sqlx::query("DELETE FROM stats_seconds WHERE second < $1 - interval '1 hour'")
        .bind(event.recorded_at)
        .execute(&mut **tx)
        .await?;
    sqlx::query("DELETE FROM stats_active_users WHERE day < ($1 AT TIME ZONE 'UTC')::date - 7")
        .bind(event.recorded_at)
        .execute(&mut **tx)
        .await?;
    Ok(())
}
