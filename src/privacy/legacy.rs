//! Texts written before texts were sealed (ADR 7, "Events written before this change"): plain
//! strings in events the chain already covers, so they cannot be sealed in place. When their
//! author is erased, each one is recorded in `erased_texts` by where it stands (its event's
//! aggregate and field) and a keyed digest of its words, and every answer shows it as
//! `"[erased]"` from then on: the opener looks each plain text up here, as it opens each
//! sealed one. The bytes stay in the `events` table; the erasure's answer says how many.
//!
//! The author of a legacy text is the actor who appended its event (`metadata.actor`), as the
//! author of a sealed text is the caller whose key sealed it: the handlers seal only the
//! caller's own texts.

use bountyline_domain::bounty::Bounty;
use bountyline_domain::task::Task;
use cqrs_es::Aggregate;
use hmac::digest::KeyInit;
use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::{Digest, Sha256};
use sqlx::{PgConnection, PgPool};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use uuid::Uuid;

use super::seal::{self, field};

/// Where people's texts stand in events: the aggregate type, the event type, and the event's
/// fields that the handlers seal (`src/http/routes/{bounties,tasks}.rs`). `tests/privacy.rs`
/// checks that every sealed field of every stored event is listed here, and every field listed
/// is sealed.
pub const PERSONAL_TEXTS: &[(&str, &str, &[&str])] = &[
    (
        Bounty::TYPE,
        "BountyPosted",
        &[field::TITLE, field::DESCRIPTION],
    ),
    (Bounty::TYPE, "ApplicationSubmitted", &[field::PITCH]),
    (Bounty::TYPE, "WorkSubmitted", &[field::TEXT, field::LINK]),
    (Bounty::TYPE, "WorkRejected", &[field::REASON]),
    (Bounty::TYPE, "BountyDisputed", &[field::REASON]),
    (
        Task::TYPE,
        "TaskCreated",
        &[field::TITLE, field::DESCRIPTION],
    ),
    (Task::TYPE, "TaskHeartbeatRecorded", &[field::NOTE]),
    (Task::TYPE, "TaskFailed", &[field::ERROR]),
];

/// The fields of `event_type` in `aggregate_type` that hold a person's text.
pub fn personal_fields(aggregate_type: &str, event_type: &str) -> &'static [&'static str] {
    PERSONAL_TEXTS
        .iter()
        .find(|(aggregate, event, _)| *aggregate == aggregate_type && *event == event_type)
        .map_or(&[], |(_, _, fields)| fields)
}

const DIGEST_BYTES: usize = 16;

/// A legacy text's digest: the first 128 bits of HMAC-SHA256 under a key derived from
/// `privacy.key`, over its place and its words, so that `erased_texts` cannot be searched for
/// a guessed text without the key.
#[derive(Clone)]
pub struct Digester {
    keyed: Hmac<Sha256>,
}

impl Digester {
    pub fn new(kek: &[u8]) -> Self {
        // HMAC-SHA256's key is one 64-byte block; a key of that size needs no length check.
        let half = |part: &[u8]| {
            Sha256::new()
                .chain_update(b"bountyline legacy texts v1\0")
                .chain_update(part)
                .chain_update(kek)
                .finalize()
        };
        let mut key = [0u8; 64];
        key[..32].copy_from_slice(&half(b"0"));
        key[32..].copy_from_slice(&half(b"1"));
        Self {
            keyed: <Hmac<Sha256> as KeyInit>::new(&key.into()),
        }
    }

    fn digest(&self, aggregate_id: &str, field: &str, text: &str) -> [u8; DIGEST_BYTES] {
        let mut mac = self.keyed.clone();
        for part in [aggregate_id, field, text] {
            mac.update(&(part.len() as u64).to_be_bytes());
            mac.update(part.as_bytes());
        }
        let full = mac.finalize().into_bytes();
        let mut digest = [0u8; DIGEST_BYTES];
        digest.copy_from_slice(&full[..DIGEST_BYTES]);
        digest
    }
}

