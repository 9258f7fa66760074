//! The re-seal (ADR 7, step 3; `bountyline privacy reseal`): texts written before sealing are
//! sealed in place, so that their bytes leave the store, the read models and JetStream too.
//!
//! In one transaction, with appends held off:
//! 1. every personal field of every event that still holds a plain text is sealed under its
//!    author's key (the event's actor), an erased author's under a key no one keeps;
//! 2. each changed stream's hash chain is recomputed from its first changed event
//!    (`events_rechain`, migration 0026) and every event whose hash changed is recorded in
//!    `resealed_links` with its old and new hash;
//! 3. a `ChainResealed` event (aggregate `Epoch`) records the counts and a digest over those
//!    links.
//!
//! Then, outside it: the JetStream messages of the changed events are deleted ([`scrub_stream`];
//! the live consumers passed them long ago and catch-up reads the store), the caller rebuilds
//! the read models, whose rows still hold plain copies, and only then are the erased legacy
//! texts' records dropped ([`forget_erased_texts`]): until the rebuilt read models are swapped
//! in, the opener must still hide an erased author's plain copies in them.
//!
//! A text whose author cannot be told (no actor, an actor that is no account, an aggregate id
//! that is not a UUID) stays as it is and is counted as `unattributed`.

use async_nats::jetstream;
use bountyline_domain::epoch::{Epoch, EpochCommand, EpochError, EpochEvent, Reseal};
use bountyline_domain::Actor;
use bountyline_projections::wire::HEADER_POSITION;
use chrono::{DateTime, Utc};
use cqrs_es::{Aggregate, DomainEvent};
use futures::StreamExt;
use serde::Serialize;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use sqlx::{PgConnection, PgPool};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Duration;
use uuid::Uuid;

use super::keyring::{Keyring, PrivacyError, Sealer};
use super::legacy::{personal_event_types, plain_fields};
use crate::http::signature::to_hex;
use crate::nats::Names;

/// How many events the re-seal reads at a time.
const PAGE: i64 = 1_000;

/// What a re-seal did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Report {
    /// The epoch recorded; `None` when no plain text was left to seal.
    pub epoch: Option<Uuid>,
    pub texts: u64,
    pub events: u64,
    pub streams: u64,
    /// Events whose hash changed.
    pub links: u64,
    /// Plain texts left as they are: their author cannot be told.
    pub unattributed: u64,
    /// The changed events' positions: the JetStream messages to delete.
    #[serde(skip)]
    pub positions: Vec<i64>,
}

