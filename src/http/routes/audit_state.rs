//! Audit views over history: an aggregate's state at a version or an instant, and the chain
//! of causes behind an event. Auditors and admins only.

use actix_web::{web, HttpResponse};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::audit::causes::{causes, origin, CauseLink, Origin};
use crate::audit::state::{state_at, AggregateState, AuditError, Point};
use crate::auth::Authenticated;
use crate::http::error::{ApiError, ApiResult};
use crate::http::openapi::params::AggregatePath;
use crate::http::openapi::problems::{Forbidden, Invalid, NotFound, Unauthenticated};
use crate::http::sealing::opened;
use crate::privacy::Scope;
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

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct StateQuery {
    /// After the event with this sequence number (1-based); not with `at`.
    #[param(minimum = 1)]
    version: Option<i64>,
    /// After the last event recorded at or before this RFC 3339 instant; not with `version`.
    #[param(format = DateTime)]
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

/// An aggregate's state at `?version=` or `?at=`, the latest without either (auditor or
/// admin).
#[utoipa::path(
    get, path = "/v1/audit/aggregates/{type}/{id}", operation_id = "aggregateState",
    tag = "audit",
    params(AggregatePath, StateQuery),
    responses((status = 200, description = "The state then", body = AggregateState),
        Unauthenticated, Forbidden, NotFound, Invalid),
    security(("bearer" = [])),
)]
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
    Ok(HttpResponse::Ok().json(opened(&state, &found, Scope::Events).await?))
}

#[derive(Serialize, ToSchema)]
struct Causes {
    /// The asked-about event first, then what caused it, back to the first event.
    chain: Vec<CauseLink>,
    /// The command the chain started with, and who sent it.
    origin: Option<Origin>,
}

/// The chain of causes behind an event, back to the command and user it started with
/// (auditor or admin).
#[utoipa::path(
    get, path = "/v1/audit/events/{event_id}/causes", operation_id = "eventCauses",
    tag = "audit",
    params(("event_id" = Uuid, Path, description = "The event's id")),
    responses((status = 200, description = "The chain of causes", body = Causes),
        Unauthenticated, Forbidden, NotFound),
    security(("bearer" = [])),
)]
async fn event_causes(
    state: web::Data<AppState>,
    Authenticated(actor): Authenticated,
    path: web::Path<Uuid>,
) -> ApiResult<HttpResponse> {
    crate::auth::require_oversight(&actor)?;
    let chain = causes(&state.pool, path.into_inner()).await?;
    let origin = origin(&chain);
    // Links name events without their payloads: nothing sealed today, opened all the same.
    Ok(HttpResponse::Ok().json(opened(&state, &Causes { chain, origin }, Scope::Events).await?))
}
