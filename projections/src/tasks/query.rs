//! Reads of the `tasks` read model: lists with cursor paging, one task, queue stats, and the
//! candidates the claim and lease-expiry paths work through.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::{PgPool, QueryBuilder};
use uuid::Uuid;

#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct TaskView {
    pub id: Uuid,
    pub queue: String,
    pub title: String,
    pub description: String,
    pub priority: i16,
    pub payload: Option<serde_json::Value>,
    pub result: Option<serde_json::Value>,
    pub status: String,
    pub creator: Uuid,
    pub worker: Option<Uuid>,
    pub lease_expires_at: Option<DateTime<Utc>>,
    pub attempts: i32,
    pub max_attempts: i32,
    pub progress: Option<i16>,
    pub note: Option<String>,
    pub last_error: Option<String>,
    pub bounty_id: Option<Uuid>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub version: i64,
    pub position: i64,
}

const TASK_COLUMNS: &str = "id, queue, title, description, priority, payload, result, status, \
     creator, worker, lease_expires_at, attempts, max_attempts, progress, note, last_error, \
     bounty_id, created_at, updated_at, version, position";

/// Which tasks a list shows. `visible_to` limits it to tasks the user created or holds.
#[derive(Debug, Clone, Default)]
pub struct TaskFilter {
    pub queue: Option<String>,
    pub status: Option<String>,
    pub creator: Option<Uuid>,
    pub worker: Option<Uuid>,
    pub visible_to: Option<Uuid>,
    /// Continue after this (created_at, id): the list is newest first.
    pub after: Option<(DateTime<Utc>, Uuid)>,
    pub limit: i64,
}

pub async fn list(pool: &PgPool, filter: &TaskFilter) -> Result<Vec<TaskView>, sqlx::Error> {
    let mut q = QueryBuilder::new(format!("SELECT {TASK_COLUMNS} FROM tasks WHERE true"));
    if let Some(queue) = &filter.queue {
        q.push(" AND queue = ").push_bind(queue);
    }
    if let Some(status) = &filter.status {
        q.push(" AND status = ").push_bind(status);
    }
    if let Some(creator) = filter.creator {
        q.push(" AND creator = ").push_bind(creator);
    }
    if let Some(worker) = filter.worker {
        q.push(" AND worker = ").push_bind(worker);
    }
    if let Some(user) = filter.visible_to {
        q.push(" AND (creator = ")
            .push_bind(user)
            .push(" OR worker = ")
            .push_bind(user)
            .push(")");
    }
    if let Some((created_at, id)) = filter.after {
        q.push(" AND (created_at, id) < (")
            .push_bind(created_at)
            .push(", ")
            .push_bind(id)
            .push(")");
    }
    q.push(" ORDER BY created_at DESC, id DESC LIMIT ")
        .push_bind(filter.limit);
    q.build_query_as().fetch_all(pool).await
}

pub async fn get(pool: &PgPool, id: Uuid) -> Result<Option<TaskView>, sqlx::Error> {
    sqlx::query_as(&format!("SELECT {TASK_COLUMNS} FROM tasks WHERE id = $1"))
        .bind(id)
        .fetch_optional(pool)
        .await
}

/// The tasks of `ids` that exist, in no particular order.
pub async fn get_many(pool: &PgPool, ids: &[Uuid]) -> Result<Vec<TaskView>, sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT {TASK_COLUMNS} FROM tasks WHERE id = ANY($1)"
    ))
    .bind(ids)
    .fetch_all(pool)
    .await
}

/// How many unexpired leases `worker` holds, as the read model knows it. Claims a worker has
/// in flight at this moment are not counted yet, so a burst may overshoot a cap by that many
/// (itself bounded by the per-user command rate).
pub async fn leases_held(pool: &PgPool, worker: Uuid) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT count(*) FROM tasks WHERE worker = $1 AND status = 'claimed' \
         AND lease_expires_at > now()",
    )
    .bind(worker)
    .fetch_one(pool)
    .await
}

/// The next tasks a claim on `queue` should try, best first: highest priority, then oldest,
/// leaving out those the claim already lost.
pub async fn claim_candidates(
    pool: &PgPool,
    queue: &str,
    skip: &[Uuid],
    limit: i64,
) -> Result<Vec<TaskView>, sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT {TASK_COLUMNS} FROM tasks WHERE queue = $1 AND status = 'queued' \
         AND id <> ALL($2) ORDER BY priority DESC, created_at, id LIMIT $3"
    ))
    .bind(queue)
    .bind(skip)
    .bind(limit)
    .fetch_all(pool)
    .await
}

/// Claimed tasks whose lease ran out before `now`, with the lease to expire.
pub async fn expired_leases(
    pool: &PgPool,
    now: DateTime<Utc>,
    limit: i64,
) -> Result<Vec<(Uuid, Uuid)>, sqlx::Error> {
    sqlx::query_as(
        "SELECT id, lease_id FROM tasks WHERE status = 'claimed' AND lease_expires_at < $1 \
         AND lease_id IS NOT NULL ORDER BY lease_expires_at LIMIT $2",
    )
    .bind(now)
    .bind(limit)
    .fetch_all(pool)
    .await
}

#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct QueueStats {
    pub queue: String,
    pub queued: i64,
    pub claimed: i64,
    pub completed: i64,
    pub dead_lettered: i64,
    pub cancelled: i64,
    /// Seconds the oldest queued task has waited, if any waits.
    pub oldest_waiting_seconds: Option<f64>,
    /// Completions in the last minute.
    pub completions_per_minute: i64,
}

pub async fn queue_stats(
    pool: &PgPool,
    now: DateTime<Utc>,
) -> Result<Vec<QueueStats>, sqlx::Error> {
    sqlx::query_as(
        "SELECT queue, \
           count(*) FILTER (WHERE status = 'queued') AS queued, \
           count(*) FILTER (WHERE status = 'claimed') AS claimed, \
           count(*) FILTER (WHERE status = 'completed') AS completed, \
           count(*) FILTER (WHERE status = 'dead_lettered') AS dead_lettered, \
           count(*) FILTER (WHERE status = 'cancelled') AS cancelled, \
           extract(epoch FROM $1 - min(queued_at) FILTER (WHERE status = 'queued'))::float8 \
             AS oldest_waiting_seconds, \
           count(*) FILTER (WHERE status = 'completed' AND completed_at > $1 - interval '1 minute') \
             AS completions_per_minute \
         FROM tasks GROUP BY queue ORDER BY queue",
    )
    .bind(now)
    .fetch_all(pool)
    .await
}