#[derive(Debug, thiserror::Error)]
pub enum ResealError {
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
    #[error("keys: {0}")]
    Privacy(#[from] PrivacyError),
    #[error("serializing the epoch's event: {0}")]
    Json(#[from] serde_json::Error),
    #[error("recording the epoch: {0}")]
    Epoch(#[from] EpochError),
}

/// One changed event's new payload.
struct Changed {
    position: i64,
    stream: (String, String),
    sequence: i64,
    payload: Value,
}

/// One event whose hash the re-seal changed.
struct Link {
    stream: (String, String),
    sequence: i64,
    old_hash: Vec<u8>,
    new_hash: Vec<u8>,
}

/// Seals every plain personal text in the store and records the epoch (see the module).
pub async fn reseal(
    pool: &PgPool,
    keyring: &Keyring,
    at: DateTime<Utc>,
) -> Result<Report, ResealError> {
    let mut tx = pool.begin().await?;
    // Transaction-scoped, and a SHARE ROW EXCLUSIVE lock on `events`: every append waits for
    // this transaction, every read goes on; the trigger is back on before it commits.
    sqlx::query("ALTER TABLE events DISABLE TRIGGER events_refuse_update_delete")
        .execute(&mut *tx)
        .await?;
    let mut report = Report::default();
    let changed = seal_plain_texts(&mut tx, keyring, &mut report).await?;
    if changed.is_empty() {
        tx.rollback().await?;
        return Ok(report);
    }
    let positions: Vec<i64> = changed.iter().map(|c| c.position).collect();
    let payloads: Vec<&Value> = changed.iter().map(|c| &c.payload).collect();
    sqlx::query(
        "UPDATE events e SET payload = u.payload \
         FROM UNNEST($1::bigint[], $2::jsonb[]) AS u(position, payload) \
         WHERE e.position = u.position",
    )
    .bind(&positions)
    .bind(&payloads)
    .execute(&mut *tx)
    .await?;
    let mut from: BTreeMap<(String, String), i64> = BTreeMap::new();
    for c in &changed {
        let first = from.entry(c.stream.clone()).or_insert(c.sequence);
        *first = (*first).min(c.sequence);
    }
    let mut links = Vec::new();
    for ((aggregate_type, aggregate_id), sequence) in &from {
        let rows: Vec<(i64, Vec<u8>, Vec<u8>)> = sqlx::query_as(
            "SELECT changed_sequence, old_hash, new_hash FROM events_rechain($1, $2, $3)",
        )
        .bind(aggregate_type)
        .bind(aggregate_id)
        .bind(sequence)
        .fetch_all(&mut *tx)
        .await?;
        links.extend(rows.into_iter().map(|(sequence, old_hash, new_hash)| Link {
            stream: (aggregate_type.clone(), aggregate_id.clone()),
            sequence,
            old_hash,
            new_hash,
        }));
    }
    let epoch = Uuid::now_v7();
    record_links(&mut tx, epoch, &links).await?;
    report.epoch = Some(epoch);
    report.events = changed.len() as u64;
    report.streams = from.len() as u64;
    report.links = links.len() as u64;
    let events = Epoch::default().decide(EpochCommand::Record(Reseal {
        epoch,
        texts: report.texts,
        events: report.events,
        streams: report.streams,
        links: report.links,
        links_digest: links_digest(&links),
        at,
    }))?;
    for event in &events {
        append_epoch(&mut tx, epoch, event).await?;
    }
    sqlx::query("ALTER TABLE events ENABLE TRIGGER events_refuse_update_delete")
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    report.positions = positions;
    Ok(report)
}

/// Reads every event that may hold a person's text, page by page, and seals the plain ones.
async fn seal_plain_texts(
    db: &mut PgConnection,
    keyring: &Keyring,
    report: &mut Report,
) -> Result<Vec<Changed>, ResealError> {
    type Row = (i64, String, String, i64, String, Value, Option<String>);
    let types = personal_event_types();
    let mut sealers: HashMap<Uuid, Option<Sealer>> = HashMap::new();
    let mut changed = Vec::new();
    let mut after = 0i64;
    loop {
        let rows: Vec<Row> = sqlx::query_as(
            "SELECT position, aggregate_type, aggregate_id, sequence, event_type, payload, \
                    metadata ->> 'actor' \
               FROM events WHERE position > $1 AND event_type = ANY($2) \
              ORDER BY position LIMIT $3",
        )
        .bind(after)
        .bind(&types)
        .bind(PAGE)
        .fetch_all(&mut *db)
        .await?;
        let Some(last) = rows.last() else { break };
        after = last.0;
        for (position, aggregate_type, aggregate_id, sequence, event_type, mut payload, actor) in
            rows
        {
            let fields = plain_fields(&aggregate_type, &event_type, &payload);
            if fields.is_empty() {
                continue;
            }
            let author = actor.and_then(|a| Uuid::parse_str(&a).ok());
            let aggregate = Uuid::parse_str(&aggregate_id).ok();
            let sealer = match author {
                Some(author) => sealer_for(db, keyring, &mut sealers, author).await?,
                None => None,
            };
            let (Some(sealer), Some(aggregate)) = (sealer, aggregate) else {
                report.unattributed += fields.len() as u64;
                continue;
            };
            let body = &mut payload[&event_type];
            for field in &fields {
                let text = body[*field].as_str().unwrap_or_default().to_owned();
                body[*field] = Value::String(sealer.seal(aggregate, field, &text)?);
            }
            report.texts += fields.len() as u64;
            changed.push(Changed {
                position,
                stream: (aggregate_type, aggregate_id),
                sequence,
                payload,
            });
        }
    }
    Ok(changed)
}

/// `author`'s sealer, made once per re-seal: their key (made now if they have none), a key no
/// one keeps for an erased author, `None` for an actor that is no account.
async fn sealer_for<'a>(
    db: &mut PgConnection,
    keyring: &Keyring,
    sealers: &'a mut HashMap<Uuid, Option<Sealer>>,
    author: Uuid,
) -> Result<Option<&'a Sealer>, ResealError> {
    if let std::collections::hash_map::Entry::Vacant(entry) = sealers.entry(author) {
        let account: bool = sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM users WHERE id = $1)")
            .bind(author)
            .fetch_one(&mut *db)
            .await?;
        let sealer = if !account {
            None
        } else {
            match keyring.sealer(author).await {
                Ok(sealer) => Some(sealer),
                Err(PrivacyError::Erased(_)) => Some(Sealer::throwaway(author)),
                Err(e) => return Err(e.into()),
            }
        };
        entry.insert(sealer);
    }
    Ok(sealers[&author].as_ref())
}

