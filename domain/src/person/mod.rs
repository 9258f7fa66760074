//! A person: one per user (its aggregate id is the user's id), recording that they were
//! erased ([ADR 7](../../../docs/adr/0007-erasure-by-sealed-texts.md)).
//!
//! The account itself (email, name, password) lives in `users`, outside the store; this
//! stream holds only what history must keep: who was forgotten, when and by whom. Erasing a
//! person already erased decides nothing: the second ask is answered as the first was (the
//! scrubbing it triggers is idempotent), and the stream keeps one `PersonErased`.

mod command;
mod error;
mod event;

pub use command::PersonCommand;
pub use error::PersonError;
pub use event::PersonEvent;

use chrono::{DateTime, Utc};
use cqrs_es::event_sink::EventSink;
use cqrs_es::Aggregate;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// The person aggregate's state, folded from its events. `None` until they are erased: a
/// person's stream has no other event.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Person {
    pub erased: Option<Erasure>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Erasure {
    pub person: Uuid,
    pub by: Uuid,
    pub at: DateTime<Utc>,
}

impl Person {
    /// Decides which events a command produces, or why it is refused. Pure.
    pub fn decide(&self, command: PersonCommand) -> Result<Vec<PersonEvent>, PersonError> {
        let named = command.person();
        if let Some(erasure) = &self.erased {
            if erasure.person != named {
                return Err(PersonError::WrongPerson {
                    person: erasure.person,
                    named,
                });
            }
        }
        match command {
            PersonCommand::Erase { person, actor, at } => {
                if actor.user_id != person && !actor.is_admin() {
                    return Err(PersonError::NotAllowed);
                }
                if self.erased.is_some() {
                    return Ok(vec![]);
                }
                Ok(vec![PersonEvent::PersonErased {
                    person,
                    by: actor.user_id,
                    at,
                }])
            }
        }
    }
}

impl Aggregate for Person {
    const TYPE: &'static str = "Person";
    type Command = PersonCommand;
    type Event = PersonEvent;
    type Error = PersonError;
    type Services = ();

    async fn handle(
        &mut self,
        command: PersonCommand,
        _services: &(),
        sink: &EventSink<Self>,
    ) -> Result<(), PersonError> {
        for event in self.decide(command)? {
            sink.write(event, self).await;
        }
        Ok(())
    }

    fn apply(&mut self, event: PersonEvent) {
        match event {
            PersonEvent::PersonErased { person, by, at } => {
                // The first erasure is the one history names; a second is never decided.
                self.erased.get_or_insert(Erasure { person, by, at });
            }
        }
    }
}

#[cfg(test)]
mod tests;
