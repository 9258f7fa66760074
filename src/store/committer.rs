//! The committer: one task per process that turns the appends of concurrent commands into
//! group commits. Commands queue their events and wait for an answer; the committer takes
//! everything queued (up to a cap) into one transaction, so that one fsync acknowledges the
//! whole group. While it commits, the next group gathers in the queue.
//!
//! A failed append is one of two things, and the command's caller must be told which
//! ([`Outcome`]): refused before anything was sent or by the database itself (nothing is
//! stored, running it again is safe), or lost after the group was sent (it may have
//! committed: only the store can say). The second is what a connection cut after the commit
//! looks like, and it is never reported as the first.

use super::group::{self, Verdict};
use super::Receipt;
use crate::defects::{self, Defect};
use bountyline_projections::signal::Signal;
use cqrs_es::persist::{PersistenceError, SerializedEvent};
use sqlx::postgres::PgConnectOptions;
use sqlx::{ConnectOptions, PgConnection, PgPool};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot};

/// Commands one transaction takes at most: bounds the statement and the time the append lock
/// is held for one group.
const MAX_GROUP: usize = 256;
/// Appends waiting for the committer; beyond it, commands wait to queue.
const QUEUE: usize = 4096;
/// The longest a group's statement may run in the database, its wait for the append lock
/// included: past it Postgres cancels it (nothing stored, the group's commands fail).
const STATEMENT_TIMEOUT: &str = "10s";
/// The longest the committer waits for a group's answer. Past it the connection is given up
/// (a silent partition or a half-open connection would otherwise stall every append of the
/// process) and the group's outcome is unknown.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(15);
/// How the committer's connection names itself to Postgres (`pg_stat_activity`).
pub const APPLICATION_NAME: &str = "bountyline-committer";

struct Append {
    events: Vec<SerializedEvent>,
    answer: oneshot::Sender<Result<Receipt, PersistenceError>>,
}

#[derive(Clone)]
pub(super) struct Committer {
    queue: mpsc::Sender<Append>,
}

impl Committer {
    /// Starts the committer. It appends on a connection of its own, made with the pool's
    /// options, so that it never queues behind the commands it is to answer; it ends when the
    /// last handle is dropped.
    /// Each committed group's last position is raised on `appended`.
    pub(super) fn start(pool: &PgPool, appended: Signal) -> Self {
        let (queue, appends) = mpsc::channel(QUEUE);
        let options = (*pool.connect_options())
            .clone()
            .application_name(APPLICATION_NAME)
            .options([("statement_timeout", STATEMENT_TIMEOUT)]);
        tokio::spawn(run(Arc::new(options), appends, appended));
        Self { queue }
    }

    /// Appends one command's events (at least one, all of one aggregate, in sequence order):
    /// their receipt once they are committed, `OptimisticLockError` when the aggregate moved on
    /// first.
    pub(super) async fn append(
        &self,
        events: Vec<SerializedEvent>,
    ) -> Result<Receipt, PersistenceError> {
        // Stopped before it took the command, nothing was sent; stopped after, the command may
        // have been in a group in flight.
        let stopped = |outcome| AppendError::new(outcome, sqlx::Error::WorkerCrashed);
        let (answer, answered) = oneshot::channel();
        let queued = Instant::now();
        self.queue
            .send(Append { events, answer })
            .await
            .map_err(|_| stopped(Outcome::NotApplied).to_persistence())?;
        let outcome = answered
            .await
            .map_err(|_| stopped(Outcome::Unknown).to_persistence())?;
        // What the command waited for its append: the group before its own, its own group's
        // statement and commit, and the append lock while another process held it.
        metrics::histogram!("bountyline_append_wait_seconds")
            .record(queued.elapsed().as_secs_f64());
        outcome
    }
}

async fn run(options: Arc<PgConnectOptions>, mut queue: mpsc::Receiver<Append>, appended: Signal) {
    let mut conn = None;
    let mut group = Vec::with_capacity(MAX_GROUP);
    while queue.recv_many(&mut group, MAX_GROUP).await > 0 {
        let group = std::mem::take(&mut group);
        let Some(refused) = commit(&options, &mut conn, group, &appended).await else {
            continue;
        };
        // The database refused the group, maybe for one command's events alone (a value it
        // cannot store): each is tried on its own, so that only such a command fails.
        for append in refused {
            commit(&options, &mut conn, vec![append], &appended).await;
        }
    }
}

