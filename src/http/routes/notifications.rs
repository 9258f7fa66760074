//! Notifications (API.md "Notifications and stats"): my feed with its unread count, and
//! marking notifications read.
//!
//! - `GET /v1/notifications?unread=true|false&limit=&cursor=` → `{items, next_cursor,
//!   unread_count}`, newest first; `unread=true` lists only unread ones (absent or `false`:
//!   all). Each item is `{id, kind, subject_id, data, created_at, read_at, position}`.
//! - `POST /v1/notifications/{id}/read` marks one read; 404 unless it is the caller's.
//!   Marking it again answers 200 again, and changes nothing.
//! - `POST /v1/notifications/read` `{"ids": [...]}` (1 to 200 ids) marks several at once;
//!   404 unless every one is the caller's, in which case none is marked.
//!
//! Marking answers `{id, version, position}` of the caller's inbox (always 200: the inbox is
//! bookkeeping, not a resource the client creates); a read with `X-Min-Position: <position>`
//! then reflects it, and `If-Match: "<version>"` on the next marking has it refused (412) if
//! the inbox changed in between.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use bountyline_domain::inbox::{InboxCommand, MAX_IDS_PER_COMMAND};
use bountyline_domain::Actor;
use bountyline_projections::notifications::query;
use chrono::Utc;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::auth::Authenticated;
use crate::commands::Committed;
use crate::http::command::{execute_expecting, Answer};
use crate::http::conditional::ETag;
use crate::http::error::{ApiError, ApiResult};
use crate::http::openapi::params::{
    IdempotencyKey, IfMatch, IfNoneMatch, MinPosition, NotificationId,
};
use crate::http::openapi::problems::{
    Command, Expecting, Invalid, JsonBody, NotFound, NotModified, Read,
};
use crate::http::paging;
use crate::http::sealing::opened;
use crate::privacy::Scope;
use crate::state::AppState;

const PROJECTION: &str = "notifications";

pub fn config(cfg: &mut web::ServiceConfig) {
    cfg.route("/v1/notifications", web::get().to(list))
        .route("/v1/notifications/read", web::post().to(mark_many))
        .route("/v1/notifications/{id}/read", web::post().to(mark_one));
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct ListQuery {
    /// `true`: only unread notifications; absent or `false`: all.
    unread: Option<bool>,
    /// Page size (default 50, at most 200).
    #[param(minimum = 1)]
    limit: Option<i64>,
    /// The `next_cursor` of the previous page.
    #[serde(default, deserialize_with = "paging::non_empty")]
    cursor: Option<String>,
}

/// A page of the caller's notifications, newest first, with the unread count.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = NotificationFeed)]
struct Feed {
    items: Vec<query::NotificationView>,
    /// Send as `?cursor=` for the next page; `null` on the last.
    next_cursor: Option<String>,
    unread_count: i64,
}

/// The caller's notifications, newest first, with the unread count.
#[utoipa::path(
    get, path = "/v1/notifications", operation_id = "listNotifications",
    tag = "notifications",
    params(ListQuery, MinPosition, IfNoneMatch),
    responses((status = 200, description = "A page of the feed", body = Feed), NotModified,
        Read, Invalid),
    security(("bearer" = [])),
)]
async fn list(
    state: web::Data<AppState>,
    req: HttpRequest,
    Authenticated(actor): Authenticated,
    q: web::Query<ListQuery>,
) -> ApiResult<HttpResponse> {
    let limit = paging::limit(q.limit)?;
    let before = q
        .cursor
        .as_deref()
        .map(|c| {
            c.parse::<i64>()
                .map_err(|_| ApiError::invalid_field("cursor", "is not a cursor this API issued"))
        })
        .transpose()?;
    state.caught_up(PROJECTION, &req).await?;
    let tag = ETag::of_projection(&state.pool, PROJECTION, &req, &actor).await?;
    if let Some(unchanged) = tag.unchanged(&req) {
        return Ok(unchanged);
    }
    let user = actor.user_id;
    let unread_only = q.unread.unwrap_or(false);
    let rows = query::list(&state.pool, user, unread_only, before, limit + 1).await?;
    let page = paging::page(rows, limit, |n| n.position.to_string());
    let unread_count = query::unread_count(&state.pool, user).await?;
    let feed = Feed {
        items: page.items,
        next_cursor: page.next_cursor,
        unread_count,
    };
    Ok(tag.ok().json(opened(&state, &feed, Scope::Subjects).await?))
}

