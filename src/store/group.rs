//! One group commit: the appends of many commands in one transaction, each command's events
//! all or nothing, optimistic concurrency exact per aggregate.
//!
//! The transaction takes the append lock first (the one every insert into `events` takes, see
//! migrations/0001), so that no other transaction, in this process or any other, can append
//! while it decides. Under the lock the stored version of every aggregate in the group is
//! exact; a command wins when its first event follows that version (counting the winners
//! before it in the group), and loses with a conflict otherwise. The winners' events go in as
//! one multi-row insert in arrival order, which the position and hash-chain triggers process
//! row by row, so positions stay commit-ordered and each stream's chain unbroken.

use cqrs_es::persist::SerializedEvent;
use sqlx::{Connection, PgConnection};
use std::collections::HashMap;

/// Opens the transaction holding the append lock, in one round trip. The key must be the one
/// `events_assign_position()` takes (migrations/0001_event_store.sql, 0x626c6576 = 'blev').
const BEGIN_LOCKED: &str = "BEGIN; SELECT pg_advisory_xact_lock(1651271030)";

const STORED_VERSIONS: &str = "\
SELECT coalesce((SELECT max(e.sequence) FROM events e \
                  WHERE e.aggregate_type = s.aggregate_type AND e.aggregate_id = s.aggregate_id), 0) \
  FROM unnest($1::text[], $2::text[]) WITH ORDINALITY AS s(aggregate_type, aggregate_id, n) \
 ORDER BY s.n";

const INSERT_EVENTS: &str = "\
INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata) \
SELECT aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata \
  FROM unnest($1::text[], $2::text[], $3::bigint[], $4::text[], $5::text[], $6::jsonb[], $7::jsonb[]) \
       WITH ORDINALITY AS e(aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata, n) \
 ORDER BY e.n \
RETURNING aggregate_type, aggregate_id, sequence, position";

/// What became of one command's append.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Verdict {
    /// Its events are in the group's transaction, the last one at `position`.
    Appended { position: i64 },
    /// Its aggregate had moved past the version the command was decided on.
    Conflict,
}

/// Whether a command's events follow its aggregate's version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Decision {
    Wins,
    Conflicts,
}

/// How a group failed.
#[derive(Debug)]
pub(super) enum Failure {
    /// Before the commit was sent: nothing of the group is stored.
    Refused(sqlx::Error),
    /// The commit itself failed: the outcome is unknown, as for any failed commit. The
    /// conflicts among the verdicts hold whatever the commit did.
    Commit {
        error: sqlx::Error,
        verdicts: Vec<Verdict>,
    },
}

/// Appends `commands` (each one command's events, in order) in one transaction and commits it.
/// The verdicts are in the order of `commands`.
pub(super) async fn commit(
    conn: &mut PgConnection,
    commands: &[&[SerializedEvent]],
) -> Result<Vec<Verdict>, Failure> {
    let refused = Failure::Refused;
    let mut tx = conn.begin_with(BEGIN_LOCKED).await.map_err(refused)?;

    let streams = streams_of(commands);
    let stored: Vec<i64> = sqlx::query_scalar(STORED_VERSIONS)
        .bind(streams.iter().map(|s| s.0).collect::<Vec<_>>())
        .bind(streams.iter().map(|s| s.1).collect::<Vec<_>>())
        .fetch_all(&mut *tx)
        .await
        .map_err(refused)?;
    let versions = streams.into_iter().zip(stored).collect();
    let decisions = decide(commands, versions);

    let winners: Vec<&SerializedEvent> = commands
        .iter()
        .zip(&decisions)
        .filter(|(_, d)| **d == Decision::Wins)
        .flat_map(|(events, _)| events.iter())
        .collect();
    let mut positions = if winners.is_empty() {
        Vec::new()
    } else {
        insert(&mut tx, &winners).await.map_err(refused)?
    }
    .into_iter();
    // Each winner's events took the next positions, in order: its last is its position.
    // (`persist` never queues a command without events.)
    let verdicts = commands
        .iter()
        .zip(decisions)
        .map(|(events, decision)| match decision {
            Decision::Conflicts => Verdict::Conflict,
            Decision::Wins => Verdict::Appended {
                position: positions.by_ref().take(events.len()).last().unwrap_or(0),
            },
        })
        .collect();
    match tx.commit().await {
        Ok(()) => Ok(verdicts),
        Err(error) => Err(Failure::Commit { error, verdicts }),
    }
}

