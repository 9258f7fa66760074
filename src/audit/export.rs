//! Reading the event store for auditors: a filter over events in global position order, paged
//! for JSON, streamed in keyset pages for NDJSON and CSV (bounded memory, no long-lived cursor
//! or transaction), exported to a file by the CLI, and every such read itself recorded in
//! `audit_reads` (who read what).
//!
//! Every user-supplied value reaches SQL as a bind parameter, never as SQL text.

use std::io::Write;

use bountyline_projections::{flushed, StoredEvent};

use crate::privacy::Opener;
use chrono::{DateTime, Utc};
use futures::{Stream, StreamExt, TryStreamExt};
use serde::{Deserialize, Serialize};
use sqlx::{PgPool, Postgres, QueryBuilder};
use uuid::Uuid;

/// Rows fetched per keyset page when streaming.
pub const STREAM_BATCH: i64 = 1000;

const COLUMNS: &str = "SELECT position, event_id, aggregate_type, aggregate_id, sequence, \
     event_type, event_version, payload, metadata, recorded_at FROM events";

/// Which events to read. Every field narrows the match; `from` is inclusive and `to` exclusive
/// (`from <= recorded_at < to`); `after` is a position cursor (`position > after`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, clap::Args)]
pub struct AuditFilter {
    /// Only events after this global position.
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub after: Option<i64>,
    /// Aggregate type, e.g. `task`, `bounty`, `wallet`.
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub aggregate_type: Option<String>,
    /// Aggregate id.
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub aggregate_id: Option<String>,
    /// Event type, e.g. `TaskCreated`.
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub event_type: Option<String>,
    /// The user who caused the events (`metadata.actor`).
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub actor: Option<Uuid>,
    /// The correlation id (`metadata.correlation_id`): the originating request's id.
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub correlation_id: Option<String>,
    /// Recorded at or after this time (RFC 3339).
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from: Option<DateTime<Utc>>,
    /// Recorded before this time (RFC 3339).
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub to: Option<DateTime<Utc>>,
}

impl AuditFilter {
    /// Appends ` WHERE ...` for this filter, events in `(after, up_to]`.
    fn push_where(&self, qb: &mut QueryBuilder<'_, Postgres>, after: i64, up_to: Option<i64>) {
        qb.push(" WHERE position > ").push_bind(after);
        if let Some(up_to) = up_to {
            qb.push(" AND position <= ").push_bind(up_to);
        }
        if let Some(v) = &self.aggregate_type {
            qb.push(" AND aggregate_type = ").push_bind(v.clone());
        }
        if let Some(v) = &self.aggregate_id {
            qb.push(" AND aggregate_id = ").push_bind(v.clone());
        }
        if let Some(v) = &self.event_type {
            qb.push(" AND event_type = ").push_bind(v.clone());
        }
        if let Some(v) = &self.actor {
            qb.push(" AND (metadata ->> 'actor') = ")
                .push_bind(v.to_string());
        }
        if let Some(v) = &self.correlation_id {
            qb.push(" AND (metadata ->> 'correlation_id') = ")
                .push_bind(v.clone());
        }
        if let Some(v) = self.from {
            qb.push(" AND recorded_at >= ").push_bind(v);
        }
        if let Some(v) = self.to {
            qb.push(" AND recorded_at < ").push_bind(v);
        }
    }

    fn start(&self) -> i64 {
        self.after.unwrap_or(0).max(0)
    }
}

async fn fetch(
    pool: &PgPool,
    filter: &AuditFilter,
    after: i64,
    up_to: Option<i64>,
    limit: i64,
) -> Result<Vec<StoredEvent>, sqlx::Error> {
    let mut qb = QueryBuilder::<Postgres>::new(COLUMNS);
    filter.push_where(&mut qb, after, up_to);
    qb.push(" ORDER BY position LIMIT ").push_bind(limit);
    let events = qb.build_query_as::<StoredEvent>().fetch_all(pool).await?;
    if !events.is_empty() {
        // Only what survives a crash of Postgres leaves it (docs/adr/0005).
        flushed::settle(pool).await?;
    }
    Ok(events)
}

/// Up to `limit` matching events after the filter's `after` cursor, in position order.
pub async fn page(
    pool: &PgPool,
    filter: &AuditFilter,
    limit: i64,
) -> Result<Vec<StoredEvent>, sqlx::Error> {
    fetch(pool, filter, filter.start(), None, limit.max(0)).await
}

/// How many events match, up to `up_to` when given.
pub async fn count(
    pool: &PgPool,
    filter: &AuditFilter,
    up_to: Option<i64>,
) -> Result<i64, sqlx::Error> {
    let mut qb = QueryBuilder::<Postgres>::new("SELECT count(*) FROM events");
    filter.push_where(&mut qb, filter.start(), up_to);
    qb.build_query_scalar::<i64>().fetch_one(pool).await
}

