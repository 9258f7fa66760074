//! One group commit: the appends of many commands in one transaction, each command's events
//! all or nothing, optimistic concurrency exact per aggregate.
//!
//! The work is one statement, `append_group` (migrations/0018_append_group.sql), sent outside
//! any explicit transaction, so that the statement is the transaction and one round trip
//! carries the whole group: it takes the append lock (the one every insert into `events`
//! takes, see migrations/0001), reads the stored version of every aggregate in the group and
//! the claims on its deliveries, decides each command in arrival order, inserts the winners'
//! events in that order and claims their deliveries, and commits before it answers.
//!
//! A command that carries out a payment provider's delivery (its events' metadata names it,
//! see `commands::DeliveryClaim`) claims the delivery's reference in the same transaction: a
//! reference is one delivery's for good, and claiming it on its own would cost every deposit a
//! second durable commit. A command whose reference is already claimed with another body, in
//! the table or by a winner before it in the group, loses as a conflict.

use cqrs_es::persist::SerializedEvent;
use serde_json::Value;
use sqlx::PgConnection;

use super::delivery_keys;
use crate::defects::{self, Defect};

const APPEND_GROUP: &str = "\
SELECT append_group($1::text[], $2::text[], $3::bigint[], $4::bigint[], $5::text[], $6::text[], \
                    $7::text[], $8::text[], $9::text[], $10::text[], $11::int[], $12::text[], \
                    $13::text[], $14::bigint[], $15::text[], $16::text[], $17::jsonb[], \
                    $18::jsonb[])";

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

/// Who sent a command and under which Idempotency-Key, as its first event's metadata names
/// them: `append_group` records the pair and appends at most one command under it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Keyed<'a> {
    actor: Option<&'a str>,
    key: Option<&'a str>,
    command: Option<&'a str>,
}

impl<'a> Keyed<'a> {
    fn of(events: &'a [SerializedEvent]) -> Self {
        let metadata = events.first().map(|e| &e.metadata);
        let key = |k: &str| metadata.and_then(|m| m.get(k)).and_then(Value::as_str);
        let unrecorded = defects::on(Defect::ForgetUnknownOutcomes);
        Self {
            actor: key("actor"),
            key: key("idempotency_key").filter(|_| !unrecorded),
            command: key("command_id"),
        }
    }
}

/// What became of one command's append.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Verdict {
    /// Its events are committed, the last one at `position`.
    Appended { position: i64 },
    /// Its aggregate had moved past the version the command was decided on, or its delivery
    /// was claimed with another body.
    Conflict,
    /// A command under the same actor and Idempotency-Key is already stored (`command_keys`):
    /// this one appended nothing, and its answer is the recorded one's.
    Repeat,
}

/// Appends `commands` (each one command's events, at least one, in order) in one transaction
/// and commits it; the verdicts are in the order of `commands`. `conn` must not be in a
/// transaction. An error the database answered (`sqlx::Error::Database`) means nothing of the
/// group is stored; any other error leaves the outcome unknown.
pub(super) async fn commit(
    conn: &mut PgConnection,
    commands: &[&[SerializedEvent]],
) -> Result<Vec<Verdict>, sqlx::Error> {
    let heads: Vec<&SerializedEvent> = commands.iter().filter_map(|c| c.first()).collect();
    let lasts: Vec<&SerializedEvent> = commands.iter().filter_map(|c| c.last()).collect();
    if heads.len() != commands.len() {
        return Err(sqlx::Error::Protocol("a command without events".into()));
    }
    let claims: Vec<Option<Claim>> = commands.iter().map(|events| Claim::of(events)).collect();
    let claimed = |part: for<'c> fn(&'c Claim<'c>) -> &'c str| -> Vec<Option<&str>> {
        claims.iter().map(|c| c.as_ref().map(part)).collect()
    };
    let keyed: Vec<Keyed> = commands.iter().map(|events| Keyed::of(events)).collect();
    let keyed_by = |part: for<'c> fn(&Keyed<'c>) -> Option<&'c str>| -> Vec<Option<&str>> {
        keyed.iter().map(part).collect()
    };
    // Each event with the index (from 1) of its command.
    let (of_command, events): (Vec<i32>, Vec<&SerializedEvent>) = (1..)
        .zip(commands)
        .flat_map(|(n, events)| events.iter().map(move |e| (n, e)))
        .unzip();
    let positions: Vec<i64> = sqlx::query_scalar(APPEND_GROUP)
        .bind(column(&heads, |e| e.aggregate_type.as_str()))
        .bind(column(&heads, |e| e.aggregate_id.as_str()))
        .bind(column(&heads, |e| e.sequence as i64))
        .bind(column(&lasts, |e| e.sequence as i64))
        .bind(claimed(|c| c.reference))
        .bind(claimed(|c| c.body_sha256))
        .bind(claimed(|c| c.event))
        .bind(keyed_by(|k| k.actor))
        .bind(keyed_by(|k| k.key))
        .bind(keyed_by(|k| k.command))
        .bind(of_command)
        .bind(column(&events, |e| e.aggregate_type.as_str()))
        .bind(column(&events, |e| e.aggregate_id.as_str()))
        .bind(column(&events, |e| e.sequence as i64))
        .bind(column(&events, |e| e.event_type.as_str()))
        .bind(column(&events, |e| e.event_version.as_str()))
        .bind(column(&events, |e| &e.payload))
        .bind(column(&events, |e| &e.metadata))
        .fetch_one(conn)
        .await?;
    verdicts(commands, &positions)
}

