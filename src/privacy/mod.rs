//! Erasure by sealed texts (ADR 7, docs/PRIVACY.md): the texts people write are sealed under
//! a data key of their own before a command reaches the domain, and opened at the answer edge;
//! destroying a person's key makes every copy of their texts unreadable at once (events,
//! read models, JetStream, exports, backups) while every hash chain stays as it is.
//!
//! - [`seal`]: the sealed form and its associated data (aggregate id and field name);
//! - [`keyring`]: each person's data key in `person_keys`, wrapped by `privacy.key`, kept
//!   opened for `privacy.key_cache_ms`;
//! - [`erasure`]: what follows a person's `PersonErased` (their key destroyed, their account
//!   scrubbed), run by the handler and again by the process managers;
//! - [`legacy`]: texts written before sealing, shown as `"[erased]"` once their author is
//!   erased (their bytes stay in the event store);
//! - [`reseal`]: `bountyline privacy reseal`, which seals those texts in place in a new chain
//!   epoch, so that their bytes go too;
//! - [`opener`]: the one opener of answers (JSON, events, SSE messages), and the projections'
//!   words for the bounty search vector.

pub mod erasure;
pub mod keyring;
pub mod legacy;
pub mod opener;
pub mod reseal;
pub mod seal;

pub use keyring::{Keyring, PrivacyError, Sealer};
pub use opener::{Opener, Scope};
pub use seal::{field, ERASED};
