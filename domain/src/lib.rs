//! bountyline's business rules: aggregates, their commands and events, and typed refusals.
//!
//! Everything here is pure: no IO, no clock, no randomness. Time and identities arrive inside
//! commands, so the same history and command always decide the same events. Each aggregate
//! keeps its rules in a synchronous `decide`; the cqrs-es `Aggregate::handle` only adapts it.

pub mod actor;
pub mod task;
pub mod values;

pub use actor::{Actor, Role};
