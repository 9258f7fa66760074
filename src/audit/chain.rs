//! The hash chain of the event store (DESIGN.md guarantee 10).
//!
//! Every event carries `hash = event_hash(canonical form, hash of the stream's previous event)`,
//! computed by the `events_z_chain` trigger inside the append transaction (migration 0009).
//! [`verify`] recomputes every chain in the database and names the lowest position where a
//! stored hash does not match or a sequence number is missing. Deleting the newest events of a
//! stream leaves a chain that is still consistent, so [`heads`] exports each stream's newest
//! `(sequence, hash)` and [`check_heads`] later compares a saved export with the store.

use serde::{Deserialize, Serialize};
use sqlx::PgPool;
use uuid::Uuid;

/// The result of recomputing every chain.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct VerifyReport {
    pub ok: bool,
    /// How many events were checked.
    pub checked: i64,
    /// The broken link with the lowest position, if any.
    pub first_broken: Option<BrokenLink>,
}

/// An event whose stored hash does not match its recomputed one, or that follows a gap.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct BrokenLink {
    pub position: i64,
    pub event_id: Uuid,
    pub aggregate_type: String,
    pub aggregate_id: String,
    pub sequence: i64,
    pub reason: String,
}

/// The newest event of one stream, as exported for a later [`check_heads`].
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, sqlx::FromRow, utoipa::ToSchema)]
pub struct Head {
    /// Any text but U+0000, which the store cannot hold.
    #[schema(pattern = r"^[^\u0000]*$")]
    pub aggregate_type: String,
    #[schema(pattern = r"^[^\u0000]*$")]
    pub aggregate_id: String,
    #[serde(deserialize_with = "crate::http::whole::number")]
    pub sequence: i64,
    /// Lower-case hex of the event's hash.
    #[schema(pattern = "^[0-9a-f]{64}$")]
    pub hash: String,
}

impl Head {
    /// Whether `hash` is a hash as exports write it: 64 lower-case hex digits.
    pub fn hash_is_well_formed(&self) -> bool {
        self.hash.len() == 64
            && self
                .hash
                .bytes()
                .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    }
}

/// A stream that no longer matches its exported head.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct HeadProblem {
    pub aggregate_type: String,
    pub aggregate_id: String,
    pub exported_sequence: i64,
    /// The stream's newest sequence now (`None`: the stream is gone).
    pub current_sequence: Option<i64>,
    /// `stream-missing`, `truncated` or `hash-mismatch`.
    pub problem: String,
    pub detail: String,
}

/// One pass over the store: every event's hash recomputed against its predecessor's stored
/// hash. The aggregation runs in Postgres (walking the primary key in stream order), so memory
/// here stays constant however large the store is.
const VERIFY_SQL: &str = "\
WITH chained AS (
    SELECT position,
           sequence,
           lag(sequence) OVER w AS prev_sequence,
           hash = event_hash(aggregate_type, aggregate_id, sequence, event_type, event_version,
                             payload, metadata, event_id, recorded_at, lag(hash) OVER w) AS hash_ok
      FROM events
    WINDOW w AS (PARTITION BY aggregate_type, aggregate_id ORDER BY sequence)
)
SELECT count(*)::bigint AS checked,
       min(position) FILTER (
           WHERE hash_ok IS NOT TRUE OR sequence <> coalesce(prev_sequence, 0) + 1
       ) AS first_broken
  FROM chained";

/// The details of one event's link, recomputed within its own stream only.
const LINK_SQL: &str = "\
WITH stream AS (
    SELECT aggregate_type, aggregate_id FROM events WHERE position = $1
), chained AS (
    SELECT e.position, e.event_id, e.aggregate_type, e.aggregate_id, e.sequence,
           lag(e.sequence) OVER w AS prev_sequence,
           encode(e.hash, 'hex') AS stored,
           encode(event_hash(e.aggregate_type, e.aggregate_id, e.sequence, e.event_type,
                             e.event_version, e.payload, e.metadata, e.event_id, e.recorded_at,
                             lag(e.hash) OVER w), 'hex') AS expected
      FROM events e JOIN stream s USING (aggregate_type, aggregate_id)
    WINDOW w AS (PARTITION BY e.aggregate_type, e.aggregate_id ORDER BY e.sequence)
)
SELECT position, event_id, aggregate_type, aggregate_id, sequence, prev_sequence, stored, expected
  FROM chained WHERE position = $1";

