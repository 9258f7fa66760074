//! The auditor's view of the event store (API.md "Audit"): `GET /v1/audit/events`, filtered and
//! in global position order; paged JSON by default, every match streamed as NDJSON with
//! `Accept: application/x-ndjson` or as CSV with `Accept: text/csv`. Every read is recorded in
//! `audit_reads`, listed by `GET /v1/audit/reads` (who read what).

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use bytes::Bytes;
use chrono::{DateTime, Utc};
use futures::{StreamExt, TryStreamExt};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::audit::export::{self, AuditFilter, Format};
use crate::auth::extractor::Authenticated;
use crate::http::error::{ApiError, ApiResult};
use crate::http::paging;
use crate::state::AppState;

pub fn config(cfg: &mut web::ServiceConfig) {
    cfg.route("/v1/audit/events", web::get().to(events))
        .route("/v1/audit/reads", web::get().to(reads));
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct EventsQuery {
    after: Option<i64>,
    /// The `next_cursor` of the previous page (the same as `after`).
    cursor: Option<String>,
    aggregate_type: Option<String>,
    aggregate_id: Option<String>,
    event_type: Option<String>,
    actor: Option<Uuid>,
    correlation_id: Option<String>,
    from: Option<DateTime<Utc>>,
    to: Option<DateTime<Utc>>,
    limit: Option<i64>,
}

impl EventsQuery {
    fn filter(&self) -> ApiResult<AuditFilter> {
        let cursor = self
            .cursor
            .as_deref()
            .map(|c| {
                c.parse::<i64>().map_err(|_| {
                    ApiError::invalid_field("cursor", "is not a cursor this API issued")
                })
            })
            .transpose()?;
        let after = match (self.after, cursor) {
            (Some(a), Some(c)) => Some(a.max(c)),
            (a, c) => a.or(c),
        };
        if after.is_some_and(|a| a < 0) {
            return Err(ApiError::invalid_field("after", "must be 0 or more"));
        }
        if let (Some(from), Some(to)) = (self.from, self.to) {
            if from > to {
                return Err(ApiError::invalid_field("to", "must not be before `from`"));
            }
        }
        Ok(AuditFilter {
            after,
            aggregate_type: self.aggregate_type.clone(),
            aggregate_id: self.aggregate_id.clone(),
            event_type: self.event_type.clone(),
            actor: self.actor,
            correlation_id: self.correlation_id.clone(),
            from: self.from,
            to: self.to,
        })
    }
}

/// The streaming format the client asked for, if any.
fn wanted_stream(req: &HttpRequest) -> Option<Format> {
    let accept = req
        .headers()
        .get_all(header::ACCEPT)
        .filter_map(|v| v.to_str().ok())
        .collect::<Vec<_>>()
        .join(",")
        .to_ascii_lowercase();
    if accept.contains("application/x-ndjson") {
        Some(Format::Ndjson)
    } else if accept.contains("text/csv") {
        Some(Format::Csv)
    } else {
        None
    }
}

async fn events(
    state: web::Data<AppState>,
    req: HttpRequest,
    Authenticated(actor): Authenticated,
    q: web::Query<EventsQuery>,
) -> ApiResult<HttpResponse> {
    crate::auth::require_oversight(&actor)?;
    let filter = q.filter()?;
    let pool = state.pool.clone();
    match wanted_stream(&req) {
        None => {
            let limit = paging::limit(q.limit)?;
            let rows = export::page(&pool, &filter, limit + 1).await?;
            let page = paging::page(rows, limit, |e| e.position.to_string());
            export::record_read(
                &pool,
                actor.user_id,
                "events.json",
                &filter,
                Some(page.items.len() as i64),
            )
            .await?;
            Ok(HttpResponse::Ok().json(page))
        }
        Some(format) => {
            if q.limit.is_some() {
                return Err(ApiError::invalid_field(
                    "limit",
                    "a stream returns every match; page with JSON instead",
                ));
            }
            let what = match format {
                Format::Ndjson => "events.ndjson",
                Format::Csv => "events.csv",
            };
            let read_id = export::record_read(&pool, actor.user_id, what, &filter, None).await?;
            let up_to = export::head(&pool).await?;
            Ok(HttpResponse::Ok()
                .content_type(format.content_type())
                .insert_header((header::CACHE_CONTROL, "no-store"))
                .streaming(body(pool, filter, format, up_to, read_id)))
        }
    }
}

/// The response body: one chunk per keyset page, a CSV header first; when it ends, the read's
/// row count is recorded. A database error mid-stream aborts the response (the client sees a
/// truncated body, never a silently short one that looks complete).
fn body(
    pool: sqlx::PgPool,
    filter: AuditFilter,
    format: Format,
    up_to: i64,
    read_id: Uuid,
) -> impl futures::Stream<Item = Result<Bytes, actix_web::Error>> + 'static {
    let sent = Arc::new(AtomicI64::new(0));
    let header = match format {
        Format::Csv => Some(Ok(Bytes::from_static(export::CSV_HEADER.as_bytes()))),
        Format::Ndjson => None,
    };
    let counted = sent.clone();
    let rows = export::pages(pool.clone(), filter, up_to)
        .map_err(|err| {
            tracing::error!(error = %err, "audit export stream failed");
            actix_web::error::ErrorInternalServerError("audit export failed")
        })
        .and_then(move |rows| {
            counted.fetch_add(rows.len() as i64, Ordering::Relaxed);
            let mut buf = Vec::with_capacity(rows.len() * 512);
            let rendered = format.render(&rows, &mut buf).map(|()| Bytes::from(buf));
            futures::future::ready(rendered.map_err(|err| {
                tracing::error!(error = %err, "audit export rendering failed");
                actix_web::error::ErrorInternalServerError("audit export failed")
            }))
        });
    let done = futures::stream::once(async move {
        let rows = sent.load(Ordering::Relaxed);
        if let Err(err) = export::finish_read(&pool, read_id, rows).await {
            tracing::error!(error = %err, %read_id, "could not record the audit read's row count");
        }
    })
    .filter_map(|()| futures::future::ready(None));
    futures::stream::iter(header).chain(rows).chain(done)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ReadsQuery {
    actor: Option<Uuid>,
    cursor: Option<String>,
    limit: Option<i64>,
}

#[derive(Debug, Serialize, sqlx::FromRow)]
struct AuditRead {
    id: Uuid,
    actor: Uuid,
    what: String,
    filter: serde_json::Value,
    rows: Option<i64>,
    at: DateTime<Utc>,
}

/// Who read the audit log, newest first. Looking at this list is itself recorded.
async fn reads(
    state: web::Data<AppState>,
    Authenticated(actor): Authenticated,
    q: web::Query<ReadsQuery>,
) -> ApiResult<HttpResponse> {
    crate::auth::require_oversight(&actor)?;
    let limit = paging::limit(q.limit)?;
    let cursor = q
        .cursor
        .as_deref()
        .map(paging::decode_time_cursor)
        .transpose()?;
    let mut qb = sqlx::QueryBuilder::<sqlx::Postgres>::new(
        "SELECT id, actor, what, filter, rows, at FROM audit_reads WHERE true",
    );
    if let Some(who) = q.actor {
        qb.push(" AND actor = ").push_bind(who);
    }
    if let Some((at, id)) = cursor {
        qb.push(" AND (at, id) < (")
            .push_bind(at)
            .push(", ")
            .push_bind(id)
            .push(")");
    }
    qb.push(" ORDER BY at DESC, id DESC LIMIT ")
        .push_bind(limit + 1);
    let rows: Vec<AuditRead> = qb.build_query_as().fetch_all(&state.pool).await?;
    let page = paging::page(rows, limit, |r| paging::encode_time_cursor(r.at, r.id));
    let listed = AuditFilter {
        actor: q.actor,
        ..AuditFilter::default()
    };
    export::record_read(
        &state.pool,
        actor.user_id,
        "reads.list",
        &listed,
        Some(page.items.len() as i64),
    )
    .await?;
    Ok(HttpResponse::Ok().json(page))
}
