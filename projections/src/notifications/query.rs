//! Reads of the feed: a user's notifications newest first (all or unread only), paged by
//! position; the unread count; and which of some ids are the user's.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::PgPool;
use uuid::Uuid;

#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct NotificationView {
    pub id: Uuid,
    pub kind: String,
    pub subject_id: Option<Uuid>,
    pub data: serde_json::Value,
    pub created_at: DateTime<Utc>,
    pub read_at: Option<DateTime<Utc>>,
    pub position: i64,
}

/// `user`'s notifications, newest first, before `before` (a position) when paging. One event
/// makes at most one notification per user, so a position is a cursor within a feed.
pub async fn list(
    pool: &PgPool,
    user: Uuid,
    unread_only: bool,
    before: Option<i64>,
    limit: i64,
) -> Result<Vec<NotificationView>, sqlx::Error> {
    sqlx::query_as(
        "SELECT id, kind, subject_id, data, created_at, read_at, position FROM notifications \
         WHERE user_id = $1 AND (NOT $2 OR read_at IS NULL) \
           AND ($3::bigint IS NULL OR position < $3) \
         ORDER BY position DESC, id DESC LIMIT $4",
    )
    .bind(user)
    .bind(unread_only)
    .bind(before)
    .bind(limit)
    .fetch_all(pool)
    .await
}

pub async fn unread_count(pool: &PgPool, user: Uuid) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar("SELECT count(*) FROM notifications WHERE user_id = $1 AND read_at IS NULL")
        .bind(user)
        .fetch_one(pool)
        .await
}

/// Those of `ids` that are `user`'s notifications.
pub async fn owned(pool: &PgPool, user: Uuid, ids: &[Uuid]) -> Result<Vec<Uuid>, sqlx::Error> {
    sqlx::query_scalar("SELECT id FROM notifications WHERE user_id = $1 AND id = ANY($2)")
        .bind(user)
        .bind(ids)
        .fetch_all(pool)
        .await
}
