//! Audit views over history: an aggregate's state at a version or an instant, and the chain
//! of causes behind an event. Auditors and admins only.

use actix_web::{web, HttpResponse};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use uuid::Uuid;

use crate::audit::causes::{causes, origin};
use crate::audit::state::{state_at, AuditError, Point};
use crate::auth::Authenticated;
use crate::http::error::{ApiError, ApiResult};
use crate::state::AppState;

pub fn config(cfg: &mut web::ServiceConfig) {
    cfg.route(
        "/v1/audit/aggregates/{type}/{id}",
        web::get().to(aggregate_state),
    )
    .route(
        "/v1/audit/events/{event_id}/causes",
        web::get().to(event_causes),
    );
}

impl From<AuditError> for ApiError {
    fn from(e: AuditError) -> Self {
        match e {
            AuditError::NotFound(d) => ApiError::NotFound(d),
            AuditError::Invalid { field, message } => ApiError::invalid_field(field, message),
            AuditError::Internal(e) => ApiError::internal(e),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct StateQuery {
    version: Option<i64>,
    /// An RFC 3339 instant.
    at: Option<String>,
}

impl StateQuery {
    fn point(&self) -> ApiResult<Point> {
        match (self.version, self.at.as_deref()) {
            (Some(_), Some(_)) => Err(ApiError::invalid_field(
                "at",
                "give either version or at, not both",
            )),
            (Some(v), None) => Ok(Point::Version(v)),
            (None, Some(at)) => DateTime::parse_from_rfc3339(at)
                .map(|t| Point::Time(t.with_timezone(&Utc)))
                .map_err(|_| ApiError::invalid_field("at", "must be an RFC 3339 date-time")),
            (None, None) => Ok(Point::Latest),
        }
    }
}

/// The aggregate's state at `?version=` or `?at=` (the latest without either).
async fn aggregate_state(
    state: web::Data<AppState>,
    Authenticated(actor): Authenticated,
    path: web::Path<(String, String)>,
    q: web::Query<StateQuery>,
) -> ApiResult<HttpResponse> {
    crate::auth::require_oversight(&actor)?;
    let point = q.point()?;
    let (kind, id) = path.into_inner();
    let found = state_at(&state.pool, &kind, &id, point).await?;
    Ok(HttpResponse::Ok().json(found))
}

/// The chain of causes behind an event, back to the command and user it started with.
async fn event_causes(
    state: web::Data<AppState>,
    Authenticated(actor): Authenticated,
    path: web::Path<Uuid>,
) -> ApiResult<HttpResponse> {
    crate::auth::require_oversight(&actor)?;
    let chain = causes(&state.pool, path.into_inner()).await?;
    let origin = origin(&chain);
    Ok(HttpResponse::Ok().json(serde_json::json!({ "chain": chain, "origin": origin })))
}
