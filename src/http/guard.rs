//! The edge's defences, as middleware around every route (OWASP API4 and API8): security
//! headers and no TRACE; CORS for the configured origins only; framework errors (a body over
//! the limit, a malformed header) answered as problem+json like every other refusal; a time
//! limit on producing an answer; and the per-address limit on authentication requests.

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{self, HeaderName, HeaderValue};
use actix_web::http::{Method, StatusCode};
use actix_web::middleware::Next;
use actix_web::{web, Error, HttpResponse};
use std::time::Duration;

use super::error::{problem_response, ApiError};
use super::limits::too_many;
use crate::state::AppState;

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

/// Load shedding: at most `http.max_in_flight` requests are worked on at once; one more waits
/// for a place for at most `http.admission_wait_ms` (see `limits::Admission`), and is then
/// answered 503 with Retry-After. Queued without a bound, every request would wait for the
/// database pool, and past the pool's wait limit under a sustained overload each would time
/// out after taking its turn, so that none completed (the held-load run found this). Streams
/// (long-lived by design), health checks and metrics are not counted.
pub async fn shed_load(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, Error> {
    let path = req.path();
    let counted =
        !(path.starts_with("/v1/streams/") || path.starts_with("/health/") || path == "/metrics");
    let state = req.app_data::<web::Data<AppState>>().cloned();
    let admission = state
        .as_ref()
        .and_then(|state| state.limits.in_flight.as_ref())
        .filter(|_| counted);
    let _place = match admission {
        Some(admission) => match admission.enter().await {
            Some(place) => Some(place),
            None => {
                metrics::counter!("bountyline_http_shed_total").increment(1);
                let res = problem_response(&ApiError::Unavailable {
                    detail: "the server is at capacity; retry shortly".into(),
                    retry_after: 1,
                });
                return Ok(req.into_response(res));
            }
        },
        None => None,
    };
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

/// Security headers on every response, no TRACE (it would echo credentials back), and no API
/// description when `http.docs` is off.
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
    let shown = req
        .app_data::<web::Data<AppState>>()
        .is_none_or(|s| s.settings.http.docs);
    if (docs || req.path() == "/openapi.json") && !shown {
        // Switched off by `http.docs`: as if there were no such route.
        let detail = format!("no route answers {} {}", req.method(), req.path());
        return Ok(req.into_response(problem_response(&ApiError::NoSuchRoute(detail))));
    }
    let mut res = next.call(req).await?.map_into_boxed_body();
    let headers = res.headers_mut();
    if docs && !headers.contains_key(header::CONTENT_SECURITY_POLICY) {
        headers.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(DOCS_CSP),
        );
    }
    default_headers(headers);
    Ok(res)
}

/// Adds each of [`DEFAULT_HEADERS`] the answer does not set itself. Problem answers add them
/// too, since an answer given as an error passes no middleware on its way out.
pub fn default_headers(headers: &mut header::HeaderMap) {
    for (name, value) in DEFAULT_HEADERS {
        if !headers.contains_key(&name) {
            headers.insert(name, HeaderValue::from_static(value));
        }
    }
}

