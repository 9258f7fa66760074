//! `GET /v1/stats`: the platform's figures for dashboards (any signed-in user). The `stats`
//! stream pushes the same document as it changes.

use actix_web::{web, HttpRequest, HttpResponse};
use bountyline_projections::stats::query::snapshot;

use crate::auth::extractor::Authenticated;
use crate::http::error::ApiResult;
use crate::state::AppState;

pub fn config(cfg: &mut web::ServiceConfig) {
    cfg.route("/v1/stats", web::get().to(stats));
}

async fn stats(
    state: web::Data<AppState>,
    req: HttpRequest,
    Authenticated(_): Authenticated,
) -> ApiResult<HttpResponse> {
    state.caught_up("stats", &req).await?;
    Ok(HttpResponse::Ok().json(snapshot(&state.pool).await?))
}