#[derive(sqlx::FromRow)]
struct LinkRow {
    position: i64,
    event_id: Uuid,
    aggregate_type: String,
    aggregate_id: String,
    sequence: i64,
    prev_sequence: Option<i64>,
    stored: Option<String>,
    expected: Option<String>,
}

/// Recomputes every chain and reports the first broken link (lowest position).
pub async fn verify(pool: &PgPool) -> Result<VerifyReport, sqlx::Error> {
    // One snapshot for both queries, so the details describe what the count saw.
    let mut tx = pool.begin().await?;
    sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        .execute(&mut *tx)
        .await?;
    let (checked, broken): (i64, Option<i64>) =
        sqlx::query_as(VERIFY_SQL).fetch_one(&mut *tx).await?;
    let first_broken = match broken {
        None => None,
        Some(position) => {
            let row: Option<LinkRow> = sqlx::query_as(LINK_SQL)
                .bind(position)
                .fetch_optional(&mut *tx)
                .await?;
            row.map(describe)
        }
    };
    tx.commit().await?;
    Ok(VerifyReport {
        ok: broken.is_none(),
        checked,
        first_broken,
    })
}

fn describe(row: LinkRow) -> BrokenLink {
    let expected_prev = row.prev_sequence.unwrap_or(0) + 1;
    let reason = if row.sequence != expected_prev {
        if expected_prev == row.sequence - 1 {
            format!("sequence {expected_prev} of this stream is missing")
        } else {
            format!(
                "sequences {expected_prev}..{} of this stream are missing",
                row.sequence - 1
            )
        }
    } else {
        format!(
            "stored hash {} does not match the recomputed {}",
            row.stored.as_deref().unwrap_or("(none)"),
            row.expected.as_deref().unwrap_or("(none)")
        )
    };
    BrokenLink {
        position: row.position,
        event_id: row.event_id,
        aggregate_type: row.aggregate_type,
        aggregate_id: row.aggregate_id,
        sequence: row.sequence,
        reason,
    }
}

/// The newest event of every stream, ordered by stream.
pub async fn heads(pool: &PgPool) -> Result<Vec<Head>, sqlx::Error> {
    let heads = sqlx::query_as(
        "SELECT DISTINCT ON (aggregate_type, aggregate_id) \
                aggregate_type, aggregate_id, sequence, encode(hash, 'hex') AS hash \
           FROM events \
          ORDER BY aggregate_type, aggregate_id, sequence DESC",
    )
    .fetch_all(pool)
    .await?;
    // Only what survives a crash of Postgres leaves it (docs/adr/0005).
    bountyline_projections::flushed::settle(pool).await?;
    Ok(heads)
}

#[derive(sqlx::FromRow)]
struct HeadNow {
    aggregate_type: String,
    aggregate_id: String,
    exported_sequence: i64,
    exported_hash: String,
    current_sequence: Option<i64>,
    current_hash: Option<String>,
    resealed_in: Option<Uuid>,
}

/// An exported head whose event a re-seal changed (`bountyline privacy reseal`, ADR 7): the
/// hash the export holds is recorded as that event's old hash in the epoch named, whose
/// `ChainResealed` event (aggregate `Epoch`) counts the changed links. Not tampering, but the
/// holder's head is stale: `hash` is the event's hash now.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct ResealedHead {
    pub aggregate_type: String,
    pub aggregate_id: String,
    pub sequence: i64,
    pub epoch: Uuid,
    /// Lower-case hex of the event's hash now.
    pub hash: String,
}

