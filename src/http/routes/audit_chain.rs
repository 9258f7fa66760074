//! The hash chain of the event store, for auditors (DESIGN.md guarantee 10): verify every
//! chain, export the streams' newest heads, and check a saved export against the store.

use actix_web::{web, HttpResponse};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::audit::chain::{self, Head, HeadProblem, ResealedHead, VerifyReport};
use crate::auth::Authenticated;
use crate::http::error::{ApiError, ApiResult};
use crate::http::openapi::problems::{Forbidden, JsonBody, Unauthenticated};
use crate::http::paging::Items;
use crate::state::AppState;

pub fn config(cfg: &mut web::ServiceConfig) {
    cfg.route("/v1/audit/verify", web::get().to(verify))
        .route("/v1/audit/heads", web::get().to(heads))
        .route("/v1/audit/heads/check", web::post().to(check_heads));
}

/// Recompute every hash chain (auditor or admin): `{ok, checked, first_broken}`.
#[utoipa::path(
    get, path = "/v1/audit/verify", operation_id = "verifyChains", tag = "audit",
    responses((status = 200, description = "The verification report", body = VerifyReport),
        Unauthenticated, Forbidden),
    security(("bearer" = [])),
)]
async fn verify(
    state: web::Data<AppState>,
    Authenticated(actor): Authenticated,
) -> ApiResult<HttpResponse> {
    crate::auth::require_oversight(&actor)?;
    let report = chain::verify(&state.pool).await?;
    Ok(HttpResponse::Ok().json(report))
}

/// Every stream's newest event (auditor or admin), to save and check later: a deletion of
/// the newest events leaves a consistent chain that only a saved head reveals.
#[utoipa::path(
    get, path = "/v1/audit/heads", operation_id = "exportHeads", tag = "audit",
    responses((status = 200, description = "Every stream's head", body = Items<Head>),
        Unauthenticated, Forbidden),
    security(("bearer" = [])),
)]
async fn heads(
    state: web::Data<AppState>,
    Authenticated(actor): Authenticated,
) -> ApiResult<HttpResponse> {
    crate::auth::require_oversight(&actor)?;
    let items = chain::heads(&state.pool).await?;
    Ok(HttpResponse::Ok().json(Items { items }))
}

/// A previous export of `GET /v1/audit/heads`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = ExportedHeads, example = json!({"items": [{"aggregate_type": "Task",
    "aggregate_id": "0192f3a4-5b6c-7d8e-9f01-23456789abcd", "sequence": 3,
    "hash": "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"}]}))]
struct HeadsBody {
    items: Vec<Head>,
}

#[derive(Serialize, ToSchema)]
struct HeadsCheck {
    /// Whether every exported head is still in the store, unchanged.
    ok: bool,
    /// How many heads were checked.
    checked: usize,
    problems: Vec<HeadProblem>,
    /// Heads whose event a re-seal changed (`bountyline privacy reseal`): the export's hash is
    /// recorded as replaced in the epoch named; keep the new hash instead.
    resealed: Vec<ResealedHead>,
}

/// Check a previous export of the heads against the store (auditor or admin).
#[utoipa::path(
    post, path = "/v1/audit/heads/check", operation_id = "checkHeads", tag = "audit",
    request_body = HeadsBody,
    responses((status = 200, description = "What no longer matches", body = HeadsCheck),
        Unauthenticated, Forbidden, JsonBody),
    security(("bearer" = [])),
)]
async fn check_heads(
    state: web::Data<AppState>,
    Authenticated(actor): Authenticated,
    body: web::Json<HeadsBody>,
) -> ApiResult<HttpResponse> {
    crate::auth::require_oversight(&actor)?;
    if let Some(i) = body.items.iter().position(|h| !h.hash_is_well_formed()) {
        return Err(ApiError::invalid_field(
            format!("items[{i}].hash"),
            "must be 64 lower-case hex digits, as the export wrote it",
        ));
    }
    let checked = chain::check_heads(&state.pool, &body.items).await?;
    Ok(HttpResponse::Ok().json(HeadsCheck {
        ok: checked.problems.is_empty(),
        checked: body.items.len(),
        problems: checked.problems,
        resealed: checked.resealed,
    }))
}
