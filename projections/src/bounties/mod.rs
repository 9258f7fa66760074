//! The `bounties` projection: the bounty board (one row per bounty, filterable by status, tag
//! and text) and each bounty's applications; also the candidates of the expiry scheduler.

mod apply;
mod batch;
pub mod query;

pub use apply::BountiesProjection;
pub use query::{ApplicationView, BoardFilter, BoardSort, BountyView, Reward, SortKey, Work};
