//! Escrow payments: by bounty and by user. Members see the payments they pay or receive;
//! admins and auditors see all.

use actix_web::{web, HttpRequest, HttpResponse};
use bountyline_projections::payments::query::{self, PaymentView};
use serde::Deserialize;
use utoipa::IntoParams;
use uuid::Uuid;

use crate::auth::Authenticated;
use crate::http::conditional::ETag;
use crate::http::error::{ApiError, ApiResult};
use crate::http::openapi::params::{IfNoneMatch, MinPosition, PaymentId};
use crate::http::openapi::problems::{Forbidden, Invalid, NotFound, NotModified, Read};
use crate::http::paging::{self, Page};
use crate::state::AppState;

const PROJECTION: &str = "payments";

pub fn config(cfg: &mut web::ServiceConfig) {
    cfg.route("/v1/payments", web::get().to(list))
        .route("/v1/payments/{id}", web::get().to(get));
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct ListQuery {
    /// The escrow payment of this bounty.
    bounty_id: Option<Uuid>,
    /// Payments this user pays or receives: any user for admins and auditors, else only
    /// the caller.
    user: Option<Uuid>,
    /// Page size (default 50, at most 200).
    #[param(minimum = 1)]
    limit: Option<i64>,
    /// The `next_cursor` of the previous page.
    #[serde(default, deserialize_with = "paging::non_empty")]
    cursor: Option<String>,
}

/// Escrow payments, newest first: the caller's own, or any for admins and auditors.
#[utoipa::path(
    get, path = "/v1/payments", operation_id = "listPayments", tag = "payments",
    params(ListQuery, MinPosition, IfNoneMatch),
    responses((status = 200, description = "A page of payments", body = Page<PaymentView>),
        NotModified, Read, Forbidden, Invalid),
    security(("bearer" = [])),
)]
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
    let tag = ETag::of_projection(&state.pool, PROJECTION, &req, &actor).await?;
    if let Some(unchanged) = tag.unchanged(&req) {
        return Ok(unchanged);
    }
    let rows = query::list(&state.pool, q.bounty_id, party, after, limit + 1).await?;
    let page = paging::page(rows, limit, |p| {
        paging::encode_time_cursor(p.created_at, p.id)
    });
    Ok(tag.ok().json(page))
}

/// One escrow payment, if the caller pays or receives it, or oversees.
#[utoipa::path(
    get, path = "/v1/payments/{id}", operation_id = "getPayment", tag = "payments",
    params(PaymentId, MinPosition, IfNoneMatch),
    responses((status = 200, description = "The payment", body = PaymentView), NotModified,
        Read, NotFound),
    security(("bearer" = [])),
)]
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
    Ok(ETag::version(payment.version).answer(&req, &payment))
}
