//! The `payments` projection: every escrow payment with its payer, payee and status.

mod apply;
mod batch;
pub mod query;

pub use apply::PaymentsProjection;
