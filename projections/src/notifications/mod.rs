//! The `notifications` projection: each user's feed of what concerns them (an application to
//! their bounty, their work approved, a payment received, a task of theirs dead-lettered…),
//! with read flags taken from the user's `Inbox` events, so a rebuild keeps them.
//!
//! Every notification's id is derived from the event and the recipient, and every timestamp
//! comes from the stored event, so applying an event twice or rebuilding from the store
//! writes exactly the rows the live projection wrote.

mod apply;
mod batch;
mod notices;
pub mod query;

pub use apply::NotificationsProjection;
pub use query::NotificationView;