/// One plain text of a person's in an event.
struct LegacyText {
    position: i64,
    field: &'static str,
    aggregate_id: String,
    text: String,
}

/// The names of the event types that hold people's texts.
pub fn personal_event_types() -> Vec<&'static str> {
    PERSONAL_TEXTS.iter().map(|(_, event, _)| *event).collect()
}

/// The personal fields of an event's payload that hold a plain (unsealed) text.
pub fn plain_fields(aggregate_type: &str, event_type: &str, payload: &Value) -> Vec<&'static str> {
    let Some(body) = payload.get(event_type) else {
        return Vec::new();
    };
    personal_fields(aggregate_type, event_type)
        .iter()
        .copied()
        .filter(|field| matches!(body.get(*field), Some(Value::String(t)) if !seal::is_sealed(t)))
        .collect()
}

/// The plain texts `person` wrote: the personal fields of the events they appended that are
/// not sealed. Read by the actor index, so an erasure reads only the person's own events.
async fn written_by(db: &mut PgConnection, person: Uuid) -> Result<Vec<LegacyText>, sqlx::Error> {
    let rows: Vec<(i64, String, String, String, Value)> = sqlx::query_as(
        "SELECT position, aggregate_type, aggregate_id, event_type, payload FROM events \
         WHERE metadata ->> 'actor' = $1 AND event_type = ANY($2) ORDER BY position",
    )
    .bind(person.to_string())
    .bind(personal_event_types())
    .fetch_all(db)
    .await?;
    let mut texts = Vec::new();
    for (position, aggregate_type, aggregate_id, event_type, payload) in rows {
        for field in plain_fields(&aggregate_type, &event_type, &payload) {
            if let Some(Value::String(text)) = payload[&event_type].get(field) {
                texts.push(LegacyText {
                    position,
                    field,
                    aggregate_id: aggregate_id.clone(),
                    text: text.clone(),
                });
            }
        }
    }
    Ok(texts)
}

/// How many plain texts `person` wrote: what their erasure leaves stored in the event store.
pub async fn count(pool: &PgPool, person: Uuid) -> Result<u64, sqlx::Error> {
    let mut db = pool.acquire().await?;
    Ok(written_by(&mut db, person).await?.len() as u64)
}

/// Records every plain text `person` wrote as erased (in the erasure's transaction; running
/// it again records nothing more). Answers how many there are.
pub async fn record(
    db: &mut PgConnection,
    digester: &Digester,
    person: Uuid,
) -> Result<u64, sqlx::Error> {
    let texts = written_by(db, person).await?;
    if texts.is_empty() {
        return Ok(0);
    }
    let mut positions = Vec::with_capacity(texts.len());
    let mut fields = Vec::with_capacity(texts.len());
    let mut aggregates = Vec::with_capacity(texts.len());
    let mut digests = Vec::with_capacity(texts.len());
    for text in &texts {
        positions.push(text.position);
        fields.push(text.field);
        aggregates.push(text.aggregate_id.as_str());
        digests.push(
            digester
                .digest(&text.aggregate_id, text.field, &text.text)
                .to_vec(),
        );
    }
    sqlx::query(
        "INSERT INTO erased_texts (position, field, author, aggregate_id, digest) \
         SELECT p, f, $3, a, d FROM UNNEST($1::bigint[], $2::text[], $4::text[], $5::bytea[]) \
           AS t(p, f, a, d) \
         ON CONFLICT (position, field) DO NOTHING",
    )
    .bind(&positions)
    .bind(&fields)
    .bind(person)
    .bind(&aggregates)
    .bind(&digests)
    .execute(db)
    .await?;
    Ok(texts.len() as u64)
}