/// Mark one of the caller's notifications read; marking it again changes nothing. Takes no
/// body.
#[utoipa::path(
    post, path = "/v1/notifications/{id}/read", operation_id = "markNotificationRead",
    tag = "notifications",
    params(NotificationId, IdempotencyKey, IfMatch, MinPosition),
    responses((status = 200, description = "Marked; `id` is the caller's inbox",
        body = Committed), Command, Read, NotFound, Expecting),
    security(("bearer" = [])),
)]
async fn mark_one(
    state: web::Data<AppState>,
    req: HttpRequest,
    Authenticated(actor): Authenticated,
    id: web::Path<Uuid>,
) -> ApiResult<HttpResponse> {
    let ids = vec![id.into_inner()];
    mark(&state, &req, &actor, &ids, ids.clone()).await
}

#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = MarkRead, example = json!({"ids": ["0192f3a4-5b6c-7d8e-9f01-23456789abcd"]}))]
struct MarkRequest {
    /// 1 to 200 of the caller's notifications.
    #[schema(min_items = 1, max_items = 200)]
    ids: Vec<Uuid>,
}

/// Mark several of the caller's notifications read: all of them, or none if any is not the
/// caller's.
#[utoipa::path(
    post, path = "/v1/notifications/read", operation_id = "markNotificationsRead",
    tag = "notifications",
    params(IdempotencyKey, IfMatch, MinPosition),
    request_body = MarkRequest,
    responses((status = 200, description = "Marked; `id` is the caller's inbox",
        body = Committed), Command, JsonBody, Read, NotFound, Expecting),
    security(("bearer" = [])),
)]
async fn mark_many(
    state: web::Data<AppState>,
    req: HttpRequest,
    Authenticated(actor): Authenticated,
    body: web::Json<MarkRequest>,
) -> ApiResult<HttpResponse> {
    let body = body.into_inner();
    if body.ids.is_empty() || body.ids.len() > MAX_IDS_PER_COMMAND {
        return Err(ApiError::invalid_field(
            "ids",
            format!("name between 1 and {MAX_IDS_PER_COMMAND} notifications"),
        ));
    }
    mark(&state, &req, &actor, &body, body.ids.clone()).await
}

/// Marks `ids` read once every one is known to be the caller's; `request` is what the
/// Idempotency-Key covers.
async fn mark(
    state: &AppState,
    req: &HttpRequest,
    actor: &Actor,
    request: &impl Serialize,
    ids: Vec<Uuid>,
) -> ApiResult<HttpResponse> {
    state.caught_up(PROJECTION, req).await?;
    let owner = actor.user_id;
    let named: BTreeSet<Uuid> = ids.iter().copied().collect();
    let mine: BTreeSet<Uuid> = query::owned(&state.pool, owner, &ids)
        .await?
        .into_iter()
        .collect();
    let unknown = named.difference(&mine).count();
    if unknown > 0 {
        // Someone else's notification and a missing one look alike: the caller learns
        // nothing about other users' feeds.
        return Err(ApiError::NotFound(match named.len() {
            1 => "no such notification".to_owned(),
            n => format!("{unknown} of the {n} notifications named are not yours or do not exist"),
        }));
    }
    let command = InboxCommand::MarkRead {
        owner,
        notification_ids: ids,
        actor: actor.clone(),
        at: Utc::now(),
    };
    let bus = state.commands.clone();
    execute_expecting(state, req, actor, request, |ctx| async move {
        let c = bus.inbox(owner, command, &ctx).await?;
        Answer::json(StatusCode::OK, &c)
    })
    .await
}
