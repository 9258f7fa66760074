//! Expected versions (`If-Match`, API.md "Conventions"): a command sent "only if the aggregate
//! is still at the version I saw" is checked against the very state it is decided on.
//!
//! The check cannot sit in front of the command bus (read the version, then run the command):
//! another command could append between the two. It sits in the aggregate's `handle` instead,
//! through [`Versioned`], which counts the events applied to the aggregate it wraps, so its
//! version is the sequence of the last of them (every aggregate's sequence runs 1..n without
//! gaps). The store decides every command on a state with a known version and appends its
//! events at the next sequences, refusing them if the aggregate moved meanwhile (optimistic
//! concurrency); a decision on a remembered state that refuses is checked against the store
//! and decided again if it moved (`store::CachedStore::execute`). So a command that passed the
//! check was appended exactly on the version expected, and one refused names the version the
//! store held.

use cqrs_es::event_sink::EventSink;
use cqrs_es::Aggregate;
use serde::{Deserialize, Serialize};
use std::fmt;

use super::Creates;

/// What `If-Match` asks of the aggregate a command addresses. An aggregate without events
/// does not exist and matches nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expected {
    /// `*`: that it exists, at any version.
    Any,
    /// That it is at one of these versions (`"3"` or `"3", "4"`); empty when the header named
    /// only tags no version ever matches (a weak tag, under the strong comparison If-Match
    /// uses).
    OneOf(Vec<i64>),
}

impl Expected {
    /// Whether an aggregate at `version` (0: none) meets the expectation.
    pub fn admits(&self, version: i64) -> bool {
        version > 0
            && match self {
                Expected::Any => true,
                Expected::OneOf(versions) => versions.contains(&version),
            }
    }
}

/// Aggregate `A` and its version: how many events it has applied.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(bound(
    serialize = "A: Serialize",
    deserialize = "A: serde::de::DeserializeOwned"
))]
pub struct Versioned<A> {
    aggregate: A,
    version: i64,
}

/// A command with what its sender expects of the aggregate's version, if anything.
#[derive(Debug, Clone)]
pub struct Guarded<C> {
    pub expected: Option<Expected>,
    pub command: C,
}

impl<C: Creates> Creates for Guarded<C> {
    fn creates(&self) -> bool {
        self.command.creates()
    }
}

/// A guarded command's refusal.
#[derive(Debug)]
pub enum GuardError<E> {
    /// The aggregate refused the command.
    Refused(E),
    /// The aggregate is not at the version expected: nothing was decided. `refusal` is what
    /// the aggregate would have answered regardless, so that the edge can keep answering a
    /// caller who may not act at all as before (a stranger must not learn the version).
    Moved { current: i64, refusal: Option<E> },
}

impl<E: fmt::Display> fmt::Display for GuardError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GuardError::Refused(e) => e.fmt(f),
            GuardError::Moved { current, .. } => {
                write!(
                    f,
                    "the aggregate is at version {current}, not the one expected"
                )
            }
        }
    }
}

impl<E: std::error::Error> std::error::Error for GuardError<E> {}

impl<A> Aggregate for Versioned<A>
where
    A: Aggregate + Clone,
    A::Command: Send,
{
    const TYPE: &'static str = A::TYPE;
    type Command = Guarded<A::Command>;
    type Event = A::Event;
    type Error = GuardError<A::Error>;
    type Services = A::Services;

    async fn handle(
        &mut self,
        guarded: Guarded<A::Command>,
        services: &A::Services,
        sink: &EventSink<Self>,
    ) -> Result<(), GuardError<A::Error>> {
        let Guarded { expected, command } = guarded;
        // The aggregate writes its events to a sink of its own type, applying them to itself
        // as it goes; they are applied here once more through ours, so it decides on a copy.
        let mut deciding = self.aggregate.clone();
        let own = EventSink::default();
        let decided = deciding.handle(command, services, &own).await;
        if expected.is_some_and(|e| !e.admits(self.version)) {
            return Err(GuardError::Moved {
                current: self.version,
                refusal: decided.err(),
            });
        }
        decided.map_err(GuardError::Refused)?;
        for event in own.collect().await {
            sink.write(event, self).await;
        }
        Ok(())
    }

    fn apply(&mut self, event: A::Event) {
        self.aggregate.apply(event);
        self.version += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bountyline_domain::task::{CreateTask, Task, TaskCommand, TaskError};
    use bountyline_domain::values::{Description, Priority, QueueName, Title};
    use bountyline_domain::Actor;
    use chrono::Utc;
    use uuid::Uuid;

    fn create(creator: &Actor) -> TaskCommand {
        TaskCommand::Create(CreateTask {
            task_id: Uuid::now_v7(),
            queue: QueueName::parse("q").unwrap(),
            title: Title::parse("t").unwrap(),
            description: Description::parse("").unwrap(),
            priority: Priority::DEFAULT,
            payload: None,
            max_attempts: 3,
            bounty_id: None,
            actor: creator.clone(),
            at: Utc::now(),
        })
    }

    fn cancel(actor: &Actor) -> TaskCommand {
        TaskCommand::Cancel {
            actor: actor.clone(),
            at: Utc::now(),
        }
    }

    /// Runs `command` on `task` as the store does: its events applied through the sink.
    async fn run(
        task: &mut Versioned<Task>,
        command: TaskCommand,
        expected: Option<Expected>,
    ) -> Result<usize, GuardError<TaskError>> {
        let sink = EventSink::default();
        task.handle(Guarded { expected, command }, &(), &sink)
            .await?;
        Ok(sink.collect().await.len())
    }

    #[tokio::test]
    async fn a_command_runs_only_on_the_version_it_expects() {
        let creator = Actor::new(Uuid::now_v7(), Vec::new());
        let mut task = Versioned::<Task>::default();
        let created = run(&mut task, create(&creator), None).await;
        assert_eq!(created.ok(), Some(1));
        assert_eq!(task.version, 1, "one event applied, once");

        let stale = run(&mut task, cancel(&creator), Some(Expected::OneOf(vec![7]))).await;
        assert!(
            matches!(
                stale,
                Err(GuardError::Moved {
                    current: 1,
                    refusal: None
                })
            ),
            "{stale:?}"
        );
        assert_eq!(task.version, 1, "a refused expectation decides nothing");

        let stranger = Actor::new(Uuid::now_v7(), Vec::new());
        let hidden = run(&mut task, cancel(&stranger), Some(Expected::OneOf(vec![7]))).await;
        assert!(
            matches!(
                hidden,
                Err(GuardError::Moved {
                    refusal: Some(TaskError::NotFound),
                    ..
                })
            ),
            "the refusal a stranger gets anyway travels with it: {hidden:?}"
        );

        let current = run(&mut task, cancel(&creator), Some(Expected::OneOf(vec![1]))).await;
        assert_eq!(current.ok(), Some(1));
        assert_eq!(task.version, 2);
    }

    #[tokio::test]
    async fn an_aggregate_without_events_matches_no_expectation() {
        let creator = Actor::new(Uuid::now_v7(), Vec::new());
        let mut task = Versioned::<Task>::default();
        let any = run(&mut task, create(&creator), Some(Expected::Any)).await;
        assert!(
            matches!(any, Err(GuardError::Moved { current: 0, .. })),
            "{any:?}"
        );
        assert!(!Expected::OneOf(vec![0]).admits(0));
        assert!(Expected::Any.admits(3));
        assert!(
            !Expected::OneOf(Vec::new()).admits(3),
            "only weak tags: never"
        );
        assert!(Expected::OneOf(vec![2, 3]).admits(3));
    }
}
