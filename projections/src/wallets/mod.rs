//! The `wallets` projection: each user's balances per currency and the ledger of entries.

mod apply;
pub mod query;

pub use apply::WalletsProjection;