async fn record_links(
    db: &mut PgConnection,
    epoch: Uuid,
    links: &[Link],
) -> Result<(), sqlx::Error> {
    let types: Vec<&str> = links.iter().map(|l| l.stream.0.as_str()).collect();
    let ids: Vec<&str> = links.iter().map(|l| l.stream.1.as_str()).collect();
    let sequences: Vec<i64> = links.iter().map(|l| l.sequence).collect();
    let old: Vec<&[u8]> = links.iter().map(|l| l.old_hash.as_slice()).collect();
    let new: Vec<&[u8]> = links.iter().map(|l| l.new_hash.as_slice()).collect();
    sqlx::query(
        "INSERT INTO resealed_links \
           (aggregate_type, aggregate_id, sequence, epoch, old_hash, new_hash) \
         SELECT t, i, s, $4, o, n \
           FROM UNNEST($1::text[], $2::text[], $3::bigint[], $5::bytea[], $6::bytea[]) \
             AS x(t, i, s, o, n)",
    )
    .bind(&types)
    .bind(&ids)
    .bind(&sequences)
    .bind(epoch)
    .bind(&old)
    .bind(&new)
    .execute(db)
    .await?;
    Ok(())
}

/// The digest `ChainResealed` carries over its links (`Reseal::links_digest`): they are in
/// stream and sequence order already.
fn links_digest(links: &[Link]) -> String {
    let mut digest = Sha256::new();
    for link in links {
        digest.update(format!(
            "{}\0{}\0{}\0{}\0{}\n",
            link.stream.0,
            link.stream.1,
            link.sequence,
            to_hex(&link.old_hash),
            to_hex(&link.new_hash)
        ));
    }
    to_hex(&digest.finalize())
}

/// Appends the epoch's one event, in the re-seal's transaction: the store's triggers give it
/// its position and hash, and the relay publishes it as any other.
async fn append_epoch(
    db: &mut PgConnection,
    epoch: Uuid,
    event: &EpochEvent,
) -> Result<(), ResealError> {
    let id = epoch.to_string();
    let metadata = json!({
        "actor": Actor::SYSTEM_ID.to_string(),
        "command": "RecordReseal",
        "command_id": id,
        "request_id": id,
        "correlation_id": id,
        "causation_id": "bountyline privacy reseal",
    });
    sqlx::query(
        "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, \
         payload, metadata) VALUES ($1, $2, 1, $3, $4, $5, $6)",
    )
    .bind(Epoch::TYPE)
    .bind(&id)
    .bind(event.event_type())
    .bind(event.event_version())
    .bind(serde_json::to_value(event)?)
    .bind(metadata)
    .execute(db)
    .await?;
    Ok(())
}

/// Drops the records of erased legacy texts in the events at `positions`, once no read model
/// holds a plain copy of them any more (after the rebuild): their texts are sealed now.
pub async fn forget_erased_texts(pool: &PgPool, positions: &[i64]) -> Result<u64, sqlx::Error> {
    let done = sqlx::query("DELETE FROM erased_texts WHERE position = ANY($1)")
        .bind(positions)
        .execute(pool)
        .await?;
    Ok(done.rows_affected())
}

/// Deletes the JetStream messages of the events at `positions` (the ones the re-seal changed,
/// published with their plain texts). Reads only the headers of the stream's bounty and task
/// messages, once. Answers how many it deleted.
pub async fn scrub_stream(
    js: &jetstream::Context,
    names: &Names,
    positions: &[i64],
) -> anyhow::Result<u64> {
    use bountyline_domain::bounty::Bounty;
    use bountyline_domain::task::Task;

    let wanted: HashSet<i64> = positions.iter().copied().collect();
    if wanted.is_empty() {
        return Ok(0);
    }
    let stream = js.get_stream(names.stream()).await?;
    let mut consumer_stream = stream
        .create_consumer(jetstream::consumer::pull::OrderedConfig {
            filter_subjects: vec![names.subject(Bounty::TYPE), names.subject(Task::TYPE)],
            headers_only: true,
            ..Default::default()
        })
        .await?
        .messages()
        .await?;
    let mut doomed = Vec::new();
    loop {
        // The stream's bounty and task messages, to the last: an idle second means none is
        // left (pending reaching zero ends it sooner).
        let next = tokio::time::timeout(Duration::from_secs(1), consumer_stream.next()).await;
        let Ok(Some(message)) = next else { break };
        let message = message?;
        let info = message.info().map_err(|e| anyhow::anyhow!("{e}"))?;
        let position = message
            .headers
            .as_ref()
            .and_then(|h| h.get(HEADER_POSITION))
            .and_then(|v| v.as_str().parse::<i64>().ok());
        if position.is_some_and(|p| wanted.contains(&p)) {
            doomed.push(info.stream_sequence);
        }
        if info.pending == 0 {
            break;
        }
    }
    let mut deleted = 0;
    for sequence in doomed {
        if stream.delete_message(sequence).await? {
            deleted += 1;
        }
    }
    Ok(deleted)
}
