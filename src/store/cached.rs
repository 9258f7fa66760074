//! Hot aggregates kept in memory, checked against the store on every load.
//!
//! cqrs-es's event store rebuilds an aggregate from all of its events for every command. That
//! is fine for a task (a handful of events) and not for a wallet, which gathers an event per
//! deposit, hold and payout: under a held load each command on a wallet read and replayed
//! hundreds of events, and throughput fell as the wallets grew.
//!
//! [`CachedStore`] keeps the state and version an aggregate had after this process's last
//! successful command on it. A load reads only the events after that version (usually none:
//! one indexed look-up that returns no row), so events appended meanwhile by other processes
//! are always applied, and optimistic concurrency at the append stays exactly as it was: the
//! cache never answers for the store, it only saves replaying what was already replayed.
//!
//! An entry is taken out of the cache while its command runs and put back after that
//! command's events are committed, or after the command was refused (a refusal decides no
//! event, so the state is the one loaded). A command whose append fails (a conflict, a
//! database out of reach) leaves the state it was decided on, still a true prefix of the
//! aggregate's history, and the next load reads what is newer.
//!
//! [`CachedStore::execute`] runs a command as cqrs-es's `CqrsFramework` does (load, handle,
//! commit), except that a refusal keeps the entry, and that it does not ask the store first
//! where the answer is most likely "nothing newer": see there.

use bountyline_domain::upcast::{current_version, upcast};
use cqrs_es::event_sink::EventSink;
use cqrs_es::persist::{
    EventStoreAggregateContext, PersistedEventRepository, PersistenceError, SerializedEvent,
};
use cqrs_es::{Aggregate, AggregateError, EventEnvelope, EventStore};
use hashlink::LruCache;
use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Mutex;

use super::EventRepository;

/// Aggregates of one type this process keeps, the most recently used.
pub const CACHED_AGGREGATES: usize = 1024;

/// An aggregate's state after its event `version`; `shared` once another process was seen
/// appending to it (its commands then read the store first, see [`CachedStore::execute`]).
#[derive(Clone)]
struct Entry<A> {
    aggregate: A,
    version: usize,
    shared: bool,
}

impl<A: Default> Entry<A> {
    fn empty() -> Self {
        Self {
            aggregate: A::default(),
            version: 0,
            shared: false,
        }
    }
}

/// How a decision on an aggregate as remembered (or assumed new) went.
enum Attempt<A: Aggregate> {
    /// Its events are committed: the state it was decided on was current.
    Committed,
    /// It appended nothing (a refusal, or a repeat that changes nothing): the answer stands if
    /// the store holds nothing newer.
    Unchanged(Result<(), A::Error>),
    /// The aggregate had moved on: decide again on the store's state.
    Conflicted,
}

/// Counts how optimistic attempts went (`bountyline_aggregate_attempts_total{outcome}`).
fn attempted(outcome: &'static str) {
    metrics::counter!("bountyline_aggregate_attempts_total", "outcome" => outcome).increment(1);
}

/// cqrs-es's event store for aggregate `A` over [`EventRepository`], with the hot aggregates
/// kept in memory.
pub struct CachedStore<A: Aggregate> {
    repo: EventRepository,
    cache: Mutex<LruCache<String, Entry<A>>>,
    /// What the aggregate's `handle` is given (a wallet reads its keyed history there).
    services: A::Services,
}

impl<A: Aggregate> CachedStore<A> {
    pub fn new(repo: EventRepository, capacity: usize, services: A::Services) -> Self {
        Self {
            repo,
            cache: Mutex::new(LruCache::new(capacity)),
            services,
        }
    }

