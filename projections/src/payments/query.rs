//! Reads of the payments read model.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::{PgPool, QueryBuilder};
use uuid::Uuid;

#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct PaymentView {
    pub id: Uuid,
    pub bounty_id: Option<Uuid>,
    pub payer: Uuid,
    pub payee: Option<Uuid>,
    pub amount: i64,
    pub currency: String,
    pub status: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub version: i64,
    pub position: i64,
}

const COLUMNS: &str = "id, bounty_id, payer, payee, amount, currency, status, created_at, \
     updated_at, version, position";

/// Payments filtered by bounty and/or party; `party` limits to payments the user pays or gets.
pub async fn list(
    pool: &PgPool,
    bounty_id: Option<Uuid>,
    party: Option<Uuid>,
    after: Option<(DateTime<Utc>, Uuid)>,
    limit: i64,
) -> Result<Vec<PaymentView>, sqlx::Error> {
    let mut q = QueryBuilder::new(format!("SELECT {COLUMNS} FROM payments WHERE true"));
    if let Some(bounty) = bounty_id {
        q.push(" AND bounty_id = ").push_bind(bounty);
    }
    if let Some(user) = party {
        q.push(" AND (payer = ")
            .push_bind(user)
            .push(" OR payee = ")
            .push_bind(user)
            .push(")");
    }
    if let Some((at, id)) = after {
        q.push(" AND (created_at, id) < (")
            .push_bind(at)
            .push(", ")
            .push_bind(id)
            .push(")");
    }
    q.push(" ORDER BY created_at DESC, id DESC LIMIT ")
        .push_bind(limit);
    q.build_query_as().fetch_all(pool).await
}

pub async fn get(pool: &PgPool, id: Uuid) -> Result<Option<PaymentView>, sqlx::Error> {
    sqlx::query_as(&format!("SELECT {COLUMNS} FROM payments WHERE id = $1"))
        .bind(id)
        .fetch_optional(pool)
        .await
}
