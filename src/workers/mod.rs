//! The worker process's parts besides the relay: projection runners, the lease-expiry and
//! bounty-expiry schedulers and the lag monitor.

pub mod bounty_expiry;
pub mod lag;
pub mod lease_expiry;

use bountyline_projections::bounties::BountiesProjection;
use bountyline_projections::notifications::NotificationsProjection;
use bountyline_projections::payments::PaymentsProjection;
use bountyline_projections::tasks::TasksProjection;
use bountyline_projections::wallets::WalletsProjection;
use bountyline_projections::Projection;
use std::sync::Arc;

/// Every projection bountyline maintains, by name.
pub fn projections() -> Vec<Arc<dyn Projection>> {
    vec![
        Arc::new(TasksProjection),
        Arc::new(WalletsProjection),
        Arc::new(PaymentsProjection),
        Arc::new(BountiesProjection),
        Arc::new(NotificationsProjection),
    ]
}

pub fn projection(name: &str) -> Option<Arc<dyn Projection>> {
    projections().into_iter().find(|p| p.name() == name)
}