/// What [`check_heads`] found: the heads that no longer match, and those a re-seal moved.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HeadsChecked {
    pub problems: Vec<HeadProblem>,
    pub resealed: Vec<ResealedHead>,
}

/// Compares exported heads with the store: a stream that is gone, that no longer reaches its
/// exported sequence (its newest events were removed) or whose event at that sequence has a
/// different hash (it or something before it was rewritten) is reported. Streams that grew
/// since the export are fine; a head whose hash a re-seal recorded as replaced is reported
/// apart, with its epoch.
pub async fn check_heads(pool: &PgPool, exported: &[Head]) -> Result<HeadsChecked, sqlx::Error> {
    let types: Vec<&str> = exported.iter().map(|h| h.aggregate_type.as_str()).collect();
    let ids: Vec<&str> = exported.iter().map(|h| h.aggregate_id.as_str()).collect();
    let seqs: Vec<i64> = exported.iter().map(|h| h.sequence).collect();
    let hashes: Vec<String> = exported.iter().map(|h| h.hash.to_lowercase()).collect();
    let rows: Vec<HeadNow> = sqlx::query_as(
        "SELECT * FROM ( \
            SELECT x.n, x.aggregate_type, x.aggregate_id, \
                   x.sequence AS exported_sequence, x.hash AS exported_hash, \
                   (SELECT max(e.sequence) FROM events e \
                     WHERE e.aggregate_type = x.aggregate_type \
                       AND e.aggregate_id = x.aggregate_id) AS current_sequence, \
                   (SELECT encode(e.hash, 'hex') FROM events e \
                     WHERE e.aggregate_type = x.aggregate_type \
                       AND e.aggregate_id = x.aggregate_id \
                       AND e.sequence = x.sequence) AS current_hash, \
                   (SELECT l.epoch FROM resealed_links l \
                     WHERE l.aggregate_type = x.aggregate_type \
                       AND l.aggregate_id = x.aggregate_id \
                       AND l.sequence = x.sequence \
                       AND encode(l.old_hash, 'hex') = x.hash LIMIT 1) AS resealed_in \
              FROM unnest($1::text[], $2::text[], $3::bigint[], $4::text[]) \
                   WITH ORDINALITY AS x(aggregate_type, aggregate_id, sequence, hash, n) \
         ) c WHERE current_hash IS DISTINCT FROM exported_hash ORDER BY n",
    )
    .bind(&types)
    .bind(&ids)
    .bind(&seqs)
    .bind(&hashes)
    .fetch_all(pool)
    .await?;
    let mut checked = HeadsChecked::default();
    for row in rows {
        match (row.resealed_in, &row.current_hash) {
            (Some(epoch), Some(hash)) => checked.resealed.push(ResealedHead {
                aggregate_type: row.aggregate_type,
                aggregate_id: row.aggregate_id,
                sequence: row.exported_sequence,
                epoch,
                hash: hash.clone(),
            }),
            _ => checked.problems.push(problem(row)),
        }
    }
    Ok(checked)
}

fn problem(row: HeadNow) -> HeadProblem {
    let (problem, detail) = match (row.current_sequence, &row.current_hash) {
        (None, _) => (
            "stream-missing",
            format!(
                "the stream is gone; the export had it at sequence {}",
                row.exported_sequence
            ),
        ),
        (Some(now), None) => (
            "truncated",
            format!(
                "the stream ends at sequence {now}; the export had it at {}",
                row.exported_sequence
            ),
        ),
        (Some(_), Some(current)) => (
            "hash-mismatch",
            format!(
                "the event at sequence {} has hash {current}; the export had {}",
                row.exported_sequence, row.exported_hash
            ),
        ),
    };
    HeadProblem {
        aggregate_type: row.aggregate_type,
        aggregate_id: row.aggregate_id,
        exported_sequence: row.exported_sequence,
        current_sequence: row.current_sequence,
        problem: problem.to_owned(),
        detail,
    }
}
