//! How events travel on NATS: the payload is a JSON [`crate::StoredEvent`]; these headers
//! carry what consumers need without decoding it.

/// `Nats-Msg-Id` is the event id, so JetStream drops a republished event within the window.
pub const HEADER_MSG_ID: &str = "Nats-Msg-Id";
/// The event's global position.
pub const HEADER_POSITION: &str = "Bl-Position";
/// The position of the event published just before this one: consumers detect a gap when it
/// is not the last position they applied.
pub const HEADER_PREV_POSITION: &str = "Bl-Prev-Position";

/// The aggregate type an event's subject names (`<prefix>.events.<AggregateType>`), so that a
/// consumer can pass over events of other types without decoding them.
pub fn aggregate_type_of(subject: &str) -> Option<&str> {
    subject
        .rsplit_once(".events.")
        .map(|(_, aggregate_type)| aggregate_type)
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_subject_names_the_aggregate_type() {
        assert_eq!(super::aggregate_type_of("bl-x.events.Task"), Some("Task"));
        assert_eq!(
            super::aggregate_type_of("bl.events.x.events.Wallet"),
            Some("Wallet")
        );
        assert_eq!(super::aggregate_type_of("elsewhere"), None);
    }
}