    /// Runs `command` on the aggregate: lets it decide, and commits the events it decided
    /// (none for an idempotent repeat), with `metadata` on each.
    ///
    /// Optimistic where it can be: a remembered aggregate, and the empty aggregate for a
    /// command that `creates` its aggregate, is first decided on as it is (a copy), without
    /// asking the store. Only a decision that appends is kept from that attempt, because the
    /// append's version check proves the state it was made on current. A refusal or a
    /// decision that changes nothing is checked against the store and decided again if the
    /// store held anything newer; a conflict is decided again on the store's state. Either
    /// shows another process appending to the aggregate (a wallet: the API deposits, the
    /// process managers hold), and the aggregate's later commands read the store first, as
    /// an attempt would mostly conflict.
    pub async fn execute(
        &self,
        aggregate_id: &str,
        command: A::Command,
        metadata: HashMap<String, String>,
        creates: bool,
    ) -> Result<(), AggregateError<A::Error>>
    where
        A: Clone,
        A::Command: Clone,
    {
        let remembered = self.take(aggregate_id);
        let trial = match &remembered {
            Some(entry) => (!entry.shared).then(|| entry.clone()),
            None => creates.then(Entry::empty),
        };
        let mut shared = remembered.as_ref().is_some_and(|entry| entry.shared);
        if let Some(trial) = trial {
            let version = trial.version;
            let attempted_once = self
                .attempt(aggregate_id, trial, command.clone(), &metadata)
                .await;
            let attempt = match attempted_once {
                Ok(attempt) => attempt,
                Err(failure) => {
                    if let Some(entry) = remembered {
                        self.keep(aggregate_id.to_owned(), entry);
                    }
                    return Err(failure);
                }
            };
            match attempt {
                Attempt::Committed => {
                    attempted("committed");
                    return Ok(());
                }
                Attempt::Unchanged(outcome) => {
                    let context = self.load_from(aggregate_id, remembered).await?;
                    if context.current_sequence == version {
                        // Nothing newer in the store: the attempt's answer stands.
                        attempted("confirmed");
                        let confirmed = Entry {
                            aggregate: context.aggregate,
                            version: context.current_sequence,
                            shared: false,
                        };
                        self.keep(context.aggregate_id, confirmed);
                        return outcome.map_err(AggregateError::UserError);
                    }
                    attempted("decided-again");
                    return self.decide(context, command, metadata, true).await;
                }
                Attempt::Conflicted => {
                    attempted("decided-again");
                    shared = true;
                }
            }
        }
        let context = self.load_from(aggregate_id, remembered).await?;
        self.decide(context, command, metadata, shared).await
    }

    /// Decides `command` on `entry` as it is and commits what it appends.
    async fn attempt(
        &self,
        aggregate_id: &str,
        entry: Entry<A>,
        command: A::Command,
        metadata: &HashMap<String, String>,
    ) -> Result<Attempt<A>, AggregateError<A::Error>> {
        let mut context = EventStoreAggregateContext {
            aggregate_id: aggregate_id.to_owned(),
            aggregate: entry.aggregate,
            current_sequence: entry.version,
            current_snapshot: None,
        };
        let (outcome, events) = self.handle(&mut context, command).await;
        if outcome.is_err() || events.is_empty() {
            // The attempt ran on a copy: whatever it wrote before refusing is dropped with it.
            return Ok(Attempt::Unchanged(outcome));
        }
        match self.append(events, context, metadata.clone(), false).await {
            Ok(_) => Ok(Attempt::Committed),
            Err(AggregateError::AggregateConflict) => Ok(Attempt::Conflicted),
            Err(other) => Err(other),
        }
    }

    /// Decides `command` on the aggregate as the store has it and commits what it appends.
    /// The state it was decided on stays remembered when the append fails (a conflict, a
    /// database out of reach): it is still a true prefix of the aggregate's history, so the
    /// next command reads only what is newer instead of replaying every event.
    async fn decide(
        &self,
        mut context: EventStoreAggregateContext<A>,
        command: A::Command,
        metadata: HashMap<String, String>,
        shared: bool,
    ) -> Result<(), AggregateError<A::Error>>
    where
        A: Clone,
    {
        let loaded = Entry {
            aggregate: context.aggregate.clone(),
            version: context.current_sequence,
            shared,
        };
        let (handled, events) = self.handle(&mut context, command).await;
        match handled {
            Ok(()) => {
                let id = context.aggregate_id.clone();
                let appended = self.append(events, context, metadata, shared).await;
                if let Err(failure) = appended {
                    let conflicted = matches!(failure, AggregateError::AggregateConflict);
                    self.keep(
                        id,
                        Entry {
                            shared: shared || conflicted,
                            ..loaded
                        },
                    );
                    return Err(failure);
                }
                Ok(())
            }
            Err(refusal) => {
                // Whatever `handle` wrote to the sink before refusing, the state as loaded is
                // still the store's.
                self.keep(context.aggregate_id, loaded);
                Err(AggregateError::UserError(refusal))
            }
        }
    }

    /// Lets the aggregate decide `command`: its answer and the events it wrote (applied to
    /// `context`'s aggregate as they were written).
    async fn handle(
        &self,
        context: &mut EventStoreAggregateContext<A>,
        command: A::Command,
    ) -> (Result<(), A::Error>, Vec<A::Event>) {
        let sink = EventSink::default();
        let outcome = context
            .aggregate
            .handle(command, &self.services, &sink)
            .await;
        (outcome, sink.collect().await)
    }

