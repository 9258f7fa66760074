//! The worker process's parts besides the relay: projection runners, the lease-expiry and
//! bounty-expiry schedulers and the lag monitor.

pub mod bounty_expiry;
pub mod lag;
pub mod lease_expiry;

use bountyline_projections::bounties::BountiesProjection;
use bountyline_projections::notifications::NotificationsProjection;
use bountyline_projections::payments::PaymentsProjection;
use bountyline_projections::runner::{Feed, ProjectionRunner, RunnerConfig};
use bountyline_projections::stats::StatsProjection;
use bountyline_projections::tasks::TasksProjection;
use bountyline_projections::wallets::WalletsProjection;
use bountyline_projections::Projection;
use sqlx::PgPool;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

use crate::config::WorkerSettings;
use crate::nats::Names;
use crate::privacy::Opener;

/// Runs `scan` every `interval` until shutdown. A failed scan is logged and simply tried
/// again at the next tick: schedulers issue idempotent commands, so nothing is lost.
pub async fn every<F, Fut>(
    what: &'static str,
    interval: Duration,
    mut shutdown: watch::Receiver<bool>,
    mut scan: F,
) where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<(), sqlx::Error>>,
{
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutdown.changed() => return,
        }
        if let Err(e) = scan().await {
            tracing::warn!(error = %e, "{what} scan failed");
        }
    }
}

/// Every projection bountyline maintains, by name. The bounties' search vector indexes the
/// words `opener` opens (ADR 7): live and rebuilt alike.
pub fn projections(opener: &Opener) -> Vec<Arc<dyn Projection>> {
    vec![
        Arc::new(TasksProjection),
        Arc::new(WalletsProjection),
        Arc::new(PaymentsProjection),
        Arc::new(BountiesProjection::new(Arc::new(opener.clone()))),
        Arc::new(NotificationsProjection),
        Arc::new(StatsProjection),
    ]
}

pub fn projection(name: &str, opener: &Opener) -> Option<Arc<dyn Projection>> {
    projections(opener).into_iter().find(|p| p.name() == name)
}

/// The runner that feeds `projections` from the event stream through the durable consumer
/// `durable`, each projection announcing its checkpoints on its own progress subject.
pub fn projection_runner(
    pool: &PgPool,
    js: &async_nats::jetstream::Context,
    names: &Names,
    settings: &WorkerSettings,
    durable: String,
    projections: Vec<Arc<dyn Projection>>,
) -> ProjectionRunner {
    let feeds = projections
        .into_iter()
        .map(|projection| Feed {
            progress_subject: names.progress(projection.name()),
            projection,
        })
        .collect();
    let config = RunnerConfig {
        stream: names.stream(),
        durable,
        batch: settings.projection_batch,
        catch_up_batch: settings.projection_catch_up_batch,
        max_attempts: 3,
        ack_wait: Duration::from_secs(settings.ack_wait_secs),
    };
    ProjectionRunner::new(pool.clone(), js.clone(), feeds, config)
}
