//! Who may take work from a queue (issue 23): its owner, the member who first posted a task to
//! it; the workers its owner (or an admin) granted it to; and admins. Anyone may post a task to
//! a queue, as to an inbox; only those may claim from it, so no stranger takes a task to
//! complete it with a forged result or fail it into the dead letters.
//!
//! `PUT /v1/queues/{queue}/workers/{id}` grants a member the queue, `DELETE` takes it back;
//! both are its owner's (or an admin's) to do.

use actix_web::{web, HttpResponse};
use bountyline_domain::values::QueueName;
use bountyline_domain::{Actor, Role};
use sqlx::PgPool;
use std::time::Duration;
use uuid::Uuid;

use crate::auth::Authenticated;
use crate::http::error::{ApiError, ApiResult};
use crate::http::openapi::params::{QueuePath, UserId};
use crate::http::openapi::problems::{Forbidden, Invalid, NotFound, Unauthenticated};
use crate::kept::Kept;

pub fn config(cfg: &mut web::ServiceConfig) {
    cfg.route("/v1/queues/{queue}/workers/{id}", web::put().to(grant))
        .route("/v1/queues/{queue}/workers/{id}", web::delete().to(revoke));
}

/// The queues this process knows to have an owner. An owner is never taken from a queue, so
/// a queue registered once (by this process, or found registered by another) needs no
/// statement on its next task: every task's creation asked Postgres before, an extra round
/// trip and statement per command that cost 14% of the command path's throughput (`bench/ab`,
/// docs/PERFORMANCE.md). Bounded: when full it starts over, and the next task of each queue
/// asks again.
pub struct KnownQueues(Kept<String, ()>);

/// How many queue names a process keeps.
const QUEUES_KEPT: usize = 4096;
/// How long a queue is taken as registered: forever would do; this only bounds how long an
/// entry outlives a queue table emptied by hand.
const QUEUE_KEPT_FOR: Duration = Duration::from_secs(3600);

impl Default for KnownQueues {
    fn default() -> Self {
        Self(Kept::new(QUEUES_KEPT, QUEUE_KEPT_FOR))
    }
}

/// Makes `queue` `owner`'s if it has no owner yet: the first task posted to a queue names it.
pub async fn register(
    pool: &PgPool,
    known: &KnownQueues,
    queue: &QueueName,
    owner: Uuid,
) -> ApiResult<()> {
    let name = queue.as_str().to_owned();
    if known.0.get(&name).is_some() {
        return Ok(());
    }
    sqlx::query(
        "INSERT INTO queues (name, owner) SELECT $1, $2 \
         WHERE NOT EXISTS (SELECT 1 FROM queues WHERE name = $1) ON CONFLICT DO NOTHING",
    )
    .bind(queue.as_str())
    .bind(owner)
    .execute(pool)
    .await?;
    known.0.put(name, ());
    Ok(())
}

/// Refuses `actor` a claim from `queue` unless they own it, were granted it or are an admin.
pub async fn may_claim(pool: &PgPool, queue: &QueueName, actor: &Actor) -> ApiResult<()> {
    if actor.has(Role::Admin) {
        return Ok(());
    }
    let allowed: bool = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM queues WHERE name = $1 AND owner = $2) \
             OR EXISTS (SELECT 1 FROM queue_workers WHERE queue = $1 AND user_id = $2)",
    )
    .bind(queue.as_str())
    .bind(actor.user_id)
    .fetch_one(pool)
    .await?;
    if allowed {
        Ok(())
    } else {
        Err(ApiError::Forbidden(format!(
            "you may not claim from the queue {}: its owner grants it to workers",
            queue.as_str()
        )))
    }
}

/// The queue, if `actor` may manage its workers: its owner or an admin.
async fn managed(pool: &PgPool, raw: &str, actor: &Actor) -> ApiResult<QueueName> {
    let queue = QueueName::parse(raw)?;
    let owner: Option<Uuid> = sqlx::query_scalar("SELECT owner FROM queues WHERE name = $1")
        .bind(queue.as_str())
        .fetch_optional(pool)
        .await?;
    match owner {
        None => Err(ApiError::NotFound("no such queue".into())),
        Some(owner) if owner == actor.user_id || actor.has(Role::Admin) => Ok(queue),
        Some(_) => Err(ApiError::Forbidden(
            "only the queue's owner or an admin may grant it".into(),
        )),
    }
}

/// Grant a member the queue: they may claim from it (its owner or an admin).
#[utoipa::path(
    put, path = "/v1/queues/{queue}/workers/{id}", operation_id = "grantQueue", tag = "tasks",
    params(QueuePath, UserId),
    responses((status = 204, description = "The member may claim from the queue"),
        Unauthenticated, Forbidden, NotFound, Invalid),
    security(("bearer" = [])),
)]
async fn grant(
    pool: web::Data<PgPool>,
    caller: Authenticated,
    path: web::Path<(String, Uuid)>,
) -> ApiResult<HttpResponse> {
    let (queue, worker) = path.into_inner();
    let queue = managed(&pool, &queue, &caller).await?;
    let granted = sqlx::query(
        "INSERT INTO queue_workers (queue, user_id, granted_by) \
         SELECT $1, id, $3 FROM users WHERE id = $2 ON CONFLICT DO NOTHING",
    )
    .bind(queue.as_str())
    .bind(worker)
    .bind(caller.user_id)
    .execute(&**pool)
    .await?;
    if granted.rows_affected() == 0 && !is_worker(&pool, &queue, worker).await? {
        return Err(ApiError::NotFound("no such user".into()));
    }
    tracing::info!(queue = queue.as_str(), %worker, by = %caller.user_id, "queue granted");
    Ok(HttpResponse::NoContent().finish())
}

/// Take the queue back from a member (its owner or an admin); their leases run out as usual.
#[utoipa::path(
    delete, path = "/v1/queues/{queue}/workers/{id}", operation_id = "revokeQueue",
    tag = "tasks",
    params(QueuePath, UserId),
    responses((status = 204, description = "The member may no longer claim from the queue"),
        Unauthenticated, Forbidden, NotFound, Invalid),
    security(("bearer" = [])),
)]
async fn revoke(
    pool: web::Data<PgPool>,
    caller: Authenticated,
    path: web::Path<(String, Uuid)>,
) -> ApiResult<HttpResponse> {
    let (queue, worker) = path.into_inner();
    let queue = managed(&pool, &queue, &caller).await?;
    sqlx::query("DELETE FROM queue_workers WHERE queue = $1 AND user_id = $2")
        .bind(queue.as_str())
        .bind(worker)
        .execute(&**pool)
        .await?;
    Ok(HttpResponse::NoContent().finish())
}

async fn is_worker(pool: &PgPool, queue: &QueueName, user: Uuid) -> ApiResult<bool> {
    let found: Option<bool> =
        sqlx::query_scalar("SELECT true FROM queue_workers WHERE queue = $1 AND user_id = $2")
            .bind(queue.as_str())
            .bind(user)
            .fetch_optional(pool)
            .await?;
    Ok(found.is_some())
}