/// Inserts the events in order; returns their positions, in the same order.
async fn insert(
    conn: &mut PgConnection,
    events: &[&SerializedEvent],
) -> Result<Vec<i64>, sqlx::Error> {
    let rows: Vec<(String, String, i64, i64)> = sqlx::query_as(INSERT_EVENTS)
        .bind(
            events
                .iter()
                .map(|e| e.aggregate_type.as_str())
                .collect::<Vec<_>>(),
        )
        .bind(
            events
                .iter()
                .map(|e| e.aggregate_id.as_str())
                .collect::<Vec<_>>(),
        )
        .bind(events.iter().map(|e| e.sequence as i64).collect::<Vec<_>>())
        .bind(
            events
                .iter()
                .map(|e| e.event_type.as_str())
                .collect::<Vec<_>>(),
        )
        .bind(
            events
                .iter()
                .map(|e| e.event_version.as_str())
                .collect::<Vec<_>>(),
        )
        .bind(events.iter().map(|e| &e.payload).collect::<Vec<_>>())
        .bind(events.iter().map(|e| &e.metadata).collect::<Vec<_>>())
        .fetch_all(conn)
        .await?;
    // Postgres returns the rows in the order it inserted them; checked, since the positions
    // are matched to the commands by that order.
    let in_order = rows.len() == events.len()
        && rows.iter().zip(events).all(|(row, e)| {
            (row.0.as_str(), row.1.as_str(), row.2)
                == (
                    e.aggregate_type.as_str(),
                    e.aggregate_id.as_str(),
                    e.sequence as i64,
                )
        });
    if !in_order {
        return Err(sqlx::Error::Protocol(
            "the inserted events came back out of order".into(),
        ));
    }
    Ok(rows.into_iter().map(|row| row.3).collect())
}

/// The distinct (aggregate type, aggregate id) streams the commands append to.
fn streams_of<'a>(commands: &[&'a [SerializedEvent]]) -> Vec<(&'a str, &'a str)> {
    let mut streams: Vec<(&str, &str)> = commands
        .iter()
        .filter_map(|events| events.first())
        .map(|e| (e.aggregate_type.as_str(), e.aggregate_id.as_str()))
        .collect();
    streams.sort_unstable();
    streams.dedup();
    streams
}

/// Decides each command in arrival order against its stream's version: the stored one, moved
/// on by the winners before it in the group.
fn decide<'a>(
    commands: &[&'a [SerializedEvent]],
    mut versions: HashMap<(&'a str, &'a str), i64>,
) -> Vec<Decision> {
    commands
        .iter()
        .map(|events| {
            let (Some(first), Some(last)) = (events.first(), events.last()) else {
                return Decision::Wins;
            };
            let stream = (first.aggregate_type.as_str(), first.aggregate_id.as_str());
            let version = versions.entry(stream).or_insert(0);
            if first.sequence as i64 == *version + 1 {
                *version = last.sequence as i64;
                Decision::Wins
            } else {
                Decision::Conflicts
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn events(id: &str, sequences: std::ops::RangeInclusive<usize>) -> Vec<SerializedEvent> {
        sequences
            .map(|sequence| {
                SerializedEvent::new(
                    id.to_owned(),
                    sequence,
                    "Task".to_owned(),
                    "TaskCreated".to_owned(),
                    "1".to_owned(),
                    json!({}),
                    json!({}),
                )
            })
            .collect()
    }

    #[test]
    fn the_first_command_at_a_version_wins_and_the_rest_conflict() {
        let (a, b, c) = (
            events("t1", 3..=3),
            events("t1", 3..=4),
            events("t1", 4..=4),
        );
        let versions = HashMap::from([(("Task", "t1"), 2)]);
        let verdicts = decide(&[&a, &b, &c], versions);
        // a takes version 3; b was decided on 2 too; c was decided on a's 3 and follows it.
        assert_eq!(
            verdicts,
            [Decision::Wins, Decision::Conflicts, Decision::Wins]
        );
    }

    #[test]
    fn commands_on_different_aggregates_do_not_interfere() {
        let (a, b) = (events("t1", 1..=2), events("t2", 5..=5));
        let versions = HashMap::from([(("Task", "t1"), 0), (("Task", "t2"), 3)]);
        assert_eq!(
            decide(&[&a, &b], versions),
            [Decision::Wins, Decision::Conflicts]
        );
    }

    #[test]
    fn each_stream_is_looked_up_once() {
        let (a, b, c) = (
            events("t2", 1..=1),
            events("t1", 1..=1),
            events("t2", 2..=2),
        );
        assert_eq!(streams_of(&[&a, &b, &c]), [("Task", "t1"), ("Task", "t2")]);
    }
}
