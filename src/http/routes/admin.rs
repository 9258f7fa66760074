//! Operator views for admins: events a projection parked after its retries ran out, and the
//! process managers' money flows.

use actix_web::{web, HttpResponse};
use bountyline_domain::Role;
use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::auth::{require_role, Authenticated};
use crate::http::error::ApiResult;
use crate::http::openapi::problems::{Forbidden, Invalid, Unauthenticated};
use crate::http::paging::Items;
use crate::state::AppState;

pub fn config(cfg: &mut web::ServiceConfig) {
    cfg.route("/v1/admin/parked-events", web::get().to(parked_events))
        .route("/v1/admin/flows", web::get().to(flows));
}

/// An event a projection could not apply after its retries ran out.
#[derive(Debug, Serialize, sqlx::FromRow, ToSchema)]
struct ParkedEvent {
    projection: String,
    position: i64,
    event_id: Uuid,
    event_type: String,
    error: String,
    attempts: i32,
    parked_at: DateTime<Utc>,
}

/// Events parked by the projections (admin), newest first, at most 500.
#[utoipa::path(
    get, path = "/v1/admin/parked-events", operation_id = "parkedEvents", tag = "admin",
    responses((status = 200, description = "The parked events", body = Items<ParkedEvent>),
        Unauthenticated, Forbidden),
    security(("bearer" = [])),
)]
async fn parked_events(
    state: web::Data<AppState>,
    Authenticated(actor): Authenticated,
) -> ApiResult<HttpResponse> {
    require_role(&actor, Role::Admin)?;
    let items: Vec<ParkedEvent> = sqlx::query_as(
        "SELECT projection, position, event_id, event_type, error, attempts, parked_at \
         FROM parked_events ORDER BY parked_at DESC, position DESC LIMIT 500",
    )
    .fetch_all(&state.pool)
    .await?;
    Ok(HttpResponse::Ok().json(Items { items }))
}

#[derive(Debug, serde::Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct FlowQuery {
    /// `in_flight` (default), `stuck`, `done` or `all`.
    #[param(schema_with = flow_states)]
    state: Option<String>,
}

/// A process manager's money flow and how far it got.
#[derive(Debug, Serialize, sqlx::FromRow, ToSchema)]
struct Flow {
    flow_id: Uuid,
    kind: String,
    bounty_id: Option<Uuid>,
    step: String,
    done: bool,
    stuck: bool,
    last_error: Option<String>,
    started_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

fn flow_states() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
    crate::http::openapi::values::one_of(["in_flight", "stuck", "done", "all"])
        .description(Some(
            "Which flows: `in_flight` (the default), `stuck`, `done` or `all`.",
        ))
        .into()
}

/// The process managers' flows (admin): which are in flight, which are stuck, which are done.
#[utoipa::path(
    get, path = "/v1/admin/flows", operation_id = "flows", tag = "admin",
    params(FlowQuery),
    responses((status = 200, description = "The flows, newest first, at most 500",
        body = Items<Flow>), Unauthenticated, Forbidden, Invalid),
    security(("bearer" = [])),
)]
async fn flows(
    state: web::Data<AppState>,
    Authenticated(actor): Authenticated,
    q: web::Query<FlowQuery>,
) -> ApiResult<HttpResponse> {
    require_role(&actor, Role::Admin)?;
    let filter = match q.state.as_deref().unwrap_or("in_flight") {
        "in_flight" => "NOT done",
        "stuck" => "NOT done AND updated_at < now() - make_interval(secs => $1)",
        "done" => "done",
        "all" => "true",
        _ => {
            return Err(crate::http::error::ApiError::invalid_field(
                "state",
                "must be one of in_flight, stuck, done, all",
            ))
        }
    };
    let items: Vec<Flow> = sqlx::query_as(&format!(
        "SELECT flow_id, kind, bounty_id, step, done, \
           (NOT done AND updated_at < now() - make_interval(secs => $1)) AS stuck, \
           last_error, started_at, updated_at \
         FROM process_flows WHERE {filter} ORDER BY updated_at DESC LIMIT 500"
    ))
    .bind(crate::sagas::flows::STUCK_AFTER_SECS as f64)
    .fetch_all(&state.pool)
    .await?;
    Ok(HttpResponse::Ok().json(Items { items }))
}
