//! `GET /v1/streams/{topic}`: Server-Sent Events, resumable with `Last-Event-ID`. Browsers'
//! EventSource cannot set headers, so the access token may also come as `?access_token=`.
//! A page that reopens a stream itself (to renew its token) passes `?last_event_id=`, which
//! means what the `Last-Event-ID` header means; the header wins when both are given.
//! A user holds at most `sse.max_streams_per_user` streams open per API process (429 beyond).

use actix_web::{web, HttpRequest, Responder};
use std::time::Duration;

use crate::auth::extractor::{credentials_end, Authenticated};
use crate::http::error::{ApiError, ApiResult};
use crate::http::openapi::problems::{BadRequest, Forbidden, NotFound, TooMany, Unauthenticated};
use crate::sse::Topic;
use crate::state::AppState;

pub fn config(cfg: &mut web::ServiceConfig) {
    cfg.route("/v1/streams/{topic}", web::get().to(stream));
}

/// A live stream of one topic as Server-Sent Events.
///
/// Topics: `tasks`, `queues`, `bounties`, `stats` (any member), `me` (the caller's
/// notifications, wallet and bounties), `workers` (claims, heartbeats, completions, failures
/// and lease expiries: every worker's for auditors and admins, the caller's own otherwise),
/// `events` (raw events; auditors and admins). Each
/// message is `id: <position>`, `event: <type>`, `data: <json>`; keep-alive comments flow
/// while idle. Browsers' EventSource cannot set headers, so the access token may also come
/// as `?access_token=`. A stream ends when its access token expires or its session ends
/// (logout, refresh): reconnect with the newest token and `Last-Event-ID`.
#[utoipa::path(
    get, path = "/v1/streams/{topic}", operation_id = "stream", tag = "streams",
    params(
        ("topic" = String, Path, description = "`tasks`, `queues`, `bounties`, `stats`, `me`, `workers` or `events`"),
        ("Last-Event-ID" = Option<i64>, Header, minimum = 0,
            description = "Resume after this position (the last `id:` received)"),
        ("last_event_id" = Option<i64>, Query, minimum = 0,
            description = "The same, for a page that reopens the stream itself; the header wins"),
    ),
    responses(
        (status = 200, description = "The stream; it does not end while the client listens",
            content_type = "text/event-stream", body = String,
            example = "id: 42\nevent: TaskCreated\ndata: {\"id\":\"0192f3a4-...\"}\n\n"),
        BadRequest, Unauthenticated, Forbidden, NotFound, TooMany,
    ),
    security(("bearer" = []), ("access_token" = [])),
)]
async fn stream(
    state: web::Data<AppState>,
    req: HttpRequest,
    topic: web::Path<String>,
) -> ApiResult<impl Responder> {
    let verified = Authenticated::from_request_or_query(&req).await?;
    let recheck = Duration::from_secs(state.settings.sse.session_recheck_secs.max(1));
    let until = credentials_end(&req, &verified, recheck)?;
    let actor = verified.actor;
    let topic = Topic::parse(&topic)
        .ok_or_else(|| ApiError::NotFound(format!("no stream named {topic}")))?;
    if !topic.allows(&actor) {
        return Err(ApiError::Forbidden("this stream is not open to you".into()));
    }
    let last_event_id = last_event_id(&req)?;
    let sse = &state.settings.sse;
    let slot = state
        .hub
        .admit(actor.user_id, sse.max_streams_per_user)
        .ok_or(ApiError::TooManyRequests { retry_after: 5 })?;
    let stream = match topic {
        Topic::Stats => state.stats.subscribe(slot, sse.client_buffer, until),
        _ => {
            state
                .hub
                .subscribe(slot, topic, actor, last_event_id, sse.client_buffer, until)
                .await?
        }
    };
    Ok(stream
        .with_keep_alive(Duration::from_secs(sse.keep_alive_secs))
        .with_retry_duration(Duration::from_secs(2)))
}

/// Where the client resumes: the `Last-Event-ID` header, else `?last_event_id=`.
fn last_event_id(req: &HttpRequest) -> ApiResult<Option<i64>> {
    let header = req
        .headers()
        .get("last-event-id")
        .map(|v| v.to_str().unwrap_or("?").to_owned());
    let query = || {
        web::Query::<std::collections::HashMap<String, String>>::from_query(req.query_string())
            .ok()
            .and_then(|q| q.get("last_event_id").cloned())
    };
    let Some(raw) = header.or_else(query) else {
        return Ok(None);
    };
    raw.trim()
        .parse::<i64>()
        .ok()
        .filter(|p| *p >= 0)
        .map(Some)
        .ok_or_else(|| ApiError::BadRequest("Last-Event-ID must be a position".into()))
}
