//! The progress of each money flow the process managers drive (one per payment), written in
//! the same transaction as their checkpoint, so that an operator can see which flows are in
//! flight, which are done and which are stuck.

use sqlx::{Postgres, Transaction};
use std::collections::HashMap;
use uuid::Uuid;

/// A flow that has not moved for this long is reported as stuck.
pub const STUCK_AFTER_SECS: i64 = 60;

/// How a flow stands after an event: its id, kind, bounty, step name and whether it is done.
pub struct Progress {
    pub flow: Uuid,
    pub kind: &'static str,
    pub bounty: Option<Uuid>,
    pub step: &'static str,
    pub done: bool,
}

/// Where one event moved one flow.
pub struct Moved {
    /// The event's position: a flow's row only ever moves forward.
    pub position: i64,
    pub progress: Progress,
}

/// Records a batch's moves (in position order) in one statement, with the outcome of
/// recording them one by one: a flow's last move stands, and its bounty is the first named.
pub async fn record(
    tx: &mut Transaction<'static, Postgres>,
    moves: &[Moved],
) -> Result<(), sqlx::Error> {
    let mut latest: HashMap<Uuid, (&Moved, Option<Uuid>)> = HashMap::new();
    for m in moves {
        let (last, bounty) = latest
            .entry(m.progress.flow)
            .or_insert((m, m.progress.bounty));
        if last.position < m.position {
            *last = m;
        }
        *bounty = bounty.or(m.progress.bounty);
    }
    if latest.is_empty() {
        return Ok(());
    }
    let (moved, bounties): (Vec<&Moved>, Vec<Option<Uuid>>) = latest.into_values().unzip();
    sqlx::query(
        "INSERT INTO public.process_flows (flow_id, kind, bounty_id, step, done, position) \
         SELECT * FROM unnest($1::uuid[], $2::text[], $3::uuid[], $4::text[], $5::bool[], \
           $6::bigint[]) \
         ON CONFLICT (flow_id) DO UPDATE SET kind = excluded.kind, \
           bounty_id = coalesce(process_flows.bounty_id, excluded.bounty_id), \
           step = excluded.step, done = excluded.done, last_error = NULL, updated_at = now(), \
           position = excluded.position \
         WHERE process_flows.position < excluded.position",
    )
    .bind(moved.iter().map(|m| m.progress.flow).collect::<Vec<_>>())
    .bind(moved.iter().map(|m| m.progress.kind).collect::<Vec<_>>())
    .bind(bounties)
    .bind(moved.iter().map(|m| m.progress.step).collect::<Vec<_>>())
    .bind(moved.iter().map(|m| m.progress.done).collect::<Vec<_>>())
    .bind(moved.iter().map(|m| m.position).collect::<Vec<_>>())
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
