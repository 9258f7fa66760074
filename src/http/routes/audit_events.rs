//! The auditor's view of the event store (API.md "Audit"): `GET /v1/audit/events`, filtered and
//! in global position order; paged JSON by default, every match streamed as NDJSON with
//! `Accept: application/x-ndjson` or as CSV with `Accept: text/csv`. Every read is recorded in
//! `audit_reads`, listed by `GET /v1/audit/reads` (who read what).

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use bountyline_projections::StoredEvent;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use futures::{StreamExt, TryStreamExt};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::audit::export::{self, AuditFilter, Format};
use crate::auth::extractor::Authenticated;
use crate::http::error::{ApiError, ApiResult};
use crate::http::openapi::problems::{Forbidden, Invalid, Unauthenticated};
use crate::http::paging::{self, Page};
use crate::privacy::Opener;
use crate::state::AppState;

pub fn config(cfg: &mut web::ServiceConfig) {
    cfg.route("/v1/audit/events", web::get().to(events))
        .route("/v1/audit/reads", web::get().to(reads));
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct EventsQuery {
    /// Only events after this global position.
    #[param(minimum = 0)]
    after: Option<i64>,
    /// The `next_cursor` of the previous page (the same as `after`).
    #[serde(default, deserialize_with = "paging::non_empty")]
    cursor: Option<String>,
    /// e.g. `Task`, `Bounty`, `Wallet`.
    aggregate_type: Option<String>,
    /// One aggregate's events (with `aggregate_type`).
    aggregate_id: Option<String>,
    /// e.g. `TaskCreated`.
    event_type: Option<String>,
    /// The user who caused the events.
    actor: Option<Uuid>,
    /// The originating request's id.
    correlation_id: Option<String>,
    /// Recorded at or after this instant (RFC 3339).
    from: Option<DateTime<Utc>>,
    /// Recorded before this instant (RFC 3339); before `from`, nothing matches.
    to: Option<DateTime<Utc>>,
    /// Page size for JSON (default 50, at most 200); refused for NDJSON and CSV, which
    /// return every match.
    #[param(minimum = 1)]
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

/// Events in global position order (auditor or admin): paged JSON by default; with
/// `Accept: application/x-ndjson` every match as one event per line, with `Accept: text/csv`
/// every match as CSV. Every read is recorded.
#[utoipa::path(
    get, path = "/v1/audit/events", operation_id = "auditEvents", tag = "audit",
    params(EventsQuery),
    responses(
        (status = 200, description = "The matching events", content(
            (Page<StoredEvent> = "application/json"),
            (String = "application/x-ndjson",
                example = "{\"position\":1,\"event_id\":\"...\",\"event_type\":\"TaskCreated\",...}\n"),
            (String = "text/csv", example = "position,event_id,recorded_at,aggregate_type,\
                aggregate_id,sequence,event_type,event_version,actor,request_id,\
                correlation_id,causation_id,payload\r\n"),
        )),
        Unauthenticated, Forbidden, Invalid,
    ),
    security(("bearer" = [])),
)]
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
            let mut rows = export::page(&pool, &filter, limit + 1).await?;
            state.privacy.open_events(&mut rows).await?;
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
                .streaming(body(
                    pool,
                    state.privacy.clone(),
                    filter,
                    format,
                    up_to,
                    read_id,
                )))
        }
    }
}

/// The response body: one chunk per keyset page, its texts opened, a CSV header first; when it
/// ends, the read's row count is recorded. A database error mid-stream aborts the response
/// (the client sees a truncated body, never a silently short one that looks complete).
fn body(
    pool: sqlx::PgPool,
    opener: Opener,
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
        .and_then(move |mut rows| {
            counted.fetch_add(rows.len() as i64, Ordering::Relaxed);
            let opener = opener.clone();
            async move {
                let failed = |err: &dyn std::fmt::Display| {
                    tracing::error!(error = %err, "audit export rendering failed");
                    actix_web::error::ErrorInternalServerError("audit export failed")
                };
                opener
                    .open_events(&mut rows)
                    .await
                    .map_err(|e| failed(&e))?;
                let mut buf = Vec::with_capacity(rows.len() * 512);
                format.render(&rows, &mut buf).map_err(|e| failed(&e))?;
                Ok(Bytes::from(buf))
            }
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

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct ReadsQuery {
    /// Only reads by this user.
    actor: Option<Uuid>,
    /// The `next_cursor` of the previous page.
    #[serde(default, deserialize_with = "paging::non_empty")]
    cursor: Option<String>,
    /// Page size (default 50, at most 200).
    #[param(minimum = 1)]
    limit: Option<i64>,
}

/// One read of the audit log: who read what, with which filter, and how many rows.
#[derive(Debug, Serialize, sqlx::FromRow, ToSchema)]
struct AuditRead {
    id: Uuid,
    actor: Uuid,
    what: String,
    filter: serde_json::Value,
    rows: Option<i64>,
    at: DateTime<Utc>,
}

/// Who read the audit log, newest first (auditor or admin). Looking at this list is itself
/// recorded.
#[utoipa::path(
    get, path = "/v1/audit/reads", operation_id = "auditReads", tag = "audit",
    params(ReadsQuery),
    responses((status = 200, description = "The reads", body = Page<AuditRead>),
        Unauthenticated, Forbidden, Invalid),
    security(("bearer" = [])),
)]
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