/// One parameter array of `append_group`: a part of each event.
fn column<'a, T>(
    events: &[&'a SerializedEvent],
    part: impl Fn(&'a SerializedEvent) -> T,
) -> Vec<T> {
    events.iter().map(|e| part(e)).collect()
}

/// The verdicts from the positions `append_group` returned, checked: one per command, and the
/// winners' positions rising with arrival order by their events' count at least (each
/// winner's events took the next positions, in order). The positions are what the receipts
/// carry, so on a mismatch no command is answered with one: the group is committed, and each
/// command gets an error, an unknown outcome to retry with its `Idempotency-Key`.
fn verdicts(
    commands: &[&[SerializedEvent]],
    positions: &[i64],
) -> Result<Vec<Verdict>, sqlx::Error> {
    let mismatch = || sqlx::Error::Protocol("append_group answered positions out of order".into());
    if positions.len() != commands.len() {
        return Err(mismatch());
    }
    let mut previous = 0;
    commands
        .iter()
        .zip(positions)
        .map(|(events, &position)| {
            if position == 0 {
                return Ok(Verdict::Conflict);
            }
            if position == -1 {
                return Ok(Verdict::Repeat);
            }
            if position < previous + events.len() as i64 {
                return Err(mismatch());
            }
            previous = position;
            Ok(Verdict::Appended { position })
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
    fn a_claim_is_read_from_the_first_events_metadata() {
        let mut deposit = events("w1", 1..=1);
        assert_eq!(Claim::of(&deposit), None);
        deposit[0].metadata = json!({
            delivery_keys::REFERENCE: "r1",
            delivery_keys::BODY_SHA256: "aa",
            delivery_keys::EVENT: "deposit.succeeded",
        });
        assert_eq!(
            Claim::of(&deposit),
            Some(Claim {
                reference: "r1",
                body_sha256: "aa",
                event: "deposit.succeeded"
            })
        );
    }

    #[test]
    fn the_actor_key_and_command_are_read_from_the_first_events_metadata() {
        let mut keyed = events("t1", 1..=2);
        assert_eq!(
            Keyed::of(&keyed),
            Keyed {
                actor: None,
                key: None,
                command: None
            }
        );
        keyed[0].metadata = json!({"actor": "a", "idempotency_key": "k", "command_id": "c"});
        keyed[1].metadata = json!({"actor": "b", "idempotency_key": "other"});
        assert_eq!(
            Keyed::of(&keyed),
            Keyed {
                actor: Some("a"),
                key: Some("k"),
                command: Some("c")
            }
        );
    }

    #[test]
    fn positions_become_verdicts_in_order_and_out_of_order_ones_are_refused() {
        let (a, b, c) = (
            events("t1", 1..=2),
            events("t2", 1..=1),
            events("t3", 1..=1),
        );
        let commands: [&[SerializedEvent]; 3] = [&a, &b, &c];
        assert_eq!(
            verdicts(&commands, &[12, 0, 13]).expect("in order"),
            [
                Verdict::Appended { position: 12 },
                Verdict::Conflict,
                Verdict::Appended { position: 13 }
            ]
        );
        assert!(verdicts(&commands, &[13, 0, 12]).is_err(), "falling");
        assert!(
            verdicts(&commands, &[12, 13, 13]).is_err(),
            "two commands at one position"
        );
        assert!(verdicts(&commands, &[12, 0]).is_err(), "one position short");
        assert_eq!(
            verdicts(&commands, &[-1, 12, 0]).expect("a repeat"),
            [
                Verdict::Repeat,
                Verdict::Appended { position: 12 },
                Verdict::Conflict
            ]
        );
    }
}
