//! Returns tasks whose lease ran out to their queue. Each expiry names the lease it ends, so
//! a heartbeat or a newer claim that raced the scan wins, and running several schedulers at
//! once is harmless: the aggregate refuses the duplicates.

use bountyline_domain::task::TaskCommand;
use bountyline_projections::tasks::query;
use chrono::Utc;
use sqlx::PgPool;
use std::time::Duration;
use tokio::sync::watch;

use crate::commands::{CommandBus, CommandContext, CommandError};

pub async fn run(
    pool: PgPool,
    commands: CommandBus,
    interval: Duration,
    shutdown: watch::Receiver<bool>,
) {
    let (pool, commands) = (&pool, &commands);
    super::every("lease expiry", interval, shutdown, || scan(pool, commands)).await;
}

async fn scan(pool: &PgPool, commands: &CommandBus) -> Result<(), sqlx::Error> {
    let now = Utc::now();
    for (task, lease_id) in query::expired_leases(pool, now, 200).await? {
        let ctx = CommandContext::system(&format!("lease-expiry:{lease_id}"));
        let command = TaskCommand::ExpireLease { lease_id, at: now };
        match commands.task(task, command, &ctx).await {
            Ok(_) => tracing::info!(%task, %lease_id, "lease expired"),
            Err(CommandError::Domain(_) | CommandError::Conflict(_)) => {}
            Err(e) => tracing::warn!(%task, error = %e, "expiring a lease failed"),
        }
    }
    Ok(())
}