/// Commits one group and answers its commands. A group of several that the database refused
/// before its commit comes back untouched and unanswered, to be retried command by command.
async fn commit(
    options: &PgConnectOptions,
    conn: &mut Option<PgConnection>,
    appends: Vec<Append>,
    appended: &Signal,
) -> Option<Vec<Append>> {
    let connection = match conn {
        Some(connection) => connection,
        None => match tokio::time::timeout(ANSWER_TIMEOUT, options.connect())
            .await
            .unwrap_or_else(|_| Err(sqlx::Error::PoolTimedOut))
        {
            Ok(connection) => conn.insert(connection),
            // Nothing was sent.
            Err(error) => {
                fail(appends, AppendError::new(Outcome::NotApplied, error));
                return None;
            }
        },
    };
    let started = Instant::now();
    let commands: Vec<&[SerializedEvent]> = appends.iter().map(|a| a.events.as_slice()).collect();
    let result = tokio::time::timeout(ANSWER_TIMEOUT, group::commit(connection, &commands))
        .await
        .unwrap_or_else(|_| {
            Err(sqlx::Error::Io(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "no answer to the group commit in time",
            )))
        });
    metrics::histogram!("bountyline_append_group_commands").record(appends.len() as f64);
    metrics::histogram!("bountyline_append_commit_duration_seconds")
        .record(started.elapsed().as_secs_f64());
    match result {
        Ok(verdicts) => {
            let head = verdicts.iter().filter_map(|verdict| match verdict {
                Verdict::Appended { position } => Some(*position),
                Verdict::Conflict | Verdict::Repeat => None,
            });
            if let Some(head) = head.max() {
                appended.raise(head);
            }
            answer(appends, verdicts);
        }
        // The database refused the statement: nothing of the group is stored.
        Err(error @ sqlx::Error::Database(_)) => {
            if appends.len() > 1 {
                return Some(appends);
            }
            fail(appends, AppendError::new(Outcome::NotApplied, error));
        }
        // The connection failed or went quiet after the group was sent, or the answer made no
        // sense: the group may have committed. The next group makes a new connection.
        Err(error) => {
            *conn = None;
            metrics::counter!("bountyline_append_outcome_unknown_total")
                .increment(appends.len() as u64);
            tracing::warn!(%error, commands = appends.len(), "a group commit's outcome is unknown");
            let outcome = match defects::on(Defect::ForgetUnknownOutcomes) {
                true => Outcome::NotApplied,
                false => Outcome::Unknown,
            };
            fail(appends, AppendError::new(outcome, error));
        }
    }
    None
}

/// Answers each command by its verdict. A command that stopped waiting is no longer
/// interested.
fn answer(appends: Vec<Append>, verdicts: Vec<Verdict>) {
    for (append, verdict) in appends.into_iter().zip(verdicts) {
        let outcome = match verdict {
            Verdict::Conflict => Err(PersistenceError::OptimisticLockError),
            Verdict::Repeat => Err(PersistenceError::UnknownError(Box::new(RepeatedKey))),
            Verdict::Appended { position } => Ok(Receipt::of(&append.events, position)),
        };
        let _ = append.answer.send(outcome);
    }
}

/// Answers every command with the group's error.
fn fail(appends: Vec<Append>, error: AppendError) {
    for append in appends {
        let _ = append.answer.send(Err(error.to_persistence()));
    }
}

/// Whether a failed append may have stored anything.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Refused before anything was sent, or by the database itself: nothing is stored, and
    /// the command may simply run again.
    NotApplied,
    /// Lost after the group was sent (a connection cut, no answer in time): the group may have
    /// committed, and only the store can say whether it did.
    Unknown,
}

/// A group's append failed: every command in the group receives it. Its source is the
/// database's error itself, so that the HTTP edge can still tell a database out of reach (503)
/// from a refusal (500), and its [`Outcome`] says whether anything may have been stored.
#[derive(Debug, Clone)]
pub struct AppendError {
    outcome: Outcome,
    cause: Arc<sqlx::Error>,
}

impl AppendError {
    fn new(outcome: Outcome, cause: sqlx::Error) -> Self {
        Self {
            outcome,
            cause: Arc::new(cause),
        }
    }

    pub fn outcome(&self) -> Outcome {
        self.outcome
    }

    fn to_persistence(&self) -> PersistenceError {
        if self.outcome == Outcome::NotApplied && super::connection_broke(&self.cause) {
            PersistenceError::ConnectionError(Box::new(self.clone()))
        } else {
            PersistenceError::UnknownError(Box::new(self.clone()))
        }
    }
}

impl std::fmt::Display for AppendError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.outcome {
            Outcome::NotApplied => f.write_str("appending the events failed"),
            Outcome::Unknown => f.write_str("the outcome of appending the events is unknown"),
        }
    }
}

impl std::error::Error for AppendError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&*self.cause)
    }
}

/// A command under an actor's Idempotency-Key that is already stored: the command appended
/// nothing, and its answer is the stored one's (`store::recorded`).
#[derive(Debug, Clone, Copy)]
pub struct RepeatedKey;

impl std::fmt::Display for RepeatedKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a command with this Idempotency-Key is already stored")
    }
}

impl std::error::Error for RepeatedKey {}
