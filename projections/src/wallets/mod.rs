//! The `wallets` projection: each user's balances per currency and the ledger of entries.

mod apply;
mod batch;
pub mod query;

pub use apply::WalletsProjection;
