//! A chain epoch ([ADR 7](../../docs/adr/0007-erasure-by-sealed-texts.md), step 3): the
//! record that texts written before sealing were sealed in place, and that the hash chains of
//! the streams holding them were recomputed from their first changed event. Its aggregate id
//! is the epoch's id; its stream has one event.
//!
//! The store's rewrite itself is not the domain's (it happens in one transaction beside the
//! append of this event, `src/privacy/reseal.rs`); what history keeps is how much changed and a
//! digest binding the changed links (`resealed_links`: each event's old and new hash) to it.

use chrono::{DateTime, Utc};
use cqrs_es::event_sink::EventSink;
use cqrs_es::{Aggregate, DomainEvent};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// What a re-seal found and did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reseal {
    pub epoch: Uuid,
    /// Texts sealed in place.
    pub texts: u64,
    /// Events whose payload changed.
    pub events: u64,
    /// Streams whose chain was recomputed.
    pub streams: u64,
    /// Events whose hash changed: the changed events and every later one of their streams.
    pub links: u64,
    /// Lower-case hex SHA-256 over the changed links in stream and sequence order, each as
    /// `<type>\0<id>\0<sequence>\0<old hash hex>\0<new hash hex>\n`.
    pub links_digest: String,
    pub at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum EpochEvent {
    /// Texts written before sealing were sealed under their authors' keys (an erased
    /// author's under a key no one keeps), and the chains holding them recomputed.
    ChainResealed(Reseal),
}

impl DomainEvent for EpochEvent {
    fn event_type(&self) -> String {
        let name = match self {
            EpochEvent::ChainResealed(_) => "ChainResealed",
        };
        name.to_owned()
    }

    fn event_version(&self) -> String {
        crate::upcast::current_version(&self.event_type()).to_string()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EpochError {
    #[error("the epoch was recorded already")]
    Recorded,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EpochCommand {
    /// Record a re-seal that was done.
    Record(Reseal),
}

/// An epoch's state: the re-seal it records, once recorded.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Epoch {
    pub resealed: Option<Reseal>,
}

impl Epoch {
    /// Decides which events a command produces, or why it is refused. Pure.
    pub fn decide(&self, command: EpochCommand) -> Result<Vec<EpochEvent>, EpochError> {
        match command {
            EpochCommand::Record(_) if self.resealed.is_some() => Err(EpochError::Recorded),
            EpochCommand::Record(reseal) => Ok(vec![EpochEvent::ChainResealed(reseal)]),
        }
    }
}

impl Aggregate for Epoch {
    const TYPE: &'static str = "Epoch";
    type Command = EpochCommand;
    type Event = EpochEvent;
    type Error = EpochError;
    type Services = ();

    async fn handle(
        &mut self,
        command: EpochCommand,
        _services: &(),
        sink: &EventSink<Self>,
    ) -> Result<(), EpochError> {
        for event in self.decide(command)? {
            sink.write(event, self).await;
        }
        Ok(())
    }

    fn apply(&mut self, event: EpochEvent) {
        match event {
            EpochEvent::ChainResealed(reseal) => self.resealed = Some(reseal),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reseal() -> Reseal {
        Reseal {
            epoch: Uuid::from_u128(7),
            texts: 5,
            events: 3,
            streams: 2,
            links: 4,
            links_digest: "ab".repeat(32),
            at: DateTime::parse_from_rfc3339("2026-12-07T21:00:00Z")
                .unwrap()
                .with_timezone(&Utc),
        }
    }

    #[test]
    fn an_epoch_records_one_reseal() {
        let mut epoch = Epoch::default();
        let events = epoch.decide(EpochCommand::Record(reseal())).unwrap();
        assert_eq!(events, vec![EpochEvent::ChainResealed(reseal())]);
        epoch.apply(events[0].clone());
        assert_eq!(
            epoch.decide(EpochCommand::Record(reseal())),
            Err(EpochError::Recorded)
        );
    }
}