/// The highest position in the store now. A stream stops there, so an export is a snapshot and
/// ends even while events keep arriving (positions are commit-ordered, so nothing below it can
/// still appear).
pub async fn head(pool: &PgPool) -> Result<i64, sqlx::Error> {
    let head = sqlx::query_scalar("SELECT coalesce(max(position), 0)::bigint FROM events")
        .fetch_one(pool)
        .await?;
    flushed::settle(pool).await?;
    Ok(head)
}

/// Every match in `(filter.after, up_to]`, one keyset page (of up to [`STREAM_BATCH`]) at a
/// time: each page is its own short query, so memory stays bounded by a page and no cursor or
/// transaction is held open while a slow client drains the stream.
pub fn pages(
    pool: PgPool,
    filter: AuditFilter,
    up_to: i64,
) -> impl Stream<Item = Result<Vec<StoredEvent>, sqlx::Error>> + Send + 'static {
    let start = Some(filter.start());
    futures::stream::try_unfold(
        (pool, filter, start),
        move |(pool, filter, cursor)| async move {
            let Some(after) = cursor else {
                return Ok(None);
            };
            let rows = fetch(&pool, &filter, after, Some(up_to), STREAM_BATCH).await?;
            if rows.is_empty() {
                return Ok(None);
            }
            let next = if (rows.len() as i64) < STREAM_BATCH {
                None
            } else {
                rows.last().map(|e| e.position)
            };
            Ok(Some((rows, (pool, filter, next))))
        },
    )
}

/// Every matching event up to the store's head when the stream starts, in position order.
pub fn stream(
    pool: PgPool,
    filter: AuditFilter,
) -> impl Stream<Item = Result<StoredEvent, sqlx::Error>> + Send + 'static {
    futures::stream::once(async move {
        let up_to = head(&pool).await?;
        Ok::<_, sqlx::Error>(
            pages(pool, filter, up_to)
                .map_ok(|rows| futures::stream::iter(rows.into_iter().map(Ok)))
                .try_flatten(),
        )
    })
    .try_flatten()
}

/// One event as a line of NDJSON (the JSON object and a `\n`).
pub fn to_ndjson_line(event: &StoredEvent) -> Result<Vec<u8>, serde_json::Error> {
    let mut line = serde_json::to_vec(event)?;
    line.push(b'\n');
    Ok(line)
}

/// The CSV header row (with its CRLF).
pub const CSV_HEADER: &str = "position,event_id,recorded_at,aggregate_type,aggregate_id,\
sequence,event_type,event_version,actor,request_id,correlation_id,causation_id,payload\r\n";

/// Appends `field` quoted per RFC 4180 when it needs to be: fields holding a comma, a double
/// quote, CR or LF are enclosed in double quotes with inner quotes doubled.
fn push_csv_field(out: &mut Vec<u8>, field: &str) {
    if field.contains([',', '"', '\r', '\n']) {
        out.push(b'"');
        out.extend_from_slice(field.replace('"', "\"\"").as_bytes());
        out.push(b'"');
    } else {
        out.extend_from_slice(field.as_bytes());
    }
}

/// Appends one event as a CSV record (RFC 4180, CRLF-terminated). The payload is its JSON text.
pub fn push_csv_row(out: &mut Vec<u8>, event: &StoredEvent) -> Result<(), serde_json::Error> {
    let payload = serde_json::to_string(&event.payload)?;
    let fields: [&str; 13] = [
        &event.position.to_string(),
        &event.event_id.to_string(),
        &event
            .recorded_at
            .to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
        &event.aggregate_type,
        &event.aggregate_id,
        &event.sequence.to_string(),
        &event.event_type,
        &event.event_version,
        event.meta("actor").unwrap_or_default(),
        event.meta("request_id").unwrap_or_default(),
        event.meta("correlation_id").unwrap_or_default(),
        event.meta("causation_id").unwrap_or_default(),
        &payload,
    ];
    for (i, field) in fields.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        push_csv_field(out, field);
    }
    out.extend_from_slice(b"\r\n");
    Ok(())
}

/// One event as a CSV record.
pub fn to_csv_row(event: &StoredEvent) -> Result<Vec<u8>, serde_json::Error> {
    let mut out = Vec::with_capacity(256);
    push_csv_row(&mut out, event)?;
    Ok(out)
}

/// Export formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Format {
    /// One JSON object per line.
    #[default]
    Ndjson,
    /// RFC 4180 CSV with a header row.
    Csv,
}

impl Format {
    pub fn content_type(self) -> &'static str {
        match self {
            Format::Ndjson => "application/x-ndjson",
            Format::Csv => "text/csv; charset=utf-8",
        }
    }

    /// Renders a page of events into one buffer.
    pub fn render(
        self,
        events: &[StoredEvent],
        out: &mut Vec<u8>,
    ) -> Result<(), serde_json::Error> {
        for event in events {
            match self {
                Format::Ndjson => {
                    serde_json::to_writer(&mut *out, event)?;
                    out.push(b'\n');
                }
                Format::Csv => push_csv_row(out, event)?,
            }
        }
        Ok(())
    }
}

