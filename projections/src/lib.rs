//! bountyline's read side: the events as stored, the projection runner that turns them into
//! read models (checkpointed, idempotent, gap-safe), rebuilds, and the read models' queries.

pub mod backoff;
pub mod bounties;
pub mod checkpoint;
pub mod event;
mod fan_out;
pub mod flushed;
pub mod notifications;
pub mod opener;
pub mod payments;
pub mod projection;
pub mod rebuild;
pub mod runner;
pub mod signal;
pub mod stats;
pub mod tasks;
pub mod wallets;
pub mod wire;

pub use event::{EventReader, StoredEvent};
pub use opener::Opener;
pub use projection::{Projection, ProjectionError};
