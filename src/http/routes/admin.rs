//! Operator views for admins: events a projection parked after its retries ran out.

use actix_web::{web, HttpResponse};
use bountyline_domain::Role;
use chrono::{DateTime, Utc};
use serde::Serialize;
use uuid::Uuid;

use crate::auth::{require_role, Authenticated};
use crate::http::error::ApiResult;
use crate::state::AppState;

pub fn config(cfg: &mut web::ServiceConfig) {
    cfg.route("/v1/admin/parked-events", web::get().to(parked_events));
}

#[derive(Debug, Serialize, sqlx::FromRow)]
struct ParkedEvent {
    projection: String,
    position: i64,
    event_id: Uuid,
    event_type: String,
    error: String,
    attempts: i32,
    parked_at: DateTime<Utc>,
}

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
    Ok(HttpResponse::Ok().json(serde_json::json!({ "items": items })))
}
