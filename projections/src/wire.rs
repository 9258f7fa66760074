//! How events travel on NATS: the payload is a JSON [`crate::StoredEvent`]; these headers
//! carry what consumers need without decoding it.

/// `Nats-Msg-Id` is the event id, so JetStream drops a republished event within the window.
pub const HEADER_MSG_ID: &str = "Nats-Msg-Id";
/// The event's global position.
pub const HEADER_POSITION: &str = "Bl-Position";
/// The position of the event published just before this one: consumers detect a gap when it
/// is not the last position they applied.
pub const HEADER_PREV_POSITION: &str = "Bl-Prev-Position";
