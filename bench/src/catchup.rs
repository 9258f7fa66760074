//! `loadgen catchup`: watches the pipeline's checkpoints until every projection (and the
//! relay) has reached the head of the event store, and reports how fast each got there.
//! Started right after `bountyline work`, it measures projection catch-up; at any other
//! time it doubles as "wait until the read side is quiet".
//!
//! The headline figure is the projections' (every row of `projection_checkpoints`, the
//! process managers included): a projection that starts behind catches up from the store,
//! not from the stream, so the relay's own progress (republishing to JetStream) is reported
//! beside it, not in it.

use serde_json::{json, Value};
use sqlx::{Connection, PgConnection};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

#[derive(Debug, clap::Args)]
pub struct Args {
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    database_url: String,
    #[arg(long, default_value_t = 50)]
    poll_ms: u64,
    /// The head must stay put this long after everything reached it (process managers append
    /// follow-up events, which move it again).
    #[arg(long, default_value_t = 500)]
    stable_ms: u64,
    #[arg(long, default_value_t = 900)]
    timeout_seconds: u64,
}

struct Progress {
    start: i64,
    reached: Option<f64>,
}

pub async fn run(args: Args) -> anyhow::Result<Value> {
    // One connection, no pool: sqlx 0.8's pool maintenance can spin for good (see
    // bountyline::db::pool_options), and this polls every few milliseconds for minutes.
    let mut db = PgConnection::connect(&args.database_url).await?;
    let started = Instant::now();
    let deadline = started + Duration::from_secs(args.timeout_seconds);
    let start_head = head(&mut db).await?;
    let mut progress: BTreeMap<String, Progress> = BTreeMap::new();
    for (name, position) in checkpoints(&mut db).await? {
        progress.insert(
            name,
            Progress {
                start: position,
                reached: None,
            },
        );
    }
    let start_min = progress.values().map(|p| p.start).min().unwrap_or(0);
    let mut done_at: Option<(f64, i64)> = None;
    let timed_out = loop {
        let now = Instant::now();
        if now >= deadline {
            break true;
        }
        let head = head(&mut db).await?;
        let elapsed = started.elapsed().as_secs_f64();
        let mut all = true;
        for (name, position) in checkpoints(&mut db).await? {
            let p = progress.entry(name).or_insert(Progress {
                start: 0,
                reached: None,
            });
            if position >= head {
                p.reached.get_or_insert(elapsed);
            } else {
                p.reached = None;
                all = false;
            }
        }
        match (all, done_at) {
            (true, None) => done_at = Some((elapsed, head)),
            (true, Some((at, h))) if h == head => {
                if elapsed - at >= args.stable_ms as f64 / 1000.0 {
                    break false;
                }
            }
            (true, Some(_)) => done_at = Some((elapsed, head)),
            (false, _) => done_at = None,
        }
        tokio::time::sleep(Duration::from_millis(args.poll_ms)).await;
    };
    let (quiet_seconds, end_head) = match done_at {
        Some(d) if !timed_out => d,
        _ => (started.elapsed().as_secs_f64(), head(&mut db).await?),
    };
    let reached = |relay: bool| -> Option<f64> {
        let mut latest: Option<f64> = Some(0.0);
        for (name, p) in &progress {
            if name.starts_with(RELAY) == relay {
                latest = match (latest, p.reached) {
                    (Some(a), Some(b)) => Some(a.max(b)),
                    _ => None,
                };
            }
        }
        latest
    };
    let seconds = reached(false).unwrap_or(quiet_seconds);
    let projections_start = progress
        .iter()
        .filter(|(name, _)| !name.starts_with(RELAY))
        .map(|(_, p)| p.start)
        .min()
        .unwrap_or(start_min);
    let events = (end_head - projections_start).max(0);
    let per: BTreeMap<&str, Value> = progress
        .iter()
        .map(|(name, p)| {
            let n = (end_head - p.start).max(0);
            (
                name.as_str(),
                json!({
                    "start": p.start,
                    "events": n,
                    "seconds": p.reached,
                    "events_per_sec": p.reached.map(|s| n as f64 / s.max(1e-9)),
                }),
            )
        })
        .collect();
    Ok(json!({
        "phase": "catchup",
        "timed_out": timed_out,
        "start_head": start_head,
        "start_min_checkpoint": projections_start,
        "head": end_head,
        "events": events,
        "seconds": seconds,
        "events_per_sec": events as f64 / seconds.max(1e-9),
        "relay_seconds": reached(true),
        "quiet_seconds": quiet_seconds,
        "per_checkpoint": per,
    }))
}

pub async fn head(db: &mut PgConnection) -> anyhow::Result<i64> {
    Ok(
        sqlx::query_scalar("SELECT coalesce(max(position), 0)::bigint FROM events")
            .fetch_one(db)
            .await?,
    )
}

const RELAY: &str = "relay:";

/// Every projection's checkpoint, and the relay's as `relay:<stream>`.
pub async fn checkpoints(db: &mut PgConnection) -> anyhow::Result<Vec<(String, i64)>> {
    Ok(sqlx::query_as(
        "SELECT projection, position FROM projection_checkpoints \
         UNION ALL SELECT 'relay:' || stream, position FROM relay_checkpoints",
    )
    .fetch_all(db)
    .await?)
}
