//! The command side: runs a command against its aggregate (a cqrs-es aggregate) over our event
//! store (`crate::store`, which group-commits concurrent commands), records who asked and why
//! in the events' metadata, and answers with the aggregate's new version and the global
//! position of its last event.

mod context;
mod expected;
mod turns;
mod wallet_history;

use crate::timing;
pub use context::{CommandContext, DeliveryClaim};
pub use expected::Expected;
use expected::{GuardError, Guarded, Versioned};
use turns::Turns;
use wallet_history::StoreWalletHistory;

use bountyline_domain::bounty::{Bounty, BountyCommand, BountyError};
use bountyline_domain::inbox::{Inbox, InboxCommand, InboxError};
use bountyline_domain::payment::{Payment, PaymentCommand, PaymentError};
use bountyline_domain::person::{Person, PersonCommand, PersonError};
use bountyline_domain::task::{Task, TaskCommand, TaskError};
use bountyline_domain::wallet::{Wallet, WalletCommand, WalletError, WalletServices};
use bountyline_projections::signal::Signal;
use cqrs_es::{Aggregate, AggregateError};
use serde::Serialize;
use sqlx::PgPool;
use std::sync::Arc;
use std::time::Instant;
use uuid::Uuid;

use crate::defects::{self, Defect};
use crate::store::{
    self, AppendError, CachedStore, EventRepository, Receipt, Recorded, RepeatedKey,
};

/// What a successful command answers: the aggregate, its version, the position of its last
/// event, whether it was created by this command, and whether it changed anything (a repeat
/// of a command already carried out appends nothing).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Committed {
    /// The aggregate's id.
    #[schema(example = "0192f3a4-5b6c-7d8e-9f01-23456789abcd")]
    pub id: String,
    /// The aggregate's version after the command.
    #[schema(example = 3)]
    pub version: i64,
    /// The global position of the command's last event: send it as `X-Min-Position` to read
    /// your write.
    #[schema(example = 42)]
    pub position: i64,
    #[serde(skip)]
    pub created: bool,
    #[serde(skip)]
    pub appended: bool,
    /// Answered from the record of an earlier try under the same Idempotency-Key: this try
    /// appended nothing itself.
    #[serde(skip)]
    pub replayed: bool,
}

