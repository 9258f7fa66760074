//! The hash chain of the event store, for auditors (DESIGN.md guarantee 10): verify every
//! chain, export the streams' newest heads, and check a saved export against the store.

use actix_web::{web, HttpResponse};
use serde::Deserialize;

use crate::audit::chain::{self, Head};
use crate::auth::Authenticated;
use crate::http::error::ApiResult;
use crate::state::AppState;

pub fn config(cfg: &mut web::ServiceConfig) {
    cfg.route("/v1/audit/verify", web::get().to(verify))
        .route("/v1/audit/heads", web::get().to(heads))
        .route("/v1/audit/heads/check", web::post().to(check_heads));
}

/// `{ok, checked, first_broken}`.
async fn verify(
    state: web::Data<AppState>,
    Authenticated(actor): Authenticated,
) -> ApiResult<HttpResponse> {
    crate::auth::require_oversight(&actor)?;
    let report = chain::verify(&state.pool).await?;
    Ok(HttpResponse::Ok().json(report))
}

/// `{items: [{aggregate_type, aggregate_id, sequence, hash}]}`: every stream's newest event.
async fn heads(
    state: web::Data<AppState>,
    Authenticated(actor): Authenticated,
) -> ApiResult<HttpResponse> {
    crate::auth::require_oversight(&actor)?;
    let items = chain::heads(&state.pool).await?;
    Ok(HttpResponse::Ok().json(serde_json::json!({ "items": items })))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct HeadsBody {
    items: Vec<Head>,
}

/// `{ok, problems}` for a previously exported `{items}`.
async fn check_heads(
    state: web::Data<AppState>,
    Authenticated(actor): Authenticated,
    body: web::Json<HeadsBody>,
) -> ApiResult<HttpResponse> {
    crate::auth::require_oversight(&actor)?;
    let problems = chain::check_heads(&state.pool, &body.items).await?;
    Ok(HttpResponse::Ok().json(serde_json::json!({
        "ok": problems.is_empty(),
        "checked": body.items.len(),
        "problems": problems,
    })))
}
