//! The committer: one task per process that turns the appends of concurrent commands into
//! group commits. Commands queue their events and wait for an answer; the committer takes
//! everything queued (up to a cap) into one transaction, so that one fsync acknowledges the
//! whole group. While it commits, the next group gathers in the queue.

use super::group::{self, Verdict};
use super::Receipt;
use bountyline_projections::signal::Signal;
use cqrs_es::persist::{PersistenceError, SerializedEvent};
use sqlx::postgres::PgConnectOptions;
use sqlx::{ConnectOptions, PgConnection, PgPool};
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::{mpsc, oneshot};

/// Commands one transaction takes at most: bounds the statement and the time the append lock
/// is held for one group.
const MAX_GROUP: usize = 256;
/// Appends waiting for the committer; beyond it, commands wait to queue.
const QUEUE: usize = 4096;

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
        tokio::spawn(run(pool.connect_options(), appends, appended));
        Self { queue }
    }

    /// Appends one command's events (at least one, all of one aggregate, in sequence order):
    /// their receipt once they are committed, `OptimisticLockError` when the aggregate moved on
    /// first.
    pub(super) async fn append(
        &self,
        events: Vec<SerializedEvent>,
    ) -> Result<Receipt, PersistenceError> {
        let stopped = || PersistenceError::UnknownError("the event committer has stopped".into());
        let (answer, answered) = oneshot::channel();
        let queued = Instant::now();
        self.queue
            .send(Append { events, answer })
            .await
            .map_err(|_| stopped())?;
        let outcome = answered.await.map_err(|_| stopped())?;
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
        None => match options.connect().await {
            Ok(connection) => conn.insert(connection),
            Err(error) => {
                fail(appends, AppendError(Arc::new(error)));
                return None;
            }
        },
    };
    let started = Instant::now();
    let commands: Vec<&[SerializedEvent]> = appends.iter().map(|a| a.events.as_slice()).collect();
    let result = group::commit(connection, &commands).await;
    metrics::histogram!("bountyline_append_group_commands").record(appends.len() as f64);
    metrics::histogram!("bountyline_append_commit_duration_seconds")
        .record(started.elapsed().as_secs_f64());
    match result {
        Ok(verdicts) => {
            let head = verdicts.iter().filter_map(|verdict| match verdict {
                Verdict::Appended { position } => Some(*position),
                Verdict::Conflict => None,
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
            fail(appends, AppendError(Arc::new(error)));
        }
        // The connection failed (maybe broken): the outcome is unknown, as for any commit
        // whose answer never came, and the next group makes a new connection.
        Err(error) => {
            *conn = None;
            fail(appends, AppendError(Arc::new(error)));
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

/// A group's append failed: every command in the group receives it. Its source is the
/// database's error itself, so that the HTTP edge can still tell a database out of reach (503)
/// from a refusal (500).
#[derive(Debug, Clone)]
pub struct AppendError(Arc<sqlx::Error>);

impl AppendError {
    fn to_persistence(&self) -> PersistenceError {
        if super::connection_broke(&self.0) {
            PersistenceError::ConnectionError(Box::new(self.clone()))
        } else {
            PersistenceError::UnknownError(Box::new(self.clone()))
        }
    }
}

impl std::fmt::Display for AppendError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("appending the events failed")
    }
}

impl std::error::Error for AppendError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&*self.0)
    }
}