impl Committed {
    /// The answer of a command stored under an Idempotency-Key, as the store recorded it.
    fn recorded(r: Recorded) -> Self {
        Self {
            id: r.aggregate_id,
            version: r.last_sequence,
            position: r.position,
            created: r.first_sequence == 1,
            appended: true,
            replayed: true,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CommandError<E: std::error::Error> {
    #[error(transparent)]
    Domain(E),
    #[error("another command changed this {0} first; reload and retry")]
    Conflict(&'static str),
    /// The aggregate is not at the version the command expected (`If-Match`): nothing was
    /// decided. `refusal` is what the aggregate would have answered anyway, if it refused.
    #[error("the {aggregate} is at version {current}, not the one expected")]
    Moved {
        aggregate: &'static str,
        current: i64,
        refusal: Option<E>,
    },
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

#[derive(Clone)]
pub struct CommandBus {
    pool: PgPool,
    tasks: Arc<CachedStore<Versioned<Task>>>,
    wallets: Arc<CachedStore<Versioned<Wallet>>>,
    payments: Arc<CachedStore<Versioned<Payment>>>,
    bounties: Arc<CachedStore<Versioned<Bounty>>>,
    inboxes: Arc<CachedStore<Versioned<Inbox>>>,
    people: Arc<CachedStore<Versioned<Person>>>,
    turns: Arc<Turns>,
    appended: Signal,
}

impl CommandBus {
    /// Must be called within the Tokio runtime: the event store starts its committer.
    pub fn new(pool: PgPool) -> Self {
        let store = EventRepository::new(pool.clone());
        let wallet_history: WalletServices = Arc::new(StoreWalletHistory::new(pool.clone()));
        Self {
            tasks: Arc::new(store.cached(())),
            wallets: Arc::new(store.cached(wallet_history)),
            payments: Arc::new(store.cached(())),
            bounties: Arc::new(store.cached(())),
            inboxes: Arc::new(store.cached(())),
            people: Arc::new(store.cached(())),
            turns: Arc::default(),
            appended: store.appended().clone(),
            pool,
        }
    }

    /// Raised with the store's head each time this process commits events.
    pub fn appended(&self) -> &Signal {
        &self.appended
    }

    /// What the command sent under `ctx`'s actor and Idempotency-Key stored, if one did: the
    /// answer a retry gets when its first try's outcome was unknown.
    pub async fn recorded(&self, ctx: &CommandContext) -> Result<Option<Committed>, sqlx::Error> {
        let Some(key) = &ctx.idempotency_key else {
            return Ok(None);
        };
        let recorded = store::recorded(&self.pool, ctx.actor.user_id, key).await?;
        Ok(recorded.map(Committed::recorded))
    }

    pub async fn task(
        &self,
        id: Uuid,
        command: TaskCommand,
        ctx: &CommandContext,
    ) -> Result<Committed, CommandError<TaskError>> {
        let name = command.name();
        run(self, &self.tasks, id, name, command, ctx).await
    }

    /// A wallet is named by its owner's user id.
    pub async fn wallet(
        &self,
        owner: Uuid,
        command: WalletCommand,
        ctx: &CommandContext,
    ) -> Result<Committed, CommandError<WalletError>> {
        let name = command.name();
        run(self, &self.wallets, owner, name, command, ctx)
            .await
            .map_err(|e| history_as_fault(e, name))
    }

    pub async fn payment(
        &self,
        id: Uuid,
        command: PaymentCommand,
        ctx: &CommandContext,
    ) -> Result<Committed, CommandError<PaymentError>> {
        let name = command.name();
        run(self, &self.payments, id, name, command, ctx).await
    }

    pub async fn bounty(
        &self,
        id: Uuid,
        command: BountyCommand,
        ctx: &CommandContext,
    ) -> Result<Committed, CommandError<BountyError>> {
        let name = command.name();
        run(self, &self.bounties, id, name, command, ctx).await
    }

    /// An inbox is named by its owner's user id.
    pub async fn inbox(
        &self,
        owner: Uuid,
        command: InboxCommand,
        ctx: &CommandContext,
    ) -> Result<Committed, CommandError<InboxError>> {
        let name = command.name();
        run(self, &self.inboxes, owner, name, command, ctx).await
    }

    /// A person is named by their user id.
    pub async fn person(
        &self,
        person: Uuid,
        command: PersonCommand,
        ctx: &CommandContext,
    ) -> Result<Committed, CommandError<PersonError>> {
        let name = command.name();
        run(self, &self.people, person, name, command, ctx).await
    }
}

/// A wallet whose history could not be read decided nothing: a fault, with the store's error
/// kept as its cause (a database out of reach is a 503 at the edge), not a refusal.
fn history_as_fault(e: CommandError<WalletError>, name: &'static str) -> CommandError<WalletError> {
    match e {
        CommandError::Domain(WalletError::HistoryUnavailable(cause)) => {
            CommandError::Internal(anyhow::Error::new(cause).context(name))
        }
        other => other,
    }
}

/// A command that lost at the append to another process's command on its aggregate is decided
/// again on the new state, up to `CommandContext::tries_on_conflict` tries in all, before the
/// caller hears 409: the losing try appended nothing, so deciding again is exactly what the
/// caller would do. Each new try waits a little longer, with jitter, so that two processes
/// racing on one aggregate stop meeting. (In one process, commands on one aggregate take turns
/// and do not meet at the append.)
async fn retrying<T, Once, Done, Pause, Paused>(
    tries: u32,
    lost: impl Fn(&T) -> bool,
    mut once: Once,
    pause: Pause,
) -> T
where
    Once: FnMut() -> Done,
    Done: std::future::Future<Output = T>,
    Pause: Fn(u32) -> Paused,
    Paused: std::future::Future<Output = ()>,
{
    let mut tried = 1;
    loop {
        let outcome = once().await;
        if tried >= tries || !lost(&outcome) {
            return outcome;
        }
        pause(tried).await;
        tried += 1;
    }
}

/// The pause before try `tried + 1`: up to 100 ms, growing, with jitter.
async fn pause_after(tried: u32) {
    let millis = (5 * u64::from(tried)).min(80) + rand::random::<u64>() % 20;
    tokio::time::sleep(std::time::Duration::from_millis(millis)).await;
}

/// Commands that create their aggregate. On an aggregate this process does not hold, such a
/// command is first decided on the empty aggregate, without reading the store
/// ([`CachedStore::execute`]); sent to an id that already has events, it conflicts at the
/// append and is decided again on what the store holds.
pub trait Creates {
    fn creates(&self) -> bool {
        false
    }
}

impl Creates for TaskCommand {
    fn creates(&self) -> bool {
        matches!(self, TaskCommand::Create(_))
    }
}

impl Creates for BountyCommand {
    fn creates(&self) -> bool {
        matches!(self, BountyCommand::Post(_))
    }
}

impl Creates for PaymentCommand {
    fn creates(&self) -> bool {
        matches!(self, PaymentCommand::Request { .. })
    }
}

/// A wallet comes into being with its first deposit or credit, on the owner's id, which
/// usually has one already: no command creates a wallet.
impl Creates for WalletCommand {}

/// An inbox is its owner's, on the owner's id: no command creates one as such.
impl Creates for InboxCommand {}

/// A person's stream begins with their erasure, on their user id, which no other command
/// creates: it is decided on the empty person without reading the store first.
impl Creates for PersonCommand {
    fn creates(&self) -> bool {
        matches!(self, PersonCommand::Erase { .. })
    }
}

/// Executes on a task of its own: once started, a command runs to its end even if the client
/// that sent it goes away, so no transaction is ever left half done by a disconnect.
async fn run<A>(
    bus: &CommandBus,
    aggregates: &Arc<CachedStore<Versioned<A>>>,
    id: Uuid,
    name: &'static str,
    command: A::Command,
    ctx: &CommandContext,
) -> Result<Committed, CommandError<A::Error>>
where
    A: Aggregate + Clone + 'static,
    A::Command: Clone + Creates + Send + Sync + 'static,
    A::Error: Send + 'static,
{
    if ctx.resolve {
        // An earlier try under this key may have been stored without its answer arriving:
        // if it was, that is the answer, and nothing runs again.
        if let Some(committed) = bus.recorded(ctx).await.map_err(internal)? {
            return Ok(committed);
        }
    }
    let command_id = Uuid::new_v4();
    let metadata = ctx.metadata(command_id, name);
    let started = Instant::now();
    let keyed = (ctx.actor.user_id, ctx.idempotency_key.clone());
    let (pool, aggregates, turns) = (bus.pool.clone(), aggregates.clone(), bus.turns.clone());
    let tries = ctx.tries_on_conflict;
    let command = Guarded {
        expected: ctx.expected.clone(),
        command,
    };
    // Its own task, so that a request that goes away does not cancel it half way; what it
    // spends in the store is carried back to the request's Server-Timing.
    let handle = tokio::spawn(timing::measured(async move {
        let aggregate_id = id.to_string();
        type Executed<E> = (Result<(), AggregateError<GuardError<E>>>, Option<Receipt>);
        let lost = |(executed, _): &Executed<A::Error>| {
            let lost = matches!(executed, Err(AggregateError::AggregateConflict));
            if lost {
                metrics::counter!("bountyline_command_conflicts_retried_total", "aggregate" => A::TYPE)
                    .increment(1);
            }
            lost
        };
        let once = || {
            let (command, creates) = (command.clone(), command.creates());
            let (aggregates, turns, aggregate_id) = (&aggregates, &turns, &aggregate_id);
            let metadata = metadata.clone();
            async move {
                let turn = turns.take(A::TYPE, id).await;
                let executed = store::with_receipt(aggregates.execute(
                    aggregate_id,
                    command,
                    metadata,
                    creates,
                ))
                .await;
                drop(turn);
                executed
            }
        };
        let (executed, receipt) = retrying(tries, lost, once, pause_after).await;
        if let Err(AggregateError::UnexpectedError(cause)) = &executed {
            if let (true, (actor, Some(key))) = (cause.is::<RepeatedKey>(), &keyed) {
                // Another try under this key was stored first (`command_keys`): its answer.
                let recorded = store::recorded(&pool, *actor, key)
                    .await
                    .map_err(internal)?;
                return recorded.map(Committed::recorded).ok_or_else(|| {
                    CommandError::Internal(anyhow::anyhow!("{name}: a repeated key unrecorded"))
                });
            }
        }
        executed.map_err(|e| match e {
            AggregateError::UserError(GuardError::Refused(e)) => CommandError::Domain(e),
            AggregateError::UserError(GuardError::Moved { current, refusal }) => {
                CommandError::Moved {
                    aggregate: A::TYPE,
                    current,
                    refusal,
                }
            }
            AggregateError::AggregateConflict => CommandError::Conflict(A::TYPE),
            // Kept as the cause (not flattened into text), so that the HTTP edge can tell
            // a database out of reach (503) from a fault of ours (500).
            AggregateError::DatabaseConnectionError(cause)
            | AggregateError::UnexpectedError(cause) => {
                CommandError::Internal(typed_cause(cause).context(name))
            }
            other => CommandError::Internal(anyhow::anyhow!("{name}: {other}")),
        })?;
        committed::<A>(&pool, &aggregate_id, receipt).await
    }));
    let result = match handle.await {
        Ok((result, spent)) => {
            timing::add(spent);
            result
        }
        Err(e) => Err(CommandError::Internal(anyhow::anyhow!("{name} task: {e}"))),
    };
    let outcome = match &result {
        Ok(_) => "ok",
        Err(CommandError::Domain(_)) => "refused",
        Err(CommandError::Conflict(_)) => "conflict",
        Err(CommandError::Moved { .. }) => "precondition-failed",
        Err(CommandError::Internal(_)) => "error",
    };
    metrics::counter!("bountyline_commands_total", "command" => name, "outcome" => outcome)
        .increment(1);
    metrics::histogram!("bountyline_command_duration_seconds", "command" => name)
        .record(started.elapsed().as_secs_f64());
    result
}

fn internal<E: std::error::Error>(e: sqlx::Error) -> CommandError<E> {
    CommandError::Internal(e.into())
}

/// The cause as its own type where the HTTP edge looks into it (a database error, directly or
/// as the source of a group's append error); flattened into text otherwise.
fn typed_cause(cause: Box<dyn std::error::Error + Send + Sync>) -> anyhow::Error {
    match cause.downcast::<sqlx::Error>() {
        Ok(sqlx) => anyhow::Error::new(*sqlx),
        Err(other) => match other.downcast::<AppendError>() {
            Ok(append) => anyhow::Error::new(*append),
            Err(other) => anyhow::anyhow!("{other}"),
        },
    }
}

/// The answer to a command, from the receipt of what it appended. A command that changed
/// nothing (an idempotent repeat) answers the aggregate's current version and the position of
/// its last event.
async fn committed<A: Aggregate>(
    pool: &PgPool,
    aggregate_id: &str,
    receipt: Option<Receipt>,
) -> Result<Committed, CommandError<A::Error>> {
    if let Some(receipt) = receipt {
        metrics::counter!("bountyline_events_appended_total", "aggregate" => A::TYPE)
            .increment((receipt.last - receipt.first + 1) as u64);
        let told = match defects::on(Defect::AnswerAnotherPosition) {
            true => receipt.position - 1,
            false => receipt.position,
        };
        return Ok(Committed {
            id: aggregate_id.to_owned(),
            version: receipt.last,
            position: told,
            created: receipt.first == 1,
            appended: true,
            replayed: false,
        });
    }
    // The last event by sequence also has the highest position (positions follow commit
    // order): one index look-up, where max(position) read every event of the aggregate.
    let (version, position): (i64, i64) = sqlx::query_as(
        "SELECT sequence, position FROM events WHERE aggregate_type = $1 AND aggregate_id = $2 \
         ORDER BY sequence DESC LIMIT 1",
    )
    .bind(A::TYPE)
    .bind(aggregate_id)
    .fetch_optional(pool)
    .await
    .map_err(internal)?
    .unwrap_or((0, 0));
    Ok(Committed {
        id: aggregate_id.to_owned(),
        version,
        position,
        created: false,
        appended: false,
        replayed: false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::error::ApiError;
    use bountyline_domain::wallet::HistoryError;

    #[test]
    fn a_wallet_history_out_of_reach_is_a_503_not_a_refusal() {
        let unreachable =
            WalletError::HistoryUnavailable(HistoryError::new(sqlx::Error::PoolTimedOut));
        let answer = ApiError::from(history_as_fault(
            CommandError::Domain(unreachable),
            "Deposit",
        ));
        assert!(matches!(answer, ApiError::Unavailable { .. }), "{answer:?}");

        let broken = WalletError::HistoryUnavailable(HistoryError::new(sqlx::Error::RowNotFound));
        let answer = ApiError::from(history_as_fault(CommandError::Domain(broken), "Deposit"));
        assert!(matches!(answer, ApiError::Internal(_)), "{answer:?}");
    }

    /// A command that keeps losing conflicts is tried again after a pause, up to its context's
    /// tries (a process manager's follow-up failed its whole batch when it gave up after 4,
    /// which stalled the runner under a held load); one that never stops conflicting still
    /// answers the conflict in the end, and any other outcome is not tried again.
    #[tokio::test]
    async fn a_command_losing_conflicts_is_tried_again_and_a_fault_is_not() {
        use std::sync::atomic::{AtomicU32, Ordering};
        const TRIES: u32 = 20;
        let tries = AtomicU32::new(0);
        let lost = |outcome: &Result<(), &str>| *outcome == Err("conflict");
        let conflicting_until = |last: u32| {
            let tries = &tries;
            move || async move {
                if tries.fetch_add(1, Ordering::SeqCst) + 1 < last {
                    Err("conflict")
                } else {
                    Ok(())
                }
            }
        };
        let no_pause = |_| async {};

        assert_eq!(
            retrying(TRIES, lost, conflicting_until(5), no_pause).await,
            Ok(())
        );
        assert_eq!(tries.swap(0, Ordering::SeqCst), 5);

        let forever = conflicting_until(u32::MAX);
        assert!(matches!(
            retrying(TRIES, lost, forever, no_pause).await,
            Err("conflict")
        ));
        assert_eq!(tries.swap(0, Ordering::SeqCst), TRIES);

        let fault = || async {
            tries.fetch_add(1, Ordering::SeqCst);
            Err("down")
        };
        assert_eq!(retrying(TRIES, lost, fault, no_pause).await, Err("down"));
        assert_eq!(tries.load(Ordering::SeqCst), 1);
    }
}
