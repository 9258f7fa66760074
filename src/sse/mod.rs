//! Live streams (DESIGN.md guarantee 9): Server-Sent Events whose ids are global positions.
//!
//! One [`Hub`] per API process follows the JetStream stream with an ordered consumer and
//! fans events out through a bounded broadcast ring. Each client is a small task that maps
//! events to its topic's messages. A client that reconnects with `Last-Event-ID`, or that
//! falls so far behind that the ring dropped what it had not sent yet, is caught up from the
//! event store and then continues live; it never gets a message twice, since it only sends
//! positions above the last one it sent. Memory stays bounded however slow a client is.
//! Each user may hold a bounded number of streams open per process ([`Hub::admit`]).

mod hub;
mod stats;
mod topic;

pub use hub::{Ends, Hub, Slot};
pub use stats::StatsFeed;
pub use topic::Topic;
