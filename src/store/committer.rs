//! The committer: one task per process that turns the appends of concurrent commands into
//! group commits. Commands queue their events and wait for an answer; the committer takes
//! everything queued (up to a cap) into one transaction.
//!
//! The transaction commits asynchronously, so that the append lock every append in the cluster
//! takes is released as soon as the group's commit record is written, not after the WAL's
//! flush (docs/adr/0005). The group then goes to the flusher, which answers it once the WAL is
//! flushed past it: acknowledged still means durable, but the committer is already appending
//! the next group, and one flush serves every group committed before it, in this process and
//! in any other.
//!
//! A failed append is one of two things, and the command's caller must be told which
//! ([`Outcome`]): refused before anything was sent or by the database itself (nothing is
//! stored, running it again is safe), or lost after the group was sent (it may have
//! committed: only the store can say). The second is what a connection cut after the commit
//! looks like, and a flush that never answered, and it is never reported as the first.

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
/// Groups committed and waiting for their flush; beyond it the committer waits to hand one on.
const IN_FLIGHT: usize = 64;
/// How the committer's connection names itself to Postgres (`pg_stat_activity`).
pub const APPLICATION_NAME: &str = "bountyline-committer";
/// How the flusher's connection names itself to Postgres.
pub const FLUSHER_NAME: &str = "bountyline-flusher";

struct Append {
    events: Vec<SerializedEvent>,
    answer: oneshot::Sender<Result<Receipt, PersistenceError>>,
}

#[derive(Clone)]
pub(super) struct Committer {
    queue: mpsc::Sender<Append>,
}

impl Committer {
    /// Starts the committer and its flusher. Each has a connection of its own, made with the
    /// pool's options, so that neither queues behind the commands it is to answer; the
    /// committer's commits asynchronously. They end when the last handle is dropped.
    /// Each durable group's last position is raised on `appended`.
    pub(super) fn start(pool: &PgPool, appended: Signal) -> Self {
        let (queue, appends) = mpsc::channel(QUEUE);
        let (flushes, committed) = mpsc::channel(IN_FLIGHT);
        let options = |name| {
            (*pool.connect_options())
                .clone()
                .application_name(name)
                .options([("statement_timeout", STATEMENT_TIMEOUT)])
        };
        let committer = options(APPLICATION_NAME).options([("synchronous_commit", "off")]);
        tokio::spawn(run(Arc::new(committer), appends, Flushes(flushes)));
        tokio::spawn(flush(options(FLUSHER_NAME), committed, appended));
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
        // statement, the append lock while another process held it, and the flush.
        metrics::histogram!("bountyline_append_wait_seconds")
            .record(queued.elapsed().as_secs_f64());
        outcome
    }
}

/// A committed group on its way to the flusher, which answers it.
struct Committed {
    appends: Vec<Append>,
    verdicts: Vec<Verdict>,
}

/// The committer's way to the flusher.
struct Flushes(mpsc::Sender<Committed>);

impl Flushes {
    /// Hands a committed group on to be answered once it is durable.
    async fn send(&self, appends: Vec<Append>, verdicts: Vec<Verdict>) {
        if defects::on(Defect::AnswerBeforeFlush) {
            return answer(appends, verdicts);
        }
        if let Err(mpsc::error::SendError(group)) =
            self.0.send(Committed { appends, verdicts }).await
        {
            // The flusher stopped: nothing will say whether the group reached the disk.
            let stopped = AppendError::new(Outcome::Unknown, sqlx::Error::WorkerCrashed);
            fail(group.appends, stopped);
        }
    }
}

async fn run(options: Arc<PgConnectOptions>, mut queue: mpsc::Receiver<Append>, flushes: Flushes) {
    let mut conn = None;
    let mut group = Vec::with_capacity(MAX_GROUP);
    while queue.recv_many(&mut group, MAX_GROUP).await > 0 {
        let group = std::mem::take(&mut group);
        let Some(refused) = commit(&options, &mut conn, group, &flushes).await else {
            continue;
        };
        // The database refused the group, maybe for one command's events alone (a value it
        // cannot store): each is tried on its own, so that only such a command fails.
        for append in refused {
            commit(&options, &mut conn, vec![append], &flushes).await;
        }
    }
}

/// Commits one group and hands it on to the flusher, or answers its commands with the error.
/// A group of several that the database refused before its commit comes back untouched and
/// unanswered, to be retried command by command.
async fn commit(
    options: &PgConnectOptions,
    conn: &mut Option<PgConnection>,
    appends: Vec<Append>,
    flushes: &Flushes,
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
        .unwrap_or_else(|_| Err(timed_out("no answer to the group commit in time")));
    metrics::histogram!("bountyline_append_group_commands").record(appends.len() as f64);
    metrics::histogram!("bountyline_append_commit_duration_seconds")
        .record(started.elapsed().as_secs_f64());
    match result {
        Ok(verdicts) => flushes.send(appends, verdicts).await,
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
            unknown(appends, error, "a group commit's outcome is unknown");
        }
    }
    None
}

/// The flusher: answers committed groups once the WAL is flushed past them. Each round takes
/// every group committed so far and settles the WAL once for all of them (a statement sent
/// after their commits returned, so flushed past them); while it waits, the next groups gather.
async fn flush(
    options: PgConnectOptions,
    mut committed: mpsc::Receiver<Committed>,
    appended: Signal,
) {
    let mut conn: Option<PgConnection> = None;
    let mut groups = Vec::with_capacity(IN_FLIGHT);
    while committed.recv_many(&mut groups, IN_FLIGHT).await > 0 {
        let started = Instant::now();
        let settled = tokio::time::timeout(ANSWER_TIMEOUT, async {
            let connection = match &mut conn {
                Some(connection) => connection,
                None => conn.insert(options.connect().await?),
            };
            bountyline_projections::flushed::settle(connection).await
        })
        .await
        .unwrap_or_else(|_| Err(timed_out("no answer to the flush in time")));
        metrics::histogram!("bountyline_append_flush_groups").record(groups.len() as f64);
        metrics::histogram!("bountyline_append_flush_duration_seconds")
            .record(started.elapsed().as_secs_f64());
        let groups = std::mem::take(&mut groups);
        match settled {
            Ok(()) => {
                let head = groups
                    .iter()
                    .flat_map(|group| &group.verdicts)
                    .filter_map(|verdict| match verdict {
                        Verdict::Appended { position } => Some(*position),
                        Verdict::Conflict | Verdict::Repeat => None,
                    })
                    .max();
                for group in groups {
                    answer(group.appends, group.verdicts);
                }
                if let Some(head) = head {
                    appended.raise(head);
                }
            }
            // Committed, and maybe lost with the WAL's unflushed end if Postgres went down:
            // only the store can say. The next round makes a new connection.
            Err(error) => {
                conn = None;
                let appends = groups.into_iter().flat_map(|group| group.appends).collect();
                unknown(appends, error, "a committed group's flush is unknown");
            }
        }
    }
}

fn timed_out(what: &'static str) -> sqlx::Error {
    sqlx::Error::Io(std::io::Error::new(std::io::ErrorKind::TimedOut, what))
}

/// Answers every command of a group whose outcome is unknown.
fn unknown(appends: Vec<Append>, error: sqlx::Error, what: &'static str) {
    metrics::counter!("bountyline_append_outcome_unknown_total").increment(appends.len() as u64);
    tracing::warn!(%error, commands = appends.len(), "{what}");
    let outcome = match defects::on(Defect::ForgetUnknownOutcomes) {
        true => Outcome::NotApplied,
        false => Outcome::Unknown,
    };
    fail(appends, AppendError::new(outcome, error));
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
