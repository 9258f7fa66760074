//! What happened to a person. The one event says who was forgotten, by whom and when; it
//! carries ids only, so it stays readable (and its hash verifiable) after the erasure.

use chrono::{DateTime, Utc};
use cqrs_es::DomainEvent;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum PersonEvent {
    /// `by` is the person themself (`DELETE /v1/me`) or the admin who erased them.
    PersonErased {
        person: Uuid,
        by: Uuid,
        at: DateTime<Utc>,
    },
}

impl DomainEvent for PersonEvent {
    fn event_type(&self) -> String {
        let name = match self {
            PersonEvent::PersonErased { .. } => "PersonErased",
        };
        name.to_owned()
    }

    /// The version of this event type's stored form: 1 plus the upcasting steps registered
    /// for it ([`crate::upcast`], which says how to change an event).
    fn event_version(&self) -> String {
        crate::upcast::current_version(&self.event_type()).to_string()
    }
}
