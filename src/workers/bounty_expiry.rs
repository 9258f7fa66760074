//! Expires open bounties whose deadline has passed; the refund then follows through the
//! process managers. Candidates come from the read model, which may lag: the aggregate
//! decides, so a bounty assigned in the meantime, or one another scheduler expired first, is
//! simply refused and skipped.

use bountyline_domain::bounty::BountyCommand;
use bountyline_projections::bounties::query;
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
    super::every("bounty expiry", interval, shutdown, || scan(pool, commands)).await;
}

async fn scan(pool: &PgPool, commands: &CommandBus) -> Result<(), sqlx::Error> {
    let now = Utc::now();
    for bounty in query::open_past_deadline(pool, now, 200).await? {
        let ctx = CommandContext::system(&format!("bounty-expiry:{bounty}"));
        match commands
            .bounty(bounty, BountyCommand::Expire { at: now }, &ctx)
            .await
        {
            Ok(_) => tracing::info!(%bounty, "bounty expired"),
            Err(CommandError::Domain(_) | CommandError::Conflict(_)) => {}
            Err(e) => tracing::warn!(%bounty, error = %e, "expiring a bounty failed"),
        }
    }
    Ok(())
}
