//! Every route module registers itself here.

pub mod admin;
pub mod audit_chain;
pub mod audit_events;
pub mod audit_state;
pub mod auth;
pub mod bounties;
pub mod dashboard;
pub mod docs;
pub mod erasure;
pub mod health;
pub mod me;
pub mod notifications;
pub mod ops;
pub mod payments;
pub mod queues;
pub mod stats;
pub mod streams;
pub mod tasks;
pub mod wallets;
pub mod webhooks;

pub fn config(cfg: &mut actix_web::web::ServiceConfig) {
    cfg.configure(ops::config)
        .configure(health::config)
        .configure(docs::config)
        .configure(auth::config)
        .configure(me::config)
        .configure(erasure::config)
        .configure(admin::config)
        .configure(audit_chain::config)
        .configure(audit_events::config)
        .configure(audit_state::config)
        .configure(tasks::config)
        .configure(queues::config)
        .configure(bounties::config)
        .configure(wallets::config)
        .configure(payments::config)
        .configure(notifications::config)
        .configure(stats::config)
        .configure(webhooks::config)
        .configure(streams::config)
        .configure(dashboard::config);
}
