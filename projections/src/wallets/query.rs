//! Reads of the wallets read model.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::PgPool;
use uuid::Uuid;

#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct Balance {
    pub currency: String,
    pub available: i64,
    pub held: i64,
}

pub async fn balances(pool: &PgPool, user: Uuid) -> Result<Vec<Balance>, sqlx::Error> {
    sqlx::query_as(
        "SELECT currency, available, held FROM wallet_balances WHERE user_id = $1 ORDER BY currency",
    )
    .bind(user)
    .fetch_all(pool)
    .await
}

#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct Entry {
    pub id: Uuid,
    pub kind: String,
    pub currency: String,
    pub amount: i64,
    pub available: i64,
    pub held: i64,
    pub reference: Option<String>,
    pub payment_id: Option<Uuid>,
    pub withdrawal_id: Option<Uuid>,
    pub at: DateTime<Utc>,
    pub position: i64,
}

/// A user's ledger, newest first, after `before` (a position) when paging.
pub async fn entries(
    pool: &PgPool,
    user: Uuid,
    before: Option<i64>,
    limit: i64,
) -> Result<Vec<Entry>, sqlx::Error> {
    sqlx::query_as(
        "SELECT event_id AS id, kind, currency, amount, available, held, reference, payment_id, \
         withdrawal_id, at, position FROM wallet_entries \
         WHERE user_id = $1 AND ($2::bigint IS NULL OR position < $2) \
         ORDER BY position DESC LIMIT $3",
    )
    .bind(user)
    .bind(before)
    .bind(limit)
    .fetch_all(pool)
    .await
}
