//! Publishes how far the relay and each projection trail the event store, and how many
//! events are parked, as gauges.

use sqlx::PgPool;
use std::time::Duration;
use tokio::sync::watch;

pub async fn run(pool: PgPool, stream: String, mut shutdown: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(Duration::from_secs(2));
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutdown.changed() => return,
        }
        if let Err(e) = measure(&pool, &stream).await {
            tracing::debug!(error = %e, "lag measurement failed");
        }
    }
}

async fn measure(pool: &PgPool, stream: &str) -> Result<(), sqlx::Error> {
    let head: i64 = sqlx::query_scalar("SELECT coalesce(max(position), 0)::bigint FROM events")
        .fetch_one(pool)
        .await?;
    let relay: Option<i64> =
        sqlx::query_scalar("SELECT position FROM relay_checkpoints WHERE stream = $1")
            .bind(stream)
            .fetch_optional(pool)
            .await?;
    metrics::gauge!("bountyline_relay_lag").set((head - relay.unwrap_or(0)) as f64);
    let rows: Vec<(String, i64)> =
        sqlx::query_as("SELECT projection, position FROM projection_checkpoints")
            .fetch_all(pool)
            .await?;
    let parked: Vec<(String, i64)> =
        sqlx::query_as("SELECT projection, count(*) FROM parked_events GROUP BY projection")
            .fetch_all(pool)
            .await?;
    for (projection, position) in rows {
        // Zero is a reading too: a dashboard should see "none parked", not "no data".
        let count = parked
            .iter()
            .find(|(p, _)| *p == projection)
            .map_or(0, |(_, n)| *n);
        metrics::gauge!("bountyline_parked_events", "projection" => projection.clone())
            .set(count as f64);
        metrics::gauge!("bountyline_projection_lag", "projection" => projection)
            .set((head - position) as f64);
    }
    Ok(())
}
