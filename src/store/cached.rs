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
//! event, so the state is the one loaded). A command that conflicts or whose append fails
//! leaves no entry behind, and the next load replays from the start.
//!
//! [`CachedStore::execute`] runs a command as cqrs-es's `CqrsFramework` does (load, handle,
//! commit), except that a refusal keeps the entry: under a held load a refused command on a
//! wallet of thousands of events otherwise cost the next command on it a full replay.

use cqrs_es::event_sink::EventSink;
use cqrs_es::persist::{EventStoreAggregateContext, PersistedEventRepository, SerializedEvent};
use cqrs_es::{Aggregate, AggregateError, EventEnvelope, EventStore};
use hashlink::LruCache;
use std::collections::HashMap;
use std::sync::Mutex;

use super::EventRepository;

/// Aggregates of one type this process keeps, the most recently used.
pub const CACHED_AGGREGATES: usize = 1024;

/// An aggregate's state after its event `version`.
struct Entry<A> {
    aggregate: A,
    version: usize,
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

    /// Runs `command` on the aggregate: loads it, lets it decide, and commits the events it
    /// decided (none for an idempotent repeat), with `metadata` on each.
    pub async fn execute(
        &self,
        aggregate_id: &str,
        command: A::Command,
        metadata: HashMap<String, String>,
    ) -> Result<(), AggregateError<A::Error>> {
        let mut context = self.load_aggregate(aggregate_id).await?;
        let sink = EventSink::default();
        let handled = context
            .aggregate
            .handle(command, &self.services, &sink)
            .await;
        let events = sink.collect().await;
        match handled {
            Ok(()) => self.commit(events, context, metadata).await.map(drop),
            Err(refusal) => {
                // The sink is the only way `handle` changes the aggregate: a refusal that
                // wrote nothing left the state as loaded.
                if events.is_empty() {
                    self.remember(context);
                }
                Err(AggregateError::UserError(refusal))
            }
        }
    }

    fn remember(&self, context: EventStoreAggregateContext<A>) {
        let entry = Entry {
            aggregate: context.aggregate,
            version: context.current_sequence,
        };
        self.cache().insert(context.aggregate_id, entry);
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

fn envelopes<A: Aggregate>(
    events: Vec<SerializedEvent>,
) -> Result<Vec<EventEnvelope<A>>, AggregateError<A::Error>> {
    events
        .into_iter()
        .map(|event| EventEnvelope::try_from(event).map_err(AggregateError::from))
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
        let remembered = self.cache().remove(aggregate_id);
        let cache = if remembered.is_some() { "hit" } else { "miss" };
        metrics::counter!("bountyline_aggregate_loads_total", "aggregate" => A::TYPE, "cache" => cache)
            .increment(1);
        let Entry {
            mut aggregate,
            mut version,
        } = remembered.unwrap_or_else(|| Entry {
            aggregate: A::default(),
            version: 0,
        });
        // From the start on a miss: every event is after version 0.
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

    async fn commit(
        &self,
        events: Vec<A::Event>,
        context: Self::AC,
        metadata: HashMap<String, String>,
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
        self.cache()
            .insert(aggregate_id, Entry { aggregate, version });
        Ok(committed)
    }
}
