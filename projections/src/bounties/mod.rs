//! The `bounties` projection: the bounty board (one row per bounty, filterable by status, tag
//! and text) and each bounty's applications; also the candidates of the expiry scheduler.
//! Texts are stored sealed as the events hold them; only the search vector holds words.

mod apply;
mod batch;
mod erased;
pub mod query;
pub mod search;
mod words;

pub use apply::BountiesProjection;
pub use query::{ApplicationView, BoardFilter, BoardSort, BountyView, Reward, SortKey, Work};
