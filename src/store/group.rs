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
//!
//! A command that carries out a payment provider's delivery (its events' metadata names it,
//! see `commands::DeliveryClaim`) also claims the delivery's reference here, in the same
//! transaction: a reference is one delivery's for good, and claiming it on its own would cost
//! every deposit a second durable commit. A command whose reference is already claimed with
//! another body, in the table or by a winner before it in the group, loses as a conflict.

use cqrs_es::persist::SerializedEvent;
use serde_json::Value;
use sqlx::{Connection, PgConnection};
use std::collections::HashMap;

use super::delivery_keys;

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

/// The references among $1 already claimed, with the SHA-256 of their delivery's body.
const CLAIMED: &str = "\
SELECT reference, encode(body_hash, 'hex') FROM webhook_deliveries WHERE reference = ANY($1)";

const CLAIM: &str = "\
INSERT INTO webhook_deliveries (reference, body_hash, event) \
SELECT reference, decode(body_sha256, 'hex'), event \
  FROM unnest($1::text[], $2::text[], $3::text[]) AS c(reference, body_sha256, event) \
ON CONFLICT (reference) DO NOTHING";

/// The delivery a command carries out, as its first event's metadata names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Claim<'a> {
    reference: &'a str,
    /// Lowercase hex, as `encode(..., 'hex')` gives it.
    body_sha256: &'a str,
    event: &'a str,
}

impl<'a> Claim<'a> {
    fn of(events: &'a [SerializedEvent]) -> Option<Self> {
        let metadata = &events.first()?.metadata;
        let key = |k: &str| metadata.get(k).and_then(Value::as_str);
        Some(Self {
            reference: key(delivery_keys::REFERENCE)?,
            body_sha256: key(delivery_keys::BODY_SHA256)?,
            event: key(delivery_keys::EVENT)?,
        })
    }
}

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
    let claims: Vec<Option<Claim>> = commands.iter().map(|events| Claim::of(events)).collect();
    let claimed = claimed(&mut tx, &claims).await.map_err(refused)?;
    let decisions = decide(commands, &claims, versions, claimed);

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
    let won: Vec<Claim> = claims
        .iter()
        .zip(&decisions)
        .filter(|(_, d)| **d == Decision::Wins)
        .filter_map(|(claim, _)| *claim)
        .collect();
    if !won.is_empty() {
        claim(&mut tx, &won).await.map_err(refused)?;
    }
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

/// Which of the references the commands claim are claimed already, and with what body.
async fn claimed(
    conn: &mut PgConnection,
    claims: &[Option<Claim<'_>>],
) -> Result<HashMap<String, String>, sqlx::Error> {
    let references: Vec<&str> = claims.iter().flatten().map(|c| c.reference).collect();
    if references.is_empty() {
        return Ok(HashMap::new());
    }
    let rows: Vec<(String, String)> = sqlx::query_as(CLAIMED)
        .bind(references)
        .fetch_all(conn)
        .await?;
    Ok(rows.into_iter().collect())
}

/// Claims the winners' references (those already claimed with the same body stay as they are).
async fn claim(conn: &mut PgConnection, claims: &[Claim<'_>]) -> Result<(), sqlx::Error> {
    sqlx::query(CLAIM)
        .bind(claims.iter().map(|c| c.reference).collect::<Vec<_>>())
        .bind(claims.iter().map(|c| c.body_sha256).collect::<Vec<_>>())
        .bind(claims.iter().map(|c| c.event).collect::<Vec<_>>())
        .execute(conn)
        .await?;
    Ok(())
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

/// Decides each command in arrival order against its stream's version and its delivery's
/// claim: the stored ones, moved on by the winners before it in the group. A loser moves
/// neither.
fn decide<'a>(
    commands: &[&'a [SerializedEvent]],
    claims: &[Option<Claim<'_>>],
    mut versions: HashMap<(&'a str, &'a str), i64>,
    mut claimed: HashMap<String, String>,
) -> Vec<Decision> {
    commands
        .iter()
        .zip(claims)
        .map(|(events, claim)| {
            let (Some(first), Some(last)) = (events.first(), events.last()) else {
                return Decision::Wins;
            };
            let stream = (first.aggregate_type.as_str(), first.aggregate_id.as_str());
            let version = versions.entry(stream).or_insert(0);
            let follows = first.sequence as i64 == *version + 1;
            let unclaimed = claim.is_none_or(|c| {
                claimed
                    .get(c.reference)
                    .is_none_or(|body| body == c.body_sha256)
            });
            if !(follows && unclaimed) {
                return Decision::Conflicts;
            }
            *version = last.sequence as i64;
            if let Some(c) = claim {
                claimed.insert(c.reference.to_owned(), c.body_sha256.to_owned());
            }
            Decision::Wins
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
        let verdicts = decide(&[&a, &b, &c], &[None; 3], versions, HashMap::new());
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
            decide(&[&a, &b], &[None; 2], versions, HashMap::new()),
            [Decision::Wins, Decision::Conflicts]
        );
    }

    fn delivery<'a>(reference: &'a str, body_sha256: &'a str) -> Option<Claim<'a>> {
        Some(Claim {
            reference,
            body_sha256,
            event: "deposit.succeeded",
        })
    }

    #[test]
    fn a_reference_claimed_with_another_body_conflicts_and_moves_nothing() {
        // w1 claims r1 (stored with body aa), w2 claims r2 (free); w3 claims r2 with another
        // body than w2's; w4 follows w3's version on w3's stream.
        let (w1, w2, w3, w4) = (
            events("w1", 1..=1),
            events("w2", 1..=1),
            events("w3", 1..=1),
            events("w3", 1..=1),
        );
        let claims = [
            delivery("r1", "aa"),
            delivery("r2", "bb"),
            delivery("r2", "cc"),
            None,
        ];
        let versions = HashMap::from([
            (("Task", "w1"), 0),
            (("Task", "w2"), 0),
            (("Task", "w3"), 0),
        ]);
        let stored = HashMap::from([("r1".to_owned(), "aa".to_owned())]);
        assert_eq!(
            decide(&[&w1, &w2, &w3, &w4], &claims, versions, stored),
            // w1: r1 claimed with its own body (a delivery run again); w3 lost on r2, so w4,
            // decided on the same version of w3, wins.
            [
                Decision::Wins,
                Decision::Wins,
                Decision::Conflicts,
                Decision::Wins
            ]
        );
        let versions = HashMap::from([(("Task", "w1"), 0)]);
        let stored = HashMap::from([("r1".to_owned(), "ff".to_owned())]);
        assert_eq!(
            decide(&[&w1], &claims[..1], versions, stored),
            [Decision::Conflicts],
            "claimed with another body before the group"
        );
    }

    #[test]
    fn a_claim_is_read_from_the_first_events_metadata() {
        let mut deposit = events("w1", 1..=1);
        assert_eq!(Claim::of(&deposit), None);
        deposit[0].metadata = json!({
            delivery_keys::REFERENCE: "r1",
            delivery_keys::BODY_SHA256: "aa",
            delivery_keys::EVENT: "deposit.succeeded",
        });
        assert_eq!(Claim::of(&deposit), delivery("r1", "aa"));
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