/// Any error answer not already problem+json (actix's own: 413 from a raw body over the
/// limit, 400 from an unreadable header) becomes one, with a message and no internals.
pub async fn problem_errors(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, Error> {
    let res = match next.call(req).await {
        Ok(res) => res.map_into_boxed_body(),
        // Ours already answer problem+json.
        Err(e) if e.as_error::<ApiError>().is_some() => return Err(e),
        Err(e) => return Err(framework_error(e.as_response_error().status_code()).into()),
    };
    if res.status().as_u16() < 400 || is_problem(res.response()) {
        return Ok(res);
    }
    let problem = problem_response(&framework_error(res.status()));
    Ok(res.into_response(problem))
}

fn is_problem<B>(res: &HttpResponse<B>) -> bool {
    res.headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/problem+json"))
}

fn framework_error(status: StatusCode) -> ApiError {
    match status {
        StatusCode::BAD_REQUEST => ApiError::BadRequest("the request could not be read".into()),
        StatusCode::NOT_FOUND => ApiError::NotFound("no such route".into()),
        StatusCode::METHOD_NOT_ALLOWED => {
            ApiError::MethodNotAllowed("this method is not served here".into())
        }
        StatusCode::PAYLOAD_TOO_LARGE => {
            ApiError::PayloadTooLarge("the body is larger than this API accepts".into())
        }
        StatusCode::UNSUPPORTED_MEDIA_TYPE => {
            ApiError::UnsupportedMediaType("this body's media type is not accepted".into())
        }
        other if other.is_client_error() => {
            ApiError::BadRequest(format!("the request was refused ({})", other.as_u16()))
        }
        other => ApiError::internal(anyhow::anyhow!("framework answered {other}")),
    }
}

/// Answers that take longer than `http.request_timeout_secs` to begin become 503. A command
/// still running then may yet commit: its `Idempotency-Key` tells the retry what happened.
pub async fn time_limit(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, Error> {
    let limit = req
        .app_data::<web::Data<AppState>>()
        .map(|s| Duration::from_secs(s.settings.http.request_timeout_secs))
        .unwrap_or(Duration::from_secs(30));
    match tokio::time::timeout(limit, next.call(req)).await {
        Ok(res) => Ok(res?.map_into_boxed_body()),
        Err(_) => {
            tracing::warn!(limit_secs = limit.as_secs(), "request timed out");
            // Given as an error: the request went to the handler, so there is none to answer.
            Err(ApiError::Unavailable {
                detail: "the answer took too long; retry (with the same Idempotency-Key)".into(),
                retry_after: 1,
            }
            .into())
        }
    }
}

/// Request headers a browser may send cross-origin, and answer headers it may read.
const CORS_ALLOW_HEADERS: &str =
    "authorization, content-type, idempotency-key, x-min-position, last-event-id, x-request-id";
const CORS_EXPOSE_HEADERS: &str = "x-request-id, x-client-request-id, retry-after, location";

/// CORS for the origins in `http.cors_origins` only (exact matches, never a wildcard, never
/// credentials: other origins' pages call with bearer tokens in headers; the session cookies
/// are for this server's own pages). Other origins get no CORS headers, so browsers keep their
/// answers from the calling page; same-origin use is unaffected.
pub async fn cors(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, Error> {
    let origin = req
        .headers()
        .get(header::ORIGIN)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let allowed = match (&origin, req.app_data::<web::Data<AppState>>()) {
        (Some(origin), Some(state)) => state.settings.http.allows_origin(origin),
        _ => false,
    };
    let preflight = req.method() == Method::OPTIONS
        && req
            .headers()
            .contains_key(header::ACCESS_CONTROL_REQUEST_METHOD);
    if preflight {
        let mut res = if allowed {
            HttpResponse::NoContent()
                .insert_header((header::ACCESS_CONTROL_ALLOW_METHODS, "GET, POST, DELETE"))
                .insert_header((header::ACCESS_CONTROL_ALLOW_HEADERS, CORS_ALLOW_HEADERS))
                .insert_header((header::ACCESS_CONTROL_MAX_AGE, "600"))
                .finish()
        } else {
            problem_response(&ApiError::Forbidden(
                "this origin may not call the API from a browser".into(),
            ))
        };
        allow(res.headers_mut(), origin.as_deref().filter(|_| allowed));
        return Ok(req.into_response(res));
    }
    let mut res = next.call(req).await?.map_into_boxed_body();
    allow(res.headers_mut(), origin.as_deref().filter(|_| allowed));
    Ok(res)
}

fn allow(headers: &mut header::HeaderMap, origin: Option<&str>) {
    headers.append(header::VARY, HeaderValue::from_static("Origin"));
    let Some(value) = origin.and_then(|o| HeaderValue::from_str(o).ok()) else {
        return;
    };
    headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, value);
    headers.insert(
        header::ACCESS_CONTROL_EXPOSE_HEADERS,
        HeaderValue::from_static(CORS_EXPOSE_HEADERS),
    );
}
