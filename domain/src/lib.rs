//! bountyline's business rules: aggregates, their commands and events, and typed refusals.
//!
//! Everything here is pure: no IO, no clock, no randomness. Time and identities arrive inside
//! commands, so the same history and command always decide the same events. Each aggregate
//! keeps its rules in a synchronous `decide`; the cqrs-es `Aggregate::handle` only adapts it.

pub mod actor;
pub mod bounty;
pub mod epoch;
pub mod inbox;
pub mod money;
pub mod payment;
pub mod person;
pub mod task;
pub mod upcast;
pub mod values;
pub mod wallet;

pub use actor::{Actor, Role};
pub use money::{Currency, Money};
