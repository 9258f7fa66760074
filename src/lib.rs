//! bountyline: an event-sourced CQRS backend for a work marketplace.
//!
//! The crate is the server: the HTTP edge (`http`), authentication (`auth`), the command side
//! (`commands`), the relay that publishes the event store to NATS (`relay`), live streams
//! (`sse`), the keyring that seals people's texts (`privacy`), the worker loops (`workers`),
//! configuration and the CLI. Business rules live in the `bountyline-domain` crate; read
//! models in `bountyline-projections`.
//! See docs/ARCHITECTURE.md for the map.

pub mod audit;
pub mod auth;
pub mod cli;
pub mod commands;
pub mod config;
pub mod db;
pub mod defects;
pub mod http;
pub mod kept;
pub mod nats;
pub mod privacy;
pub mod relay;
pub mod sagas;
pub mod sse;
pub mod startup;
pub mod state;
pub mod store;
pub mod telemetry;
pub mod timing;
pub mod workers;