/// Writes every match to `out` in `format`, for the CLI, each page's texts opened by
/// `opener`; calls `progress(done, total)` after each page (`total` is counted first, for a
/// progress bar's length). Returns the rows written. Stops at the store's head when it
/// starts, so it ends while events keep arriving.
pub async fn export_to(
    pool: &PgPool,
    opener: &Opener,
    filter: &AuditFilter,
    format: Format,
    out: impl Write,
    progress: impl Fn(u64, i64),
) -> anyhow::Result<u64> {
    let mut out = std::io::BufWriter::new(out);
    let up_to = head(pool).await?;
    let total = count(pool, filter, Some(up_to)).await?;
    progress(0, total);
    if format == Format::Csv {
        out.write_all(CSV_HEADER.as_bytes())?;
    }
    let mut done = 0u64;
    let mut buf = Vec::with_capacity(256 * STREAM_BATCH as usize);
    let mut pages = std::pin::pin!(pages(pool.clone(), filter.clone(), up_to));
    while let Some(rows) = pages.next().await {
        let mut rows = rows?;
        opener.open_events(&mut rows).await?;
        buf.clear();
        format.render(&rows, &mut buf)?;
        out.write_all(&buf)?;
        done += rows.len() as u64;
        progress(done, total);
    }
    out.flush()?;
    Ok(done)
}

/// The CLI's `bountyline audit export`: [`export_to`] with an indicatif progress bar on stderr
/// (hidden when stderr is not a terminal), recorded in `audit_reads` as read by `actor` (the CLI
/// has no logged-in user: pass `Actor::SYSTEM_ID` or the operator's user id).
pub async fn export_with_progress(
    pool: &PgPool,
    opener: &Opener,
    actor: Uuid,
    filter: &AuditFilter,
    format: Format,
    out: impl Write,
) -> anyhow::Result<u64> {
    let bar = indicatif::ProgressBar::new(0);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {wide_bar} {pos}/{len} events ({per_sec}, eta {eta})",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let id = record_read(pool, actor, "cli.export", filter, None).await?;
    let rows = export_to(pool, opener, filter, format, out, |done, total| {
        bar.set_length(total.max(0) as u64);
        bar.set_position(done);
    })
    .await;
    bar.finish_and_clear();
    let rows = rows?;
    finish_read(pool, id, rows as i64).await?;
    Ok(rows)
}

/// Records that `actor` read `what` (e.g. `events.json`, `events.ndjson`) with `filter`, and
/// logs it. `rows` is how many events were returned when known; a stream records itself before
/// it starts and sets its count with [`finish_read`] when it ends. Never pass credentials: the
/// filter is the only detail recorded.
pub async fn record_read(
    pool: &PgPool,
    actor: Uuid,
    what: &str,
    filter: &AuditFilter,
    rows: Option<i64>,
) -> Result<Uuid, sqlx::Error> {
    let filter_json = serde_json::to_value(filter).unwrap_or(serde_json::Value::Null);
    let id: Uuid = sqlx::query_scalar(
        "INSERT INTO audit_reads (actor, what, filter, rows) VALUES ($1, $2, $3, $4) RETURNING id",
    )
    .bind(actor)
    .bind(what)
    .bind(&filter_json)
    .bind(rows)
    .fetch_one(pool)
    .await?;
    tracing::info!(
        read_id = %id,
        actor = %actor,
        what,
        filter = %filter_json,
        rows,
        "audit read"
    );
    Ok(id)
}

/// Sets the row count of a read recorded before its stream ran.
pub async fn finish_read(pool: &PgPool, id: Uuid, rows: i64) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE audit_reads SET rows = $2 WHERE id = $1")
        .bind(id)
        .bind(rows)
        .execute(pool)
        .await?;
    tracing::info!(read_id = %id, rows, "audit read finished");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(payload: serde_json::Value) -> StoredEvent {
        StoredEvent {
            position: 7,
            event_id: Uuid::nil(),
            aggregate_type: "task".into(),
            aggregate_id: "a,b".into(),
            sequence: 1,
            event_type: "TaskCreated".into(),
            event_version: "1".into(),
            payload,
            metadata: serde_json::json!({"actor": "u", "request_id": "r\"1", "correlation_id": "c"}),
            recorded_at: DateTime::<Utc>::UNIX_EPOCH,
        }
    }

    #[test]
    fn csv_rows_quote_per_rfc_4180() {
        let row = to_csv_row(&event(serde_json::json!({"t": "x\ny"}))).unwrap_or_default();
        let row = String::from_utf8(row).unwrap_or_default();
        assert_eq!(
            row,
            "7,00000000-0000-0000-0000-000000000000,1970-01-01T00:00:00.000000Z,task,\"a,b\",1,\
             TaskCreated,1,u,\"r\"\"1\",c,,\"{\"\"t\"\":\"\"x\\ny\"\"}\"\r\n"
        );
    }

    #[test]
    fn ndjson_is_one_line() {
        let line = to_ndjson_line(&event(serde_json::json!({"t": "x\ny"}))).unwrap_or_default();
        assert_eq!(line.iter().filter(|b| **b == b'\n').count(), 1);
        assert_eq!(line.last(), Some(&b'\n'));
    }
}
