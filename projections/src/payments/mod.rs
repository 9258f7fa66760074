//! The `payments` projection: every escrow payment with its payer, payee and status.

mod apply;
pub mod query;

pub use apply::PaymentsProjection;
