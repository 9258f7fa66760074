//! The record of commands sent with an Idempotency-Key (`command_keys`, migrations/0020):
//! one per actor and key, written by the group commit with the command's events. What a retry
//! reads when its first try's outcome was unknown, to answer what the first try did.

use sqlx::PgPool;
use uuid::Uuid;

/// What one keyed command stored: its aggregate, the sequences of its first and last event,
/// and the position of its last.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct Recorded {
    pub aggregate_type: String,
    pub aggregate_id: String,
    pub first_sequence: i64,
    pub last_sequence: i64,
    pub position: i64,
}

/// The command `actor` sent under `key`, if one is stored; once it is durable, since it is
/// what the retry is answered.
pub async fn recorded(pool: &PgPool, actor: Uuid, key: &str) -> sqlx::Result<Option<Recorded>> {
    let recorded = sqlx::query_as(
        "SELECT aggregate_type, aggregate_id, first_sequence, last_sequence, position \
         FROM command_keys WHERE actor = $1 AND idempotency_key = $2",
    )
    .bind(actor.to_string())
    .bind(key)
    .fetch_optional(pool)
    .await?;
    if recorded.is_some() {
        bountyline_projections::flushed::settle(pool).await?;
    }
    Ok(recorded)
}