    /// Commits `events`, decided on `context` (which `handle` has applied them to), and
    /// remembers the aggregate after them.
    async fn append(
        &self,
        events: Vec<A::Event>,
        context: EventStoreAggregateContext<A>,
        metadata: HashMap<String, String>,
        shared: bool,
    ) -> Result<Vec<EventEnvelope<A>>, AggregateError<A::Error>> {
        // `handle` applied the events to the context's aggregate as it wrote them to the sink.
        let EventStoreAggregateContext {
            aggregate_id,
            aggregate,
            current_sequence,
            ..
        } = context;
        let committed: Vec<EventEnvelope<A>> = events
            .into_iter()
            .zip(current_sequence + 1..)
            .map(|(payload, sequence)| EventEnvelope {
                aggregate_id: aggregate_id.clone(),
                sequence,
                payload,
                metadata: metadata.clone(),
            })
            .collect();
        let serialized = committed
            .iter()
            .map(SerializedEvent::try_from)
            .collect::<Result<Vec<_>, _>>()?;
        self.repo.persist::<A>(&serialized, None).await?;
        let version = committed.last().map_or(current_sequence, |e| e.sequence);
        let entry = Entry {
            aggregate,
            version,
            shared,
        };
        self.keep(aggregate_id, entry);
        Ok(committed)
    }

    /// Takes the aggregate out of the cache while its command runs.
    fn take(&self, aggregate_id: &str) -> Option<Entry<A>> {
        let remembered = self.cache().remove(aggregate_id);
        let cache = if remembered.is_some() { "hit" } else { "miss" };
        metrics::counter!("bountyline_aggregate_loads_total", "aggregate" => A::TYPE, "cache" => cache)
            .increment(1);
        remembered
    }

    /// The aggregate as the store has it: `base` (from the start without one) with the events
    /// stored after it applied.
    async fn load_from(
        &self,
        aggregate_id: &str,
        base: Option<Entry<A>>,
    ) -> Result<EventStoreAggregateContext<A>, AggregateError<A::Error>> {
        let Entry {
            mut aggregate,
            mut version,
            ..
        } = base.unwrap_or_else(Entry::empty);
        let newer = self
            .repo
            .get_last_events::<A>(aggregate_id, version)
            .await?;
        for envelope in envelopes::<A>(newer)? {
            version = envelope.sequence;
            aggregate.apply(envelope.payload);
        }
        Ok(EventStoreAggregateContext {
            aggregate_id: aggregate_id.to_owned(),
            aggregate,
            current_sequence: version,
            current_snapshot: None,
        })
    }

    /// Puts `entry` back into the cache.
    fn keep(&self, aggregate_id: String, entry: Entry<A>) {
        self.cache().insert(aggregate_id, entry);
    }

    /// The cache, also after a command panicked while holding it: entries are put in whole,
    /// so what a panic leaves is still true of the store, and a load checks it anyway.
    fn cache(&self) -> std::sync::MutexGuard<'_, LruCache<String, Entry<A>>> {
        self.cache.lock().unwrap_or_else(|poisoned| {
            self.cache.clear_poison();
            poisoned.into_inner()
        })
    }
}

/// The stored events as the aggregate's events, each upcast first if it was stored at an
/// older version of its type ([`bountyline_domain::upcast`]).
fn envelopes<A: Aggregate>(
    events: Vec<SerializedEvent>,
) -> Result<Vec<EventEnvelope<A>>, AggregateError<A::Error>> {
    events
        .into_iter()
        .map(|mut event| {
            let current = upcast(&event.event_type, &event.event_version, &event.payload)
                .map_err(|e| PersistenceError::DeserializationError(Box::new(e)))?;
            if let Cow::Owned(payload) = current {
                event.payload = payload;
                event.event_version = current_version(&event.event_type).to_string();
            }
            EventEnvelope::try_from(event)
        })
        .map(|envelope| envelope.map_err(AggregateError::from))
        .collect()
}

impl<A: Aggregate> EventStore<A> for CachedStore<A> {
    type AC = EventStoreAggregateContext<A>;

    async fn load_events(
        &self,
        aggregate_id: &str,
    ) -> Result<Vec<EventEnvelope<A>>, AggregateError<A::Error>> {
        envelopes(self.repo.get_events::<A>(aggregate_id).await?)
    }

    async fn load_aggregate(
        &self,
        aggregate_id: &str,
    ) -> Result<Self::AC, AggregateError<A::Error>> {
        let remembered = self.take(aggregate_id);
        self.load_from(aggregate_id, remembered).await
    }

    async fn commit(
        &self,
        events: Vec<A::Event>,
        context: Self::AC,
        metadata: HashMap<String, String>,
    ) -> Result<Vec<EventEnvelope<A>>, AggregateError<A::Error>> {
        self.append(events, context, metadata, false).await
    }
}
