//! Per-request plumbing: a request id (accepted from `X-Request-Id` when sane, else minted)
//! that is echoed back, entered into the tracing span and recorded in event metadata; the
//! HTTP latency histogram by route pattern; security headers and the refusal of TRACE; the
//! per-address limit on authentication requests.

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{self, HeaderName, HeaderValue};
use actix_web::http::Method;
use actix_web::middleware::Next;
use actix_web::{web, Error, HttpMessage};
use std::time::Instant;
use tracing::Instrument;
use uuid::Uuid;

use super::error::{problem_response, ApiError};
use super::limits::too_many;
use crate::state::AppState;

pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The request's id, available to handlers through request extensions.
#[derive(Debug, Clone)]
pub struct RequestId(pub String);

fn sane(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
}

pub async fn request_context(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, Error> {
    let id = req
        .headers()
        .get(&REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|v| sane(v))
        .map(str::to_owned)
        .unwrap_or_else(|| Uuid::new_v4().to_string());
    req.extensions_mut().insert(RequestId(id.clone()));
    let method = req.method().to_string();
    let route = req
        .match_pattern()
        .unwrap_or_else(|| "unmatched".to_owned());
    let span = tracing::info_span!("http", request_id = %id, %method, %route);
    let started = Instant::now();
    let result = next.call(req).instrument(span.clone()).await;
    let elapsed = started.elapsed().as_secs_f64();
    let status = match &result {
        Ok(res) => res.status().as_u16(),
        Err(e) => e.as_response_error().status_code().as_u16(),
    };
    metrics::histogram!("bountyline_http_request_duration_seconds",
        "method" => method.clone(), "route" => route.clone(), "status" => status.to_string())
    .record(elapsed);
    span.in_scope(|| {
        if status >= 500 {
            tracing::warn!(status, elapsed_ms = elapsed * 1e3, "request failed");
        } else {
            tracing::debug!(status, elapsed_ms = elapsed * 1e3, "request done");
        }
    });
    let mut res = result?;
    if let Ok(value) = HeaderValue::from_str(&id) {
        res.headers_mut().insert(REQUEST_ID, value);
    }
    Ok(res)
}

/// Per-address limit on `/v1/auth/*` (credential stuffing, mass registration).
pub async fn limit_auth(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, Error> {
    if req.path().starts_with("/v1/auth/") {
        let state = req.app_data::<web::Data<AppState>>();
        if let (Some(state), Some(peer)) = (state, req.peer_addr()) {
            if let Err(wait) = state.limits.auth.take(&peer.ip()) {
                tracing::info!(peer = %peer.ip(), "auth request refused: rate limit");
                let res = problem_response(&too_many(wait));
                return Ok(req.into_response(res));
            }
        }
    }
    Ok(next.call(req).await?.map_into_boxed_body())
}

/// Headers every answer carries unless its handler chose its own (pages set their own
/// Content-Security-Policy): no sniffing, no framing, no referrer, no caching of API data.
const DEFAULT_HEADERS: [(HeaderName, &str); 5] = [
    (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
    (header::X_FRAME_OPTIONS, "DENY"),
    (header::REFERRER_POLICY, "no-referrer"),
    (
        header::CONTENT_SECURITY_POLICY,
        "default-src 'none'; frame-ancestors 'none'",
    ),
    (header::CACHE_CONTROL, "no-store"),
];

/// Swagger UI's page loads its own scripts and inline styles.
const DOCS_CSP: &str =
    "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; \
     frame-ancestors 'none'";

/// Security headers on every response, and no TRACE (it would echo credentials back).
pub async fn secure_defaults(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, Error> {
    if req.method() == Method::TRACE || req.method().as_str() == "TRACK" {
        let mut res = problem_response(&ApiError::MethodNotAllowed(format!(
            "{} is not served",
            req.method()
        )));
        res.headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("GET, POST, DELETE"));
        return Ok(req.into_response(res));
    }
    let docs = req.path() == "/docs" || req.path().starts_with("/docs/");
    let mut res = next.call(req).await?.map_into_boxed_body();
    let headers = res.headers_mut();
    if docs && !headers.contains_key(header::CONTENT_SECURITY_POLICY) {
        headers.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(DOCS_CSP),
        );
    }
    for (name, value) in DEFAULT_HEADERS {
        if !headers.contains_key(&name) {
            headers.insert(name, HeaderValue::from_static(value));
        }
    }
    Ok(res)
}
