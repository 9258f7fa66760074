//! `GET /v1/stats`: the platform's figures for dashboards (any signed-in user). The `stats`
//! stream pushes the same document as it changes.

use actix_web::{web, HttpRequest, HttpResponse};
use bountyline_projections::stats::query::{snapshot, Stats};

use crate::auth::extractor::Authenticated;
use crate::http::conditional::ETag;
use crate::http::error::ApiResult;
use crate::http::openapi::params::{IfNoneMatch, MinPosition};
use crate::http::openapi::problems::{NotModified, Read};
use crate::state::AppState;

pub fn config(cfg: &mut web::ServiceConfig) {
    cfg.route("/v1/stats", web::get().to(stats));
}

/// The platform's figures: open bounties and their reward, escrow held, tasks by status and
/// queue, completions and events in the last minute (and per second), people active today.
#[utoipa::path(
    get, path = "/v1/stats", operation_id = "stats", tag = "stats",
    params(MinPosition, IfNoneMatch),
    responses((status = 200, description = "The figures as of `position`", body = Stats),
        NotModified, Read),
    security(("bearer" = [])),
)]
async fn stats(
    state: web::Data<AppState>,
    req: HttpRequest,
    Authenticated(_): Authenticated,
) -> ApiResult<HttpResponse> {
    state.caught_up("stats", &req).await?;
    // Per-minute figures move with the clock: tagged by content.
    ETag::answer_by_content(&req, &snapshot(&state.pool).await?)
}
