//! The progress of each money flow the process managers drive (one per payment), written in
//! the same transaction as their checkpoint, so that an operator can see which flows are in
//! flight, which are done and which are stuck.

use sqlx::{Postgres, Transaction};
use uuid::Uuid;

/// A flow that has not moved for this long is reported as stuck.
pub const STUCK_AFTER_SECS: i64 = 60;

pub async fn record(
    tx: &mut Transaction<'static, Postgres>,
    flow_id: Uuid,
    kind: &str,
    bounty_id: Option<Uuid>,
    step: &str,
    done: bool,
    position: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO public.process_flows (flow_id, kind, bounty_id, step, done, position) \
         VALUES ($1, $2, $3, $4, $5, $6) \
         ON CONFLICT (flow_id) DO UPDATE SET kind = $2, \
           bounty_id = coalesce(process_flows.bounty_id, $3), step = $4, done = $5, \
           last_error = NULL, updated_at = now(), position = $6 \
         WHERE process_flows.position < $6",
    )
    .bind(flow_id)
    .bind(kind)
    .bind(bounty_id)
    .bind(step)
    .bind(done)
    .bind(position)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Notes why a flow's last step was refused (it stays open, and shows as stuck if it stays).
pub async fn note_error(
    tx: &mut Transaction<'static, Postgres>,
    flow_id: Uuid,
    error: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE public.process_flows SET last_error = $2 WHERE flow_id = $1")
        .bind(flow_id)
        .bind(error)
        .execute(&mut **tx)
        .await?;
    Ok(())
}
