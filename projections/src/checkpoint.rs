//! Projection checkpoints: the last position a projection applied, stored with its rows.
//!
//! A checkpoint only moves forward. Nothing legitimately moves one back: a rebuild swaps in
//! tables built at least as far as the live checkpoint and stores the greater of the two.

use sqlx::{PgExecutor, Postgres, Transaction};

/// Locks the projection's checkpoint row for this transaction and returns it. Holding the row
/// lock serialises appliers of one projection (two workers, or a rebuild's final swap).
pub async fn lock(
    tx: &mut Transaction<'static, Postgres>,
    projection: &str,
) -> Result<i64, sqlx::Error> {
    const LOCK: &str =
        "SELECT position FROM public.projection_checkpoints WHERE projection = $1 FOR UPDATE";
    // One round trip for every batch but a projection's first.
    if let Some(position) = sqlx::query_scalar(LOCK)
        .bind(projection)
        .fetch_optional(&mut **tx)
        .await?
    {
        return Ok(position);
    }
    sqlx::query(
        "INSERT INTO public.projection_checkpoints (projection) VALUES ($1) \
         ON CONFLICT (projection) DO NOTHING",
    )
    .bind(projection)
    .execute(&mut **tx)
    .await?;
    sqlx::query_scalar(LOCK)
        .bind(projection)
        .fetch_one(&mut **tx)
        .await
}

/// Moves the projection's checkpoint to `position`, unless it already stands there or beyond:
/// a worker that lagged behind another (parking an event the other went past, say) must not
/// take it back, or the events in between would be applied again.
pub async fn store(
    tx: &mut Transaction<'static, Postgres>,
    projection: &str,
    position: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE public.projection_checkpoints SET position = $2, updated_at = now() \
         WHERE projection = $1 AND position < $2",
    )
    .bind(projection)
    .bind(position)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

pub async fn read<'e>(db: impl PgExecutor<'e>, projection: &str) -> Result<i64, sqlx::Error> {
    let position: Option<i64> = sqlx::query_scalar(
        "SELECT position FROM public.projection_checkpoints WHERE projection = $1",
    )
    .bind(projection)
    .fetch_optional(db)
    .await?;
    Ok(position.unwrap_or(0))
}
