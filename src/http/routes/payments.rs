//! Escrow payments: by bounty and by user. Members see the payments they pay or receive;
//! admins and auditors see all.

use actix_web::{web, HttpRequest, HttpResponse};
use bountyline_projections::payments::query;
use serde::Deserialize;
use uuid::Uuid;

use crate::auth::Authenticated;
use crate::http::error::{ApiError, ApiResult};
use crate::http::paging;
use crate::state::AppState;

const PROJECTION: &str = "payments";

pub fn config(cfg: &mut web::ServiceConfig) {
    cfg.route("/v1/payments", web::get().to(list))
        .route("/v1/payments/{id}", web::get().to(get));
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    bounty_id: Option<Uuid>,
    user: Option<Uuid>,
    limit: Option<i64>,
    cursor: Option<String>,
}

async fn list(
    state: web::Data<AppState>,
    req: HttpRequest,
    Authenticated(actor): Authenticated,
    q: web::Query<ListQuery>,
) -> ApiResult<HttpResponse> {
    let party = match (q.user, actor.oversees()) {
        (Some(user), true) => Some(user),
        (None, true) => None,
        (Some(user), false) if user != actor.user_id => {
            return Err(ApiError::Forbidden(
                "you may only list your own payments".into(),
            ))
        }
        (_, false) => Some(actor.user_id),
    };
    let limit = paging::limit(q.limit)?;
    let after = q
        .cursor
        .as_deref()
        .map(paging::decode_time_cursor)
        .transpose()?;
    state.caught_up(PROJECTION, &req).await?;
    let rows = query::list(&state.pool, q.bounty_id, party, after, limit + 1).await?;
    let page = paging::page(rows, limit, |p| {
        paging::encode_time_cursor(p.created_at, p.id)
    });
    Ok(HttpResponse::Ok().json(page))
}

async fn get(
    state: web::Data<AppState>,
    req: HttpRequest,
    Authenticated(actor): Authenticated,
    id: web::Path<Uuid>,
) -> ApiResult<HttpResponse> {
    state.caught_up(PROJECTION, &req).await?;
    let payment = query::get(&state.pool, *id)
        .await?
        .filter(|p| actor.oversees() || p.payer == actor.user_id || p.payee == Some(actor.user_id))
        .ok_or_else(|| ApiError::NotFound("no such payment".into()))?;
    Ok(HttpResponse::Ok().json(payment))
}
