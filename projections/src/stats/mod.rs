//! The `stats` projection: the platform's figures for dashboards (open bounties and their
//! reward, escrow held, tasks by queue and status, events and completions per second, active
//! users per day), kept as counters so a snapshot reads a handful of small rows.

mod apply;
mod batch;
pub mod query;

pub use apply::StatsProjection;