/// The erased legacy texts, by aggregate: what the opener looks a plain text up in.
#[derive(Default)]
pub struct ErasedTexts {
    by_aggregate: HashMap<String, Vec<(String, [u8; DIGEST_BYTES])>>,
}

impl ErasedTexts {
    pub fn is_empty(&self) -> bool {
        self.by_aggregate.is_empty()
    }

    /// Whether `text`, standing in `field` of `aggregate_id`, is an erased person's.
    pub fn holds(&self, digester: &Digester, aggregate_id: &str, field: &str, text: &str) -> bool {
        let Some(erased) = self.by_aggregate.get(aggregate_id) else {
            return false;
        };
        let digest = digester.digest(aggregate_id, field, text);
        erased.iter().any(|(f, d)| f == field && *d == digest)
    }
}

/// This process's copy of `erased_texts`, read again after `privacy.key_cache_ms` (as data
/// keys are), and at once after an erasure here. The table only grows with erasures of people
/// who wrote before sealing, so it is read whole.
pub struct Legacy {
    pool: PgPool,
    digester: Digester,
    keep: Duration,
    kept: Mutex<Option<(Instant, Arc<ErasedTexts>)>>,
}

impl Legacy {
    pub fn new(pool: PgPool, kek: &[u8], keep: Duration) -> Self {
        Self {
            pool,
            digester: Digester::new(kek),
            keep,
            kept: Mutex::new(None),
        }
    }

    pub fn digester(&self) -> &Digester {
        &self.digester
    }

    /// The erased legacy texts, as of at most `privacy.key_cache_ms` ago.
    pub async fn erased(&self) -> Result<Arc<ErasedTexts>, sqlx::Error> {
        if let Some((until, erased)) = self.lock().as_ref() {
            if *until > Instant::now() {
                return Ok(Arc::clone(erased));
            }
        }
        let rows: Vec<(String, String, Vec<u8>)> =
            sqlx::query_as("SELECT aggregate_id, field, digest FROM erased_texts")
                .fetch_all(&self.pool)
                .await?;
        let mut erased = ErasedTexts::default();
        for (aggregate_id, field, digest) in rows {
            let Ok(digest) = <[u8; DIGEST_BYTES]>::try_from(digest.as_slice()) else {
                continue;
            };
            erased
                .by_aggregate
                .entry(aggregate_id)
                .or_default()
                .push((field, digest));
        }
        let erased = Arc::new(erased);
        if !self.keep.is_zero() {
            *self.lock() = Some((Instant::now() + self.keep, Arc::clone(&erased)));
        }
        Ok(erased)
    }

    /// Drops this process's copy, so that the next answer reads the table.
    pub fn forget(&self) {
        *self.lock() = None;
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<(Instant, Arc<ErasedTexts>)>> {
        self.kept.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_digest_is_bound_to_its_place_and_its_key() {
        let digester = Digester::new(&[7u8; 32]);
        let here = digester.digest("b1", "pitch", "I can do it");
        assert_eq!(here, digester.digest("b1", "pitch", "I can do it"));
        assert_ne!(here, digester.digest("b2", "pitch", "I can do it"));
        assert_ne!(here, digester.digest("b1", "reason", "I can do it"));
        // The parts are length-prefixed: moving a boundary changes the digest.
        assert_ne!(
            digester.digest("b1", "pitchI", " can do it"),
            digester.digest("b1", "pitch", "I can do it")
        );
        assert_ne!(
            here,
            Digester::new(&[8u8; 32]).digest("b1", "pitch", "I can do it")
        );
    }

    #[test]
    fn the_personal_fields_are_found_by_aggregate_and_event_type() {
        assert_eq!(personal_fields("Bounty", "WorkSubmitted"), ["text", "link"]);
        assert_eq!(personal_fields("Task", "TaskFailed"), ["error"]);
        assert!(personal_fields("Bounty", "BountyUnfunded").is_empty());
        assert!(personal_fields("Task", "BountyPosted").is_empty());
    }
}
